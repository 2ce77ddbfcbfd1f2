"""Builds as issue 13's scheduling benchmarks run them, on test-bed workstations.

Shared by `benchmarks/concurrent_clients.py`, `slow_peer.py` and `live_jobs.py`: a pool
of workstations each showing its daemon an idle load of its own, a fresh tree and
DISTCC_DIR per build, the three ways of building (`p2pcc build` through the
links, distcc's own masquerade with a hand-written list, icecream's masquerade), builds
started in the background so several clients can start at the same moment, and when
each object was written (its mtime: the client writes every object itself, whichever
host compiled it, so the newest one is the build's last).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.integration import project, workstation_compilers
from tests.integration.distccd_jobs import kill_orphaned_distccd
from tests.integration.netbed import TestBed, Workstation
from tests.integration.office import build_env
from tests.integration.pool import Daemon, cli_env
from tests.integration.project import Tree

#: Where Debian's distcc keeps its masquerade links (`gcc -> ../../bin/distcc`).
DISTCC_MASQUERADE = "/usr/lib/distcc"
#: What every build compiles with (`make CC=gcc`): gcc-12 everywhere in these beds.
COMPILER = "gcc"


@contextlib.contextmanager
def idle_pool(home: Path, names: Sequence[str]) -> Iterator[tuple[TestBed, dict[str, Daemon]]]:
    """A bed of workstations `names`, each showing its daemon an idle `/proc/loadavg` of
    its own, with their daemons started (not yet waited for); everything torn down on
    exit, distccd processes the daemons left behind included."""
    with TestBed() as bed:
        daemons: dict[str, Daemon] = {}
        try:
            for name in names:
                ws = bed.add_workstation(name)
                workstation_compilers.pretend_idle(ws, home)
                daemons[name] = Daemon(ws, home / name)
            for daemon in daemons.values():
                daemon.start()
            yield bed, daemons
        finally:
            bed.close()
            for daemon in daemons.values():
                kill_orphaned_distccd(daemon)


@dataclass
class Running:
    """A build started in the background in one workstation."""

    name: str  # the client workstation's name
    tree: Tree
    process: subprocess.Popen[Any]
    output: Path
    started: float  # time.monotonic()
    wall_started: float  # time.time(), to compare with the objects' mtimes

    def finish(self, timeout: float) -> Finished:
        """Wait for the build to end (killed by its own `timeout` before `timeout`)."""
        return finish_all([self], timeout)[0]


@dataclass
class Finished:
    """A build that ended: its status, its makespan, and when (wall clock)."""

    run: Running
    returncode: int
    seconds: float
    wall_ended: float

    @property
    def complete(self) -> bool:
        """It succeeded and left every object."""
        built = set(project.objects(self.run.tree.path))
        return self.returncode == 0 and built == self.run.tree.object_names

    def tail(self) -> str:
        return self.run.output.read_text(errors="replace")[-3000:]


def finish_all(runs: Sequence[Running], timeout: float) -> list[Finished]:
    """Wait for every build to end, noting each one's end as it happens (polled every
    50 ms: waiting for one after the other would date a build that ended first at the
    end of the one waited for before it)."""
    deadline = time.monotonic() + timeout
    ended: dict[int, Finished] = {}
    while len(ended) < len(runs):
        for index, run in enumerate(runs):
            returncode = run.process.poll()
            if index not in ended and returncode is not None:
                seconds = time.monotonic() - run.started
                ended[index] = Finished(run, returncode, seconds, time.time())
        if time.monotonic() > deadline:
            raise TimeoutError(f"builds still running after {timeout:.0f} s")
        time.sleep(0.05)
    return [ended[index] for index in range(len(runs))]


def fresh(home: Path, label: str, tree_project: project.Project) -> tuple[Tree, Path]:
    """A new tree under `home/label` and a DISTCC_DIR path for it (not created)."""
    tree = project.unpack(tree_project, home / label)
    return tree, home / f"{label}-distcc-dir"


def p2pcc_build(
    daemon: Daemon, links: Path, tree: Tree, distcc_dir: Path, timeout: float
) -> tuple[list[str], dict[str, str]]:
    """`p2pcc build make` through `links`, with whatever -j p2pcc picks: its argv and
    environment (the wrapper makes the DISTCC_DIR)."""
    make = ["make", "-C", str(tree.path), f"CC={COMPILER}"]
    argv = ["timeout", "-k", "5", str(timeout), sys.executable, "-m", "p2pcc", "build"]
    argv += ["--config", str(daemon.config_path), "--links", str(links)]
    argv += ["--compiler", COMPILER, *make]
    env = build_env(None, distcc_dir)
    env["P2PCC_CACHE_DIR"] = cli_env(daemon.home)["P2PCC_CACHE_DIR"]
    return argv, env


def masquerade_build(
    tree: Tree, distcc_dir: Path, hosts: str, jobs: int, timeout: float
) -> tuple[list[str], dict[str, str]]:
    """distcc's masquerade (`/usr/lib/distcc` first in PATH) with a hand-written
    DISTCC_HOSTS and `make -jJOBS`; the DISTCC_DIR is made here (distcc compiles
    everything locally, silently, when it does not exist)."""
    distcc_dir.mkdir()
    env = build_env(None, distcc_dir)
    env["PATH"] = f"{DISTCC_MASQUERADE}:{env['PATH']}"
    env["DISTCC_HOSTS"] = hosts
    return project.make_command(tree, COMPILER, jobs, timeout), env


def start(
    name: str,
    ws: Workstation,
    *,
    tree: Tree,
    argv: Sequence[str],
    env: Mapping[str, str],
    output: Path,
) -> Running:
    """Start `argv` in `ws` in the background, its output to `output`."""
    with output.open("w") as out:
        started, wall = time.monotonic(), time.time()
        process = ws.start(argv, env=dict(env), stdout=out, stderr=subprocess.STDOUT)
    return Running(name, tree, process, output, started, wall)


def object_times(tree: Tree) -> dict[str, float]:
    """When each object of the tree was written (mtime), by its source's path."""
    times = {}
    for source in tree.sources:
        obj = tree.path / Path(source).with_suffix(".o")
        if obj.exists():
            times[source] = obj.stat().st_mtime
    return times


def recommended_jobs(daemon: Daemon) -> str:
    """`p2pcc jobs gcc` on the daemon's workstation now: the -j `p2pcc build` picks."""
    result = daemon.cli("jobs", COMPILER, check=False)
    return result.stdout.strip() or "?"


def bench_options(
    doc: str, modes: Sequence[str], *, pool_options: bool = False
) -> argparse.Namespace:
    """A benchmark's command line (`--rounds`, `--modes`, and with `pool_options` the
    concurrent pool's `--local-weight` and `--by-command`), after checking it runs as
    root (it makes network namespaces and cgroups)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--rounds", type=int, default=1, help="rounds of every mode (default 1)")
    parser.add_argument("--modes", default=",".join(modes), help="comma-separated subset")
    if pool_options:
        parser.add_argument(
            "--local-weight",
            type=float,
            metavar="W",
            help="the daemons' ranking.local_weight (default: the configuration's default)",
        )
        parser.add_argument(
            "--by-command",
            action="store_true",
            help="also split each mode's CPU by command name (kernel process accounting)",
        )
    options = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root: it makes network namespaces and cgroups")
    return options
