"""State-file writes per second with 50 simulated peers gossiping, on a virtual clock.

Runs the daemon's real state writer (`serve_state_file`) against a `LocalNode` fed
through the same path as the gossip receive loop (`node.receive`), with 50 in-memory
peers each sending its state every gossip interval.  Beside it, in the same run, the
policy this tree replaced: rewrite after every accepted datagram, at most once per
`min_gap` (what `daemon/node.py`'s single `changed` event did; 10.00 writes/s on the
commit before, measured with that code itself).

Two pools: `steady` (idle desks whose load wanders by a few hundredths) and `busy`
(every peer's running jobs and load change at every datagram).  Virtual time makes the
counts exact and repeatable; the CPU seconds are this machine's, for the whole run.

    .venv/bin/python benchmarks/state_writes.py [--peers 50] [--seconds 120]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from functools import partial
from pathlib import Path

import trio
import trio.testing

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from p2pcc.core.gossip_types import Transport
from p2pcc.core.metrics import GIB, LocalMetrics
from p2pcc.core.node import LocalNode
from p2pcc.daemon.changes import ChangeBoard
from p2pcc.daemon.state_writer import render_state, serve_state_file, state_content
from tests.core.local_nodes import WALL, make_node

INTERVAL = 2.0  # the default gossip interval
MIN_GAP = 0.1  # the state writer's coalescing gap


def sample(rng: random.Random, scenario: str) -> LocalMetrics:
    """A peer's next metrics sample."""
    jobs = rng.randint(0, 4) if scenario == "busy" else 0
    load = jobs + rng.random() if scenario == "busy" else round(rng.uniform(0.0, 0.4), 2)
    return LocalMetrics(
        cpus=8,
        load_raw=load,
        served_load=0.0,
        foreign_load=load,
        mem_available=16 * GIB,
        jobs=jobs,
        slots=4,
    )


def make_peers(count: int) -> list[LocalNode]:
    """Peers whose first datagrams are spread over one interval, as real desks' are."""
    peers = []
    for index in range(count):
        start = index * INTERVAL / count
        peer = make_node(2 + index, now=start)
        peer.set_serving(True, start)
        peers.append(peer)
    return peers


async def simulate(scenario: str, peer_count: int, seconds: float) -> tuple[int, int, float]:
    """(writes by this tree's writer, writes by the old policy, CPU seconds)."""
    rng = random.Random(1)
    board = ChangeBoard()
    node = make_node(1, board.notify)
    node.set_serving(True, 0.0)
    peers = make_peers(peer_count)
    ours: list[float] = []
    old: list[float] = []
    accepted = trio.Event()

    async def count(path: Path, text: str) -> None:
        ours.append(trio.current_time())

    async def old_policy() -> None:
        nonlocal accepted
        while True:
            await accepted.wait()
            accepted = trio.Event()
            render_state(state_content(node, trio.current_time()), time.time())
            old.append(trio.current_time())
            await trio.sleep(MIN_GAP)

    cpu = time.process_time()
    async with trio.open_nursery() as nursery:
        writer = partial(serve_state_file, node, board, Path("unused"), period=INTERVAL)
        await nursery.start(partial(writer, write=count))
        nursery.start_soon(old_policy)
        ours.clear()
        while trio.current_time() < seconds:
            # Each peer speaks when its own node says a datagram is due.
            index, peer = min(enumerate(peers), key=lambda item: item[1].next_send)
            await trio.sleep_until(peer.next_send)
            now = trio.current_time()
            peer.set_measurements(sample(rng, scenario), now)
            outgoing = peer.datagram_to_send(now, WALL + now)
            assert outgoing is not None
            sender = (f"10.0.0.{2 + index}", 3634)
            received = node.receive(outgoing.data, sender, Transport.MULTICAST, now)
            if received.dropped is None:
                accepted.set()
        nursery.cancel_scope.cancel()
    return len(ours), len(old), time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=120.0)
    args = parser.parse_args()
    print(f"{args.peers} peers, one datagram each per {INTERVAL:g} s, {args.seconds:g} s virtual")
    print(f"{'pool':8} {'writes/s now':>13} {'every change':>13} {'ratio':>7} {'CPU s':>7}")
    for scenario in ("steady", "busy"):
        clock = trio.testing.MockClock(autojump_threshold=0)
        ours, old, cpu = trio.run(simulate, scenario, args.peers, args.seconds, clock=clock)
        rate, old_rate = ours / args.seconds, old / args.seconds
        print(f"{scenario:8} {rate:13.2f} {old_rate:13.2f} {rate / old_rate:7.2f} {cpu:7.2f}")


if __name__ == "__main__":
    main()
