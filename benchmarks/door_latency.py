"""How fast distccd's door follows the pool: membership event to nft set, and one update's cost.

Runs the daemon's real door task (`serve_door`) and timer task (`serve_timers`) on a
`LocalNode` fed through the same path as the gossip receive loop (`node.receive`), on
the real clock, with real `nft` in a network namespace of its own (the script re-runs
itself under `unshare --net`, so the machine's own ruleset is never touched; root).
Each round, one peer joins and then says goodbye (LEAVE), and another joins and falls
silent until the timer task declares it dead.  For each event the figure is the time
from the moment the daemon sees it (the datagram handed to the node; for a death, the
deadline at which the timer declares it) to the moment `nft` has committed the set
change (nft returned).  The update cost is one `nft -f -` run of an element change;
the set-up cost is the whole table in one transaction.  Medians (and max) over N.

    sudo .venv/bin/python benchmarks/door_latency.py [--rounds 30]
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from p2pcc.core.auth import Keyring
from p2pcc.core.door import DoorPolicy, table_script
from p2pcc.core.gossip import GossipEngine
from p2pcc.core.gossip_types import Transport
from p2pcc.core.local_compilers import LocalCompiler
from p2pcc.core.node import LocalNode
from p2pcc.core.peers import PeerTimings
from p2pcc.daemon.changes import ChangeBoard
from p2pcc.daemon.door import open_door, run_nft, serve_door
from p2pcc.daemon.timers import serve_timers
from tests.core.local_nodes import WALL, fingerprint, gossip, make_node, status
from tests.core.policies import default_policy

INNER = "P2PCC_DOOR_BENCH_INNER"
#: Short liveness timings, so a death takes a fraction of a second to be declared.
TIMINGS = PeerTimings(suspect_after=0.2, dead_after=0.4, forget_after=30.0)
POLICY = DoorPolicy(3632)


class TimedNft:
    """Runs nft, timing each element change and noting when it was committed."""

    def __init__(self) -> None:
        self.costs: dict[str, list[float]] = {"add cost": [], "delete cost": []}
        self.committed = trio.Event()
        self.committed_at = 0.0

    async def __call__(self, args: Sequence[str], script: str) -> str:
        started = time.perf_counter()
        output = await run_nft(args, script)
        if script.startswith(("add element", "delete element")):
            kind = "add cost" if script.startswith("add") else "delete cost"
            self.costs[kind].append(time.perf_counter() - started)
            self.committed_at = trio.current_time()
            self.committed.set()
        return output

    async def wait_commit(self) -> float:
        """When the next element change was committed; then arm for the one after."""
        with trio.fail_after(10):
            await self.committed.wait()
        self.committed = trio.Event()
        return self.committed_at


def local_node(board: ChangeBoard, now: float) -> LocalNode:
    engine = GossipEngine(
        node_id=bytes([1]) * 16,
        incarnation=1,
        keyring=Keyring(),
        status=status("ws1", "10.0.0.1"),
        interval=0.1,
        timings=TIMINGS,
        now=now,
    )
    compilers = [LocalCompiler(fingerprint(), ("gcc", "cc"))]
    return LocalNode(
        engine=engine, compilers=compilers, policy=default_policy(), now=now, on_change=board.notify
    )


async def measure(rounds: int) -> dict[str, list[float]]:
    board, nft = ChangeBoard(), TimedNft()
    node = local_node(board, trio.current_time())
    figures: dict[str, list[float]] = {"join": [], "leave": [], "death": []}
    async with open_door(POLICY, lambda report: None, nft) as door, trio.open_nursery() as n:
        assert door.up, door.problem
        await n.start(serve_timers, node, board)
        await n.start(serve_door, door, node, board)
        for index in range(rounds):
            leaver, dier = make_node(2 + 2 * index), make_node(3 + 2 * index)
            for peer in (leaver, dier):
                seen = trio.current_time()
                gossip(peer, node, seen)
                figures["join"].append(await nft.wait_commit() - seen)
            seen = trio.current_time()
            goodbye = leaver.leave_datagram(seen, WALL + seen)
            node.receive(goodbye.data, ("10.0.0.2", 3634), Transport.MULTICAST, seen)
            figures["leave"].append(await nft.wait_commit() - seen)
            dead_at = node.peers()[-1].last_heard + TIMINGS.dead_after
            figures["death"].append(await nft.wait_commit() - dead_at)
        listed = await run_nft(("list", "set", "inet", POLICY.table, "members_v4"), "")
        assert "elements" not in listed, listed  # everyone left or died: the set is empty
        n.cancel_scope.cancel()
    figures.update(nft.costs)
    figures["set-up cost"] = await setup_costs(rounds)
    return figures


async def setup_costs(rounds: int) -> list[float]:
    """The whole table, with 50 members, in one transaction (what start-up runs)."""
    members = [ipaddress.ip_address(f"10.0.0.{i}") for i in range(2, 52)]
    script = table_script(POLICY, members)
    costs = []
    for _ in range(rounds):
        started = time.perf_counter()
        await run_nft(("-f", "-"), script)
        costs.append(time.perf_counter() - started)
    await run_nft(("-f", "-"), f"delete table inet {POLICY.table}\n")
    return costs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30, help="rounds (each 4 events), <= 100")
    args = parser.parse_args()
    if not 1 <= args.rounds <= 100:
        parser.error("--rounds must be 1..100 (two fresh node ids per round)")
    if os.environ.get(INNER) != "1":
        # A network namespace of our own: the machine's ruleset is never touched.
        env = dict(os.environ, **{INNER: "1"})
        command = ["unshare", "--net", "--", sys.executable, *sys.argv]
        return subprocess.run(command, env=env, check=False).returncode
    figures = trio.run(measure, args.rounds)
    print(f"distccd's door, {args.rounds} rounds, nft {nft_version()}")
    for name, values in figures.items():
        ms = sorted(value * 1000 for value in values)
        print(
            f"  {name:<12} median {statistics.median(ms):7.2f} ms   max {ms[-1]:7.2f} ms"
            f"   (n={len(ms)})"
        )
    print("  join/leave/death: event seen -> nft committed; costs: one nft -f - run")
    return 0


def nft_version() -> str:
    done = subprocess.run(["nft", "--version"], capture_output=True, text=True, check=False)
    return done.stdout.strip().removeprefix("nftables ").split()[0] if done.stdout else "?"


if __name__ == "__main__":
    sys.exit(main())
