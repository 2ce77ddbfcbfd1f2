"""The demo's cluster: four namespace workstations with real daemons, one genuinely slow.

    client  gcc-12; the compiler links are installed here and builds run here
    fast    gcc-12
    slow    gcc-12, held to 15 % of one CPU by a cgroup v1 cpu quota
    old     every gcc name runs gcc-11 (even x86_64-linux-gnu-gcc-12): must get no job

Shared by `scripts/demo_cluster.py` (the README's demo) and the scheduling check
(`benchmarks/scheduling.py`, `tests/integration/test_scheduling.py`), so what the demo
shows is what is measured.  Each workstation sees an idle `/proc/loadavg` of its own
(they share one kernel), calibrates its own speed (its own cache), and joins a pool
with a key.  `open_cluster` tears everything down on exit, on failure and on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from p2pcc import statefile
from tests.integration import project, workstation_compilers
from tests.integration.distccd_jobs import jobs_since, kill_orphaned_distccd, log_marks
from tests.integration.netbed import TestBed, Workstation
from tests.integration.office import build_env, control_status
from tests.integration.pool import Daemon, cli_env, share_key, wait_until
from tests.integration.project import Tree
from tests.integration.sampling import PeriodicSampler

NAMES = ("client", "fast", "slow", "old")
PEERS = NAMES[1:]
#: gcc-12 peers: the ones a hand-written DISTCC_HOSTS would list.
GCC12_PEERS = ("fast", "slow")
SLOW_CPU_SHARE = 0.15
#: Calibration under a 15 % quota takes about ten times as long as elsewhere.
CALIBRATION_TIMEOUT = 240.0
#: Where Debian's distcc keeps its masquerade links (`gcc -> ../../bin/distcc`).
DISTCC_MASQUERADE = "/usr/lib/distcc"
#: What the builds run (`make CC=gcc`): gcc-12 on every workstation but `old`.
COMPILER = "gcc"
#: A whole brotli build through the slow peer can take minutes.
BUILD_TIMEOUT = 600.0


def _quiet(_: str) -> None:
    """Default narrator: say nothing."""


@dataclass
class Cluster:
    """The running cluster: workstations, their daemons and the client's link directory."""

    home: Path
    stations: dict[str, Workstation]
    daemons: dict[str, Daemon]
    links: Path

    @property
    def client(self) -> Daemon:
        return self.daemons["client"]

    def client_status(self) -> dict[str, Any]:
        """The client's status document (from its control socket)."""
        status = wait_until(lambda: control_status(self.client), 30, "the client's status")
        assert isinstance(status, dict)
        return status

    def peers(self) -> dict[str, dict[str, Any]]:
        """The client's view of each peer, by name."""
        return {peer["name"]: peer for peer in self.client_status()["peers"]}

    def hosts_lines(self, compiler: str | None = None) -> list[str]:
        """The DISTCC_HOSTS lines in the client's state file now: every one, or those of
        the compiler named `compiler` on the client's PATH ("gcc")."""
        state = statefile.read(str(self.client.runtime_dir / statefile.FILE_NAME))
        if state is None:
            return []
        _, hosts, compilers, _ = state
        wanted = {fp for path, (_, fp, _) in compilers.items() if Path(path).name == compiler}
        return [line for fp, (_, line) in hosts.items() if compiler is None or fp in wanted]

    def listed(self, name: str) -> bool:
        """Whether workstation `name` is in any of the client's DISTCC_HOSTS lines now."""
        address = f"{self.stations[name].address}:"
        return any(word.startswith(address) for line in self.hosts_lines() for word in line.split())

    def p2pcc(self, *args: str, env: dict[str, str] | None = None) -> str:
        """`p2pcc ARGS --config ...` run in the client; its output."""
        result = self.stations["client"].run(
            [sys.executable, "-m", "p2pcc", *args, "--config", str(self.client.config_path)],
            env=env or cli_env(self.client.home),
            timeout=60,
            check=False,
        )
        return result.stdout + result.stderr


@contextlib.contextmanager
def open_cluster(
    home: Path,
    *,
    step: Callable[[str], None] = _quiet,
    detail: Callable[[str], None] = _quiet,
) -> Iterator[Cluster]:
    """Bring the cluster up under `home` (which other users can enter), narrating each
    `step` and its `detail`s; every daemon calibrated, the links installed on the client."""
    project.fetch(project.BROTLI)  # before the bed: the workstations have no route out
    with TestBed() as bed:
        daemons: dict[str, Daemon] = {}
        try:
            step("bringing up four workstations on a private bridge: " + ", ".join(NAMES))
            stations = {name: bed.add_workstation(name) for name in NAMES}
            for name, ws in stations.items():
                workstation_compilers.pretend_idle(ws, home)
                detail(f"{name:7} {ws.address}")
            step("old: every gcc name now runs gcc-11 (a partial upgrade that lies)")
            workstation_compilers.shadow_usr_bin(
                stations["old"], workstation_compilers.PURE11, home / "old-usr-bin"
            )
            detail(str(workstation_compilers.versions(stations["old"], ["gcc", "gcc-12"])))
            step(f"slow: limited to {SLOW_CPU_SHARE:.0%} of one CPU with a cgroup")
            stations["slow"].throttle(SLOW_CPU_SHARE)
            daemons.update(
                (name, Daemon(ws, home / name, own_cache=True)) for name, ws in stations.items()
            )
            step(
                "sharing the pool's key: `p2pcc keygen` on client, its token piped into "
                "`p2pcc join` on " + ", ".join(PEERS)
            )
            detail(share_key(list(daemons.values())).rstrip())
            step("starting p2pcc daemon on each (each starts its own distccd)")
            for daemon in daemons.values():
                daemon.start()
            cluster = Cluster(home, stations, daemons, home / "links")
            _wait_calibrated(cluster, step, detail)
            step(f"installing the compiler links on client into {cluster.links}")
            detail(cluster.p2pcc("install-links", str(cluster.links)).rstrip())
            yield cluster
        finally:
            bed.close()
            for daemon in daemons.values():
                kill_orphaned_distccd(daemon)


def _wait_calibrated(
    cluster: Cluster, step: Callable[[str], None], detail: Callable[[str], None]
) -> None:
    """Wait until the client sees every peer with the power its calibration gave it."""
    wait_until(lambda: len(cluster.peers()) == len(PEERS), 60, "the client to see three peers")
    step("waiting for each workstation to measure its own speed (the slow one takes a while)")
    wait_until(
        lambda: all("power index" in d.log_text() for d in cluster.daemons.values()),
        CALIBRATION_TIMEOUT,
        "every daemon's calibration",
    )
    time.sleep(3 * 0.5)  # a few gossip intervals: the client hears the new figures
    for name, peer in cluster.peers().items():
        detail(f"{name:5} power {peer['power']:.2f}  cpus {peer['cpus']}  slots {peer['slots']}")


@dataclass
class Build:
    """One finished build of the cluster: how it went, and where each job compiled."""

    mode: str  # "p2pcc" (the links), else a STATIC_LISTS key (distcc's masquerade)
    tree: Tree
    returncode: int
    seconds: float
    output: str
    hosts: str  # the DISTCC_HOSTS line (p2pcc: the client's line when the build started)
    jobs: dict[str, int]  # compile jobs per workstation; "client" = compiled locally
    slots: dict[str, int] = field(default_factory=dict)  # most slots each had in a line
    #: Each peer's longest job: distccd's `time:` in seconds (connection to reply), source.
    longest: dict[str, tuple[float, str]] = field(default_factory=dict)

    def per_slot(self, name: str) -> float:
        """Jobs `name` compiled per slot it was given (a slot never given counts as one)."""
        return self.jobs[name] / max(1, self.slots.get(name, 0))


#: Hand-written host lists: "static" is what a user writes (every gcc-12 machine,
#: equal slots); "static-fast" leaves the slow peer out, to tell what that alone buys.
STATIC_LISTS = {"static": GCC12_PEERS, "static-fast": ("fast",)}


def static_hosts(cluster: Cluster, slots: int, mode: str = "static") -> str:
    """A hand-written DISTCC_HOSTS: localhost and the peers of `STATIC_LISTS[mode]`,
    `slots` each."""
    peers = (f"{cluster.stations[name].address}:3632/{slots}" for name in STATIC_LISTS[mode])
    return " ".join((f"localhost/{slots}", *peers))


class _LineWatcher(PeriodicSampler):
    """Polls the client's state file during a build: the most slots each workstation
    was given in any DISTCC_HOSTS line (the wrapper reads the same file per compile)."""

    def __init__(self, cluster: Cluster) -> None:
        super().__init__(0.25)
        self._cluster = cluster
        self._by_address = {ws.address: name for name, ws in cluster.stations.items()}
        self.slots: dict[str, int] = {}

    def sample(self) -> None:
        for line in self._cluster.hosts_lines(COMPILER):
            for word in line.split():
                match = re.fullmatch(r"(localhost|[\d.]+:\d+)/(\d+).*", word)
                if match is None:
                    continue
                host = match.group(1)
                name = "client" if host == "localhost" else self._by_address.get(host.split(":")[0])
                if name is not None:
                    self.slots[name] = max(self.slots.get(name, 0), int(match.group(2)))


def build(
    cluster: Cluster, mode: str, jobs: int, *, leave_out: tuple[str, ...] = (), slots: int = 2
) -> Build:
    """Build brotli in the client with `make -jJOBS CC=gcc`: through the p2pcc links
    ("p2pcc"), or through distcc's masquerade with `static_hosts(cluster, slots, mode)`
    ("static", "static-fast").  Each build gets a fresh tree and a fresh DISTCC_DIR."""
    index = len(list(cluster.home.glob("build-*"))) + 1
    tree = project.unpack(project.BROTLI, cluster.home / f"build-{index}", leave_out=leave_out)
    links = cluster.links if mode == "p2pcc" else None
    env = build_env(links, cluster.home / f"distcc-dir-{index}")
    env["DISTCC_LOG"] = str(cluster.home / f"distcc-{index}.log")
    if mode != "p2pcc":
        # distcc itself (unlike the wrapper) compiles everything locally, silently,
        # when DISTCC_DIR does not exist.
        Path(env["DISTCC_DIR"]).mkdir()
        env["PATH"] = f"{DISTCC_MASQUERADE}:{env['PATH']}"
        env["DISTCC_HOSTS"] = static_hosts(cluster, slots, mode)
        hosts = env["DISTCC_HOSTS"]
    else:
        hosts = " | ".join(cluster.hosts_lines(COMPILER))
    marks = log_marks(cluster.daemons)
    argv = project.make_command(tree, COMPILER, jobs, BUILD_TIMEOUT)
    with _LineWatcher(cluster) as watcher:
        started = time.monotonic()
        result = cluster.stations["client"].run(
            argv, env=env, check=False, timeout=BUILD_TIMEOUT + 30, start_new_session=True
        )
        seconds = time.monotonic() - started
    records = jobs_since(cluster.daemons, marks, cluster.stations["client"])
    counts = {name: sum(1 for r in records[name] if r.ok) for name in PEERS}
    counts["client"] = len(tree.sources) - sum(counts.values())
    if mode != "p2pcc":
        given = {"client": slots, **dict.fromkeys(STATIC_LISTS[mode], slots)}
    else:
        given = watcher.slots
    longest = {
        name: max((r.seconds, r.source) for r in records[name]) for name in PEERS if records[name]
    }
    output = result.stdout + result.stderr
    return Build(mode, tree, result.returncode, seconds, output, hosts, counts, given, longest)
