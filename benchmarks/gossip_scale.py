"""The pool protocol at 10, 100 and 1,000 members: convergence, traffic and CPU per node.

Every member is the real core (`GossipEngine`: codec, peer table, news, probes, syncs)
on simulated links (tests/core/sim_pool.py): half the pool on subnet 0, half on subnet
1, multicast only within a subnet, unicast between them, each datagram lost with
probability `--loss` and delayed `--delay` seconds.  The pool starts converged (every
table full, as after a while of running) and runs `--warm` seconds before anything is
measured.  Then, in order, on the same pool:

- steady: bytes and datagrams in and out per node per second, and CPU per node (this
  process's CPU time inside each node's engine calls, per simulated second), over
  `--seconds`;
- join: a node on subnet 1 whose seeds are a member of subnet 0 that is down and one
  that is up: seconds until every table holds it alive, and until it holds the pool;
- pause: seconds until every table shows a member of subnet 0 paused;
- leave: seconds until no table holds a member that said goodbye;
- crash: seconds until every table holds a member that stopped dead as not alive;
- cut: the router between the subnets drops everything; seconds until each side holds
  the other as not alive; then healing, seconds until every table holds everyone alive.

Times are virtual and exact for a seed; CPU is this machine's (noisy, shared: compare
sizes within one run).  Ranking and the state file are not in these engines: see
benchmarks/ranking_cost.py for them at the same sizes.

    flock /tmp/p2pcc-heavy.lock .venv/bin/python benchmarks/gossip_scale.py \
        [--sizes 10,100,1000] [--loss 0,0.1] [--seconds 20] [--warm 60] [--no-cut]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from p2pcc.core.model import NodeState
from p2pcc.core.peers import Liveness, Peer
from tests.core.sim_pool import SimNode, SimPool

#: What the issue asks of a 1,000-member pool (per node, and seconds).
TARGETS = {"KB/s": 10.0, "cpu %": 1.0, "join": 3.0, "pause": 1.0, "crash": 10.0}


def alive(peer: Peer | None) -> bool:
    return peer is not None and peer.liveness is Liveness.ALIVE


def not_alive(peer: Peer | None) -> bool:
    return not alive(peer)


def paused(peer: Peer | None) -> bool:
    return peer is not None and peer.status.state is NodeState.PAUSED


def gone(peer: Peer | None) -> bool:
    return peer is None


@dataclass
class Figures:
    size: int
    loss: float
    kb_in: float = 0.0
    kb_out: float = 0.0
    dg_in: float = 0.0
    dg_out: float = 0.0
    kb_in_max: float = 0.0
    cpu: float = 0.0  # % of one CPU per node, mean
    cpu_max: float = 0.0
    join: float | None = None
    join_learned: float | None = None
    pause: float | None = None
    leave: float | None = None
    crash: float | None = None
    split: float | None = None
    heal: float | None = None
    wall: float = 0.0


def time_until(pool: SimPool, done: Callable[[], bool], within: float, what: str) -> float | None:
    """Seconds until `done()` first holds (looked at every 50 ms), or None within `within`;
    the pool runs on to `within` either way only if it did not hold.  Says how far it
    got on stderr: a thousand members take this machine most of an hour."""
    start, seen = pool.now, []

    def look() -> None:
        if not seen and done():
            seen.append(pool.now)

    step = 0.5
    while pool.now < start + within and not seen:
        pool.run_until(min(start + within, pool.now + step), look)
    took = seen[0] - start if seen else None
    progress = f"simulated {pool.now:.1f} s, {time.process_time():.0f} CPU s"
    print(f"  {what}: {seconds_text(took)} s ({progress})", file=sys.stderr, flush=True)
    return took


def steady(pool: SimPool, figures: Figures, seconds: float) -> None:
    for node in pool.nodes:
        node.cpu = 0.0
        node.bytes_in = node.bytes_out = node.packets_in = node.packets_out = 0
    pool.run_until(pool.now + seconds)
    nodes = [node for node in pool.nodes if node.running]
    count = len(nodes)
    figures.kb_in = sum(n.bytes_in for n in nodes) / count / seconds / 1000
    figures.kb_out = sum(n.bytes_out for n in nodes) / count / seconds / 1000
    figures.kb_in_max = max(n.bytes_in for n in nodes) / seconds / 1000
    figures.dg_in = sum(n.packets_in for n in nodes) / count / seconds
    figures.dg_out = sum(n.packets_out for n in nodes) / count / seconds
    figures.cpu = 100 * sum(n.cpu for n in nodes) / count / seconds
    figures.cpu_max = 100 * max(n.cpu for n in nodes) / seconds


def everyone(pool: SimPool, subject: SimNode, test: Callable[[Peer | None], bool]) -> bool:
    return pool.everyone_has(subject, test)  # type: ignore[arg-type]


def events(pool: SimPool, figures: Figures) -> None:
    size = len(pool.nodes)
    down_seed, up_seed = pool.nodes[1], pool.nodes[2]
    pool.crash(down_seed)
    # Its crash noticed (and no longer news), so the join is measured alone.
    time_until(pool, lambda: everyone(pool, down_seed, not_alive), 15.0, "seed down noticed")
    pool.run_until(pool.now + 1.0)
    newcomer = pool.add(1, seeds=[down_seed.index, up_seed.index])
    start = pool.now
    figures.join = time_until(pool, lambda: everyone(pool, newcomer, alive), 15.0, "join")
    learned = time_until(
        pool, lambda: len(newcomer.engine.table) >= size - 1, 30.0, "knows the pool"
    )
    figures.join_learned = None if learned is None else pool.now - start
    subject = pool.nodes[3]
    pool.pause(subject)
    figures.pause = time_until(pool, lambda: everyone(pool, subject, paused), 10.0, "pause")
    leaving = pool.nodes[size // 2 + 3]
    pool.leave(leaving)
    figures.leave = time_until(pool, lambda: everyone(pool, leaving, gone), 10.0, "leave")
    crashed = pool.nodes[4]
    pool.crash(crashed)
    figures.crash = time_until(pool, lambda: everyone(pool, crashed, not_alive), 30.0, "crash")


def cut_and_heal(pool: SimPool, figures: Figures) -> None:
    pool.cut.add(frozenset({0, 1}))

    def split() -> bool:
        running = [n for n in pool.nodes if n.running]
        return all(
            not_alive(node.engine.table.get(other.engine.node_id))
            for node in running[:: max(1, len(running) // 20)]
            for other in running
            if other.link != node.link
        )

    figures.split = time_until(pool, split, 60.0, "split")
    pool.run_until(pool.now + 5.0)
    pool.cut.clear()

    def healed() -> bool:
        running = [n for n in pool.nodes if n.running]
        return all(
            alive(node.engine.table.get(other.engine.node_id))
            for node in running[:: max(1, len(running) // 20)]
            for other in running
            if other is not node
        )

    figures.heal = time_until(pool, healed, 60.0, "healed")


def run(
    size: int, loss: float, seconds: float, warm: float, seed: int, *, cut: bool = True
) -> Figures:
    started = time.process_time()
    pool = SimPool(loss=loss, seed=seed)
    for index in range(size):
        pool.add(0 if index < size // 2 else 1)
    pool.converge()
    pool.run_until(warm)
    figures = Figures(size, loss)
    steady(pool, figures, seconds)
    events(pool, figures)
    if cut:
        cut_and_heal(pool, figures)
    figures.wall = time.process_time() - started
    return figures


def seconds_text(value: float | None) -> str:
    return "  —  " if value is None else f"{value:5.2f}"


def report(rows: list[Figures]) -> None:
    print(
        f"{'members':>7} {'loss':>4} | {'KB/s in':>7} {'(max)':>6} {'out':>6} "
        f"{'dg/s in':>7} {'out':>5} | {'CPU %':>5} {'(max)':>5} | "
        f"{'join':>5} {'+pool':>5} {'pause':>5} {'leave':>5} {'crash':>5} "
        f"{'split':>5} {'heal':>5} | {'sim CPU s':>9}"
    )
    for f in rows:
        print(
            f"{f.size:7d} {f.loss:4.2f} | {f.kb_in:7.2f} {f.kb_in_max:6.2f} {f.kb_out:6.2f} "
            f"{f.dg_in:7.1f} {f.dg_out:5.1f} | {f.cpu:5.2f} {f.cpu_max:5.2f} | "
            f"{seconds_text(f.join)} {seconds_text(f.join_learned)} {seconds_text(f.pause)} "
            f"{seconds_text(f.leave)} {seconds_text(f.crash)} {seconds_text(f.split)} "
            f"{seconds_text(f.heal)} | {f.wall:9.1f}"
        )
    print(
        "targets at 1,000: ≤ 10 KB/s in and out, ≤ 1 % CPU, join ≤ 3 s, pause ≤ 1 s, "
        "crash ≤ 10 s; with 10 % loss none more than half again"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--loss", default="0,0.1")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warm", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--no-cut",
        action="store_true",
        help="skip the cut and its healing (at 1,000: an hour less)",
    )
    args = parser.parse_args()
    rows = []
    for size in (int(text) for text in args.sizes.split(",")):
        for loss in (float(text) for text in args.loss.split(",")):
            rows.append(run(size, loss, args.seconds, args.warm, args.seed, cut=not args.no_cut))
            report(rows[-1:])
            sys.stdout.flush()
    print()
    report(rows)


if __name__ == "__main__":
    main()
