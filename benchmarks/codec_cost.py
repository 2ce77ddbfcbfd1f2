"""What the wire codec costs per datagram: a node's state copy as a thousand-member pool
sends and hears twenty a second.

The datagram is a member's deaf STATE (four compiler offers, as this machine's GCC and
Clang for C and C++) with one news entry aboard, keyed, about 740 bytes.  `decode` is
timed over 2,000 datagrams whose loads differ (as the members' do), `encode` over
2,000 copies of one status (as a node's turn copies are); each is the best of five
rounds, in microseconds of this process's CPU.  Compare commits in one sitting: the
machine is shared and its speed moves.

    .venv/bin/python benchmarks/codec_cost.py
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from p2pcc.core import wire
from p2pcc.core.model import EntryKind, Message, MessageKind, NewsEntry
from tests.core.sim_pool import KEY, status_of

DATAGRAMS = 2000
ROUNDS = 5


def state_copy(sequence: int, load: float) -> Message:
    """Member 5's state at `sequence`, carrying member 9's news."""
    entry = NewsEntry(EntryKind.STATE, (9).to_bytes(16, "big"), 1, 7, 2, status_of(9, 1))
    body = replace(status_of(5, 0), load=load)
    sender = (5).to_bytes(16, "big")
    return Message(sender, 1, sequence, 1.7e9, MessageKind.STATE, body, (entry,), deaf=True)


def best_microseconds(work: Callable[[], object], count: int) -> float:
    rounds = []
    for _ in range(ROUNDS):
        start = time.process_time()
        work()
        rounds.append((time.process_time() - start) / count * 1e6)
    return min(rounds)


def main() -> None:
    datagrams = [wire.encode(state_copy(n + 1, 0.01 * (n % 50)), KEY) for n in range(DATAGRAMS)]
    same = state_copy(1, 0.2)
    decode = best_microseconds(lambda: [wire.decode(d, KEY) for d in datagrams], DATAGRAMS)
    encode = best_microseconds(lambda: [wire.encode(same, KEY) for _ in datagrams], DATAGRAMS)
    print(
        f"state copy of {len(datagrams[0])} bytes: decode {decode:.1f} µs, encode {encode:.1f} µs"
    )


if __name__ == "__main__":
    main()
