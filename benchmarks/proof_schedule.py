"""What the daemon's periodic proofs (p2pcc/daemon/proofs.py) cost as a pool grows: proofs
an hour, and the CPU of looking for the next one, with pools of 10 to 1,000 peers.

A `LocalNode` (one local compiler, the default ranking policy: `max_hosts` 16) hears
each peer's status datagram once; then the proof task's schedule runs on a float clock
for `--hours` simulated hours, exactly as `serve_proofs` does it: a look every
`LOOK_PERIOD` s (`SPACING` s after a proof), each look bringing the book's targets up
to date with the table (`proof_targets`, `ProofBook.set_targets`) and asking
`ProofBook.due`; every proof passes and takes `--proof-seconds`.  Two rules side by
side: today's (the pairs of our hosts lines first, the rest of the pool one per
`BACKGROUND_SPACING`) and the rule before it (every pair hourly), which is today's with
every pair counted as one of our lines.  Printed per pool size and rule: proofs in the
last simulated hour (the first round of proofs done), the median CPU of one look
(this machine, real code), and what proving then costs one node of a pool where every
node proves alike: its own compiles (`--proof-cpu-ms` each) and, since a proof lands
on a peer as often as a node sends one, the compiles it serves (`--peer-cpu-ms`), as a
share of one CPU.  The per-proof CPU defaults are `benchmarks/proof_cost.py`'s figures
on this machine (51 ms here, 37 ms on the peer).

    .venv/bin/python benchmarks/proof_schedule.py [--peers 10 100 1000] [--hours 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from p2pcc.core import limits, wire
from p2pcc.core.auth import Keyring
from p2pcc.core.gossip_types import Transport
from p2pcc.core.model import Message, MessageKind
from p2pcc.core.node import LocalNode
from p2pcc.core.proof import Outcome, ProofResult, proof_targets
from p2pcc.core.proof_book import ProofBook
from p2pcc.daemon.proofs import LOOK_PERIOD, SPACING
from tests.core.local_nodes import WALL, make_node, status

KEYRING = Keyring()  # make_node's pool is unkeyed


def pool_node(peers: int) -> LocalNode:
    """Our node, having heard `peers` peers once each (all alike: one tier)."""
    node = make_node(1)
    for index in range(peers):
        address = f"10.{index // 250}.{index % 250}.2"
        body = replace(status(f"desk{index}", address), cpus=8, slots=4)
        node_id = (index + 2).to_bytes(16, "big")
        data = wire.encode(Message(node_id, 1, 1, WALL, MessageKind.STATE, body), KEYRING)
        node.receive(data, (address, 3634), Transport.MULTICAST, 0.0)
    assert len(node.peers()) == peers, "the table did not take every peer"
    return node


def schedule(
    node: LocalNode, hours: float, proof_seconds: float, every_pair_in_line: bool
) -> tuple[int, list[float]]:
    """Proofs in the last simulated hour, and each look's CPU seconds."""
    book = ProofBook()
    ranked = node.ranking(0.0).ranked  # the pool does not change: one ranking serves
    line = frozenset((r.peer.node_id, fp) for fp, hosts in ranked.items() for r in hosts)
    end, now, looks, proven = hours * 3600.0, 1.0, [], []
    while now < end:
        started = time.process_time()
        book.set_targets(proof_targets(node.peers(), node.compilers, lzo=False))
        in_line = frozenset(t.key for t in book.targets) if every_pair_in_line else line
        target = book.due(now, True, in_line)
        looks.append(time.process_time() - started)
        if target is None:
            now += LOOK_PERIOD
            continue
        book.record(ProofResult(target, Outcome.OK, "", proof_seconds, now, WALL + now))
        proven.append(now)
        now += proof_seconds + SPACING
    return sum(at >= end - 3600.0 for at in proven), looks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--peers", type=int, nargs="+", default=[10, 100, 1000], help=f"≤ {limits.MAX_PEERS}"
    )
    parser.add_argument("--hours", type=float, default=3.0)
    parser.add_argument("--proof-seconds", type=float, default=0.1, help="one proof's wall")
    parser.add_argument("--proof-cpu-ms", type=float, default=51.0, help="CPU here a proof")
    parser.add_argument("--peer-cpu-ms", type=float, default=37.0, help="CPU a peer's side")
    args = parser.parse_args()
    print(
        f"{'peers':>6} {'rule':<14} {'proofs/h':>9} {'look ms':>8} "
        f"{'looks %':>8} {'compiles %':>11} {'total %':>8}"
    )
    for peers in args.peers:
        node = pool_node(peers)
        for label, every in (("lines first", False), ("every pair", True)):
            count, looks = schedule(node, args.hours, args.proof_seconds, every)
            look_share = 100 * sum(looks) / (args.hours * 3600.0)
            compiles = 100 * count * (args.proof_cpu_ms + args.peer_cpu_ms) / 1000 / 3600.0
            print(
                f"{peers:>6} {label:<14} {count:>9} {1000 * statistics.median(looks):>8.3f} "
                f"{look_share:>8.3f} {compiles:>11.3f} {look_share + compiles:>8.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
