"""What ranking and the state file cost a daemon in pools of 10 to 1,000 peers, on a
virtual clock.

Runs the daemon's real state writer (`serve_state_file`) against a `LocalNode` fed the
pool's status datagrams through `node.receive`, as the gossip receive loop does, and
prints per pool size and kind: the median milliseconds of one ranking of the node's
(`Ranker.ranking`: the peers ranked, the slots measured out, the line rendered; each
after whatever changed since the last), rankings and state-file writes per second,
and the daemon's CPU (receiving, ranking, writing) as a share of one CPU, and of it the
share spent in `node.receive` (decoding and the table).
Beside each, in the same run, the policies before issue 15's change: every ranking
from scratch (with this tree's functions, a third faster than main's at 9fea2b3) and
the writer looking within `MIN_GAP` of any change, loads included (`load_gap=MIN_GAP`).

The pool speaks `--pool-rate` datagrams a second in all (each peer every
max(2 s, peers / rate); 0: every 2 s, today's default whatever the pool), liveness
timings scaled to that interval.  Two pools: `steady` (idle desks whose load wanders
by a few hundredths) and `busy` (every peer's jobs and load change at every datagram).
Virtual time makes the counts exact and repeatable; the CPU is this machine's.

    .venv/bin/python benchmarks/ranking_cost.py [--peers 10 100 500 1000] [--seconds 60]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import trio
import trio.testing

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from p2pcc.core import node as node_module
from p2pcc.core import wire
from p2pcc.core.auth import Keyring
from p2pcc.core.gossip import GossipEngine
from p2pcc.core.gossip_types import Transport
from p2pcc.core.hosts import Ranking
from p2pcc.core.local_compilers import LocalCompiler
from p2pcc.core.metrics import GIB
from p2pcc.core.model import Message, MessageKind, NodeStatus
from p2pcc.core.node import LocalNode
from p2pcc.core.peers import Peer, PeerTimings
from p2pcc.core.ranker import Ranker, RankInputs
from p2pcc.daemon.changes import ChangeBoard
from p2pcc.daemon.state_writer import MIN_GAP, serve_state_file
from tests.core.local_nodes import WALL, fingerprint, status
from tests.core.policies import default_policy, default_timings

DEFAULT_INTERVAL = 2.0  # the default gossip interval
KEYRING = Keyring()


class MeteredRanker(Ranker):
    """A ranker that keeps the time each ranking took."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def ranking(
        self, fingerprints: Iterable[str], peers: Sequence[Peer], inputs: RankInputs
    ) -> Ranking:
        start = time.perf_counter()
        ranking = self.rank(fingerprints, peers, inputs)
        self.times.append(time.perf_counter() - start)
        return ranking

    def rank(
        self, fingerprints: Iterable[str], peers: Sequence[Peer], inputs: RankInputs
    ) -> Ranking:
        return super().ranking(fingerprints, peers, inputs)


class FromScratch(MeteredRanker):
    """The ranking before issue 15: nothing remembered from one ranking to the next."""

    def rank(
        self, fingerprints: Iterable[str], peers: Sequence[Peer], inputs: RankInputs
    ) -> Ranking:
        return Ranker().ranking(fingerprints, peers, inputs)


@contextmanager
def ranker_class(cls: type[MeteredRanker]) -> Iterator[None]:
    """Nodes built inside rank with `cls`."""
    namespace = vars(node_module)
    namespace["Ranker"] = cls
    try:
        yield
    finally:
        namespace["Ranker"] = Ranker


@dataclass
class Figures:
    """One simulation's counts and costs."""

    rank_times: list[float]
    writes: int
    cpu: float  # seconds: the daemon's side only
    receiving: float  # seconds of `cpu` in `node.receive`


def address(index: int) -> str:
    return f"10.{index // 250}.{index % 250}.2"


def sender(index: int) -> tuple[str, int]:
    return (address(index), 3634)


def peer_status(index: int, rng: random.Random, scenario: str) -> NodeStatus:
    """Peer `index`'s status for its next datagram."""
    jobs = rng.randint(0, 4) if scenario == "busy" else 0
    load = jobs + rng.random() if scenario == "busy" else round(rng.uniform(0.0, 0.4), 2)
    base = status(f"desk{index}", address(index))
    return replace(base, cpus=8, load=load, jobs=jobs, mem_available=16 * GIB, slots=4)


def datagram(index: int, sequence: int, body: NodeStatus) -> bytes:
    node_id = (index + 2).to_bytes(16, "big")
    message = Message(node_id, 1, sequence, WALL, MessageKind.STATE, body)
    return wire.encode(message, KEYRING)


def make_node(board: ChangeBoard, peers: int, interval: float) -> LocalNode:
    """Our workstation, its table room for `peers`, liveness timed for `interval`."""
    scale = interval / DEFAULT_INTERVAL
    timings = default_timings()
    scaled = (scale * t for t in (timings.suspect_after, timings.dead_after, timings.forget_after))
    engine = GossipEngine(
        node_id=b"\x01" * 16,
        incarnation=1,
        keyring=KEYRING,
        status=status("here", "10.255.0.1"),
        interval=DEFAULT_INTERVAL,
        timings=PeerTimings(*scaled),
        now=0.0,
    )
    engine.table.max_peers = max(engine.table.max_peers, peers)
    node = LocalNode(
        engine=engine,
        compilers=[LocalCompiler(fingerprint(), ("gcc", "cc"))],
        policy=default_policy(),
        now=0.0,
        on_change=board.notify,
    )
    node.set_serving(True, 0.0)
    return node


async def simulate(
    scenario: str, peers: int, seconds: float, interval: float, *, old: bool
) -> Figures:
    """Run the pool for `seconds` of virtual time against this tree's writer or, `old`,
    the one before issue 15."""
    rng = random.Random(1)
    board = ChangeBoard()
    with ranker_class(FromScratch if old else MeteredRanker):
        node = make_node(board, peers, interval)
    sequences = [1] * peers
    for index in range(peers):  # the pool as it was when the daemon started
        data = datagram(index, 1, peer_status(index, rng, scenario))
        node.receive(data, sender(index), Transport.MULTICAST, 0.0)
    writes = 0

    async def count(path: Path, text: str) -> None:
        nonlocal writes
        writes += 1

    load_gap = MIN_GAP if old else None
    gaps = {"load_gap": load_gap} if load_gap is not None else {}
    writer = partial(serve_state_file, node, board, Path("unused"), period=DEFAULT_INTERVAL)
    driver = receiving = 0.0  # CPU seconds making the pool's datagrams, and receiving them
    cpu = time.process_time()
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(writer, write=count, **gaps))
        writes = 0
        for step in range(int(seconds * peers / interval)):
            index = step % peers
            await trio.sleep_until((step + 1) * interval / peers)
            start = time.process_time()
            sequences[index] += 1
            data = datagram(index, sequences[index], peer_status(index, rng, scenario))
            received = time.process_time()
            driver += received - start
            node.receive(data, sender(index), Transport.MULTICAST, trio.current_time())
            receiving += time.process_time() - received
        nursery.cancel_scope.cancel()
    ranker = node._ranker  # a benchmark's look inside
    assert isinstance(ranker, MeteredRanker)
    return Figures(ranker.times[1:], writes, time.process_time() - cpu - driver, receiving)


def run(scenario: str, peers: int, seconds: float, interval: float, *, old: bool) -> Figures:
    clock = trio.testing.MockClock(autojump_threshold=0)
    return trio.run(partial(simulate, scenario, peers, seconds, interval, old=old), clock=clock)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, nargs="+", default=[10, 100, 500, 1000])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--pool-rate", type=float, default=25.0)
    args = parser.parse_args()
    print(f"{args.seconds:g} s virtual per run; pool rate {args.pool_rate:g}/s (0: every 2 s)")
    print(
        f"{'peers':>5} {'pool':6} {'interval':>8} | {'rank ms':>7} {'old':>6} {'ratio':>5} | "
        f"{'ranks/s':>7} {'old':>5} | {'writes/s':>8} {'old':>5} | "
        f"{'CPU %':>6} {'old':>6} {'ratio':>5} {'receiving':>9}"
    )
    for peers in args.peers:
        interval = DEFAULT_INTERVAL
        if args.pool_rate > 0:
            interval = max(DEFAULT_INTERVAL, peers / args.pool_rate)
        for scenario in ("steady", "busy"):
            new = run(scenario, peers, args.seconds, interval, old=False)
            old = run(scenario, peers, args.seconds, interval, old=True)
            label = f"{peers:5d} {scenario:6} {interval:7.1f}s"
            print(row(label, args.seconds, new, old), flush=True)


def row(label: str, seconds: float, new: Figures, old: Figures) -> str:
    """One line of the table: `new` beside `old`, with the ratios."""

    def ms(figures: Figures) -> float:
        return 1000 * statistics.median(figures.rank_times) if figures.rank_times else 0.0

    def cpu(figures: Figures) -> float:
        return 100 * figures.cpu / seconds

    return (
        f"{label} | {ms(new):7.2f} {ms(old):6.2f} "
        f"{ms(old) / max(ms(new), 1e-9):5.1f} | "
        f"{len(new.rank_times) / seconds:7.2f} {len(old.rank_times) / seconds:5.2f} | "
        f"{new.writes / seconds:8.2f} {old.writes / seconds:5.2f} | "
        f"{cpu(new):6.2f} {cpu(old):6.2f} {cpu(old) / max(cpu(new), 1e-9):5.1f} "
        f"{100 * new.receiving / seconds:9.2f}"
    )


if __name__ == "__main__":
    main()
