"""The bed of `benchmarks/concurrent_clients.py`: four half-CPU workstations, one pool.

`open_pool` brings it up: workstations `a`..`d` with a keyed p2pcc daemon each, then
each one's processes moved into a cgroup holding half a CPU (`throttle`,
`adopt_processes`: the daemon reads the quota, the bed's cgroup hierarchy being visible
in its mount namespace), a load average of its own (`own_load`), a cpuacct group each
(`cpu_account`), and the compiler links of each client; plus `sched`, unthrottled, for
icecream's scheduler and the reference build.  `run_mode` runs the three clients' builds
of one mode at the same moment and measures them (the benchmark's docstring says why
each mode is set up as it is).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.integration import bench_builds, icecream, project
from tests.integration.cpu_account import CpuAccount
from tests.integration.distccd_jobs import jobs_since, kill_orphaned_distccd, log_marks
from tests.integration.line_watch import LineWatch
from tests.integration.netbed import TestBed, Workstation
from tests.integration.office import build_env, control_status, install_links
from tests.integration.own_load import OwnLoad, own_load
from tests.integration.pool import Daemon, wait_until
from tests.integration.process_accounting import accounting

NAMES = ("a", "b", "c", "d")
CLIENTS = ("a", "b", "c")
CPU_SHARE = 0.5
PROJECT = project.BORINGSSL
#: The workstation the "build alone" reference runs on (not a client: no links there).
REFERENCE_STATION = "d"
HAND_JOBS = 4
ICECREAM_JOBS = 4
BUILD_TIMEOUT = 900.0
#: A `p2pcc` build starts once every workstation's load average is below this (a
#: workstation that has just built looks busy to its daemon for a minute or two)...
SETTLED_LOAD = 0.3
#: ...or after this many seconds.
SETTLE_TIMEOUT = 150.0

Say = Callable[[str], None]


@dataclass
class Pool:
    """The running bed: workstations, daemons, links, counters."""

    home: Path
    stations: dict[str, Workstation]
    daemons: dict[str, Daemon]
    sched: Workstation
    account: CpuAccount
    loads: OwnLoad
    #: Whether each mode's window is also split by command name (process accounting).
    by_command: bool = False

    def links(self, name: str) -> Path:
        return self.home / f"links-{name}"


@dataclass
class ModeResult:
    """One mode's three builds, measured."""

    mode: str
    makespans: dict[str, float]
    window: float
    busy: float  # the four workstations' CPU over capacity x window
    complete: bool
    jobs_note: str  # the -j each client used
    served: dict[str, int] = field(default_factory=dict)
    local: dict[str, int] = field(default_factory=dict)
    #: Per client: its last object written, seconds after its build started.
    last_object: dict[str, float] = field(default_factory=dict)
    #: Per workstation: CPU seconds its p2pcc daemon and the helpers it ran used in the
    #: window (0 while stopped: the anchors run with the daemons stopped).
    daemon_cpu: dict[str, float] = field(default_factory=dict)
    #: Per workstation: its CPU over its half CPU x the window.
    busy_by_station: dict[str, float] = field(default_factory=dict)
    #: CPU seconds by command name of the processes that exited in the window (the whole
    #: machine's; empty unless `Pool.by_command`).
    cpu_by_command: dict[str, float] = field(default_factory=dict)
    #: p2pcc only: the clients' gcc lines over the window (`LineWatch.summary`).
    lines: str = ""
    #: p2pcc only: what each client measured of its peers, at the end (`_measured`).
    measured: str = ""


@contextlib.contextmanager
def open_pool(home: Path, say: Say, extra_config: str = "") -> Iterator[Pool]:
    """The bed, ready, torn down on exit (on failure and Ctrl-C too); `extra_config` is
    added to every daemon's configuration (TOML)."""
    with TestBed() as bed:
        daemons: dict[str, Daemon] = {}
        try:
            stations = {name: bed.add_workstation(name) for name in NAMES}
            sched = bed.add_workstation("sched")
            daemons.update(
                (name, Daemon(ws, home / name, extra_config)) for name, ws in stations.items()
            )
            for daemon in daemons.values():
                daemon.start()
            wait_until(lambda: all(_sees_all(d, NAMES) for d in daemons.values()), 60, "tables")
            for ws in stations.values():
                ws.throttle(CPU_SHARE)
                ws.adopt_processes()
            with (
                own_load(stations.values(), home) as loads,
                CpuAccount([*stations.values(), sched]) as account,
            ):
                pool = Pool(home, stations, daemons, sched, account, loads)
                for name in CLIENTS:
                    install_links(daemons[name], pool.links(name), daemons[name].config_path)
                _show_pool(pool, say)
                yield pool
        finally:
            bed.close()
            for daemon in daemons.values():
                kill_orphaned_distccd(daemon)


def _sees_all(daemon: Daemon, names: Sequence[str]) -> bool:
    """Whether `daemon` holds every other workstation alive (from its control socket)."""
    status = control_status(daemon)
    return status is not None and _alive_all(status, daemon, names)


def _alive_all(status: dict[str, Any], daemon: Daemon, names: Sequence[str]) -> bool:
    alive = {peer["name"] for peer in status["peers"] if peer["liveness"] == "alive"}
    return {name for name in names if name != daemon.ws.name} <= alive


def _admits_all(daemon: Daemon, names: Sequence[str]) -> bool:
    """Whether `daemon` holds every other workstation alive and its door admits them all:
    a daemon stopped before its door caught up would refuse them for the whole mode."""
    status = control_status(daemon)
    if status is None or not _alive_all(status, daemon, names):
        return False
    door = status["node"].get("door") or {}
    return int(door.get("members", 0)) >= len(names) - 1


def _show_pool(pool: Pool, say: Say) -> None:
    """Wait until each daemon reads its quota (cpus 1), then say how `a` sees everyone."""

    def node(name: str) -> dict[str, object]:
        status = control_status(pool.daemons[name])
        return {} if status is None else dict(status["node"])

    wait_until(lambda: all(node(n).get("cpus") == 1 for n in NAMES), 60, "quotas read")
    for name in NAMES:
        seen = node(name)
        say(
            f"{name}: cpus {seen['cpus']} slots {seen['slots']} power {seen['power']:.2f}"
            f" load {seen['load']:.2f} (as its daemon reports itself)"
        )


@dataclass(frozen=True)
class Reference:
    """One local build of the project, measured two ways."""

    cpu_seconds: float  # `make -j2` in the unthrottled `sched`: its cgroup's counter
    alone_seconds: float  # `make -j2` alone on `d` (half a CPU, daemons stopped): wall


def reference_work(pool: Pool, label: str) -> Reference:
    """One local build's CPU seconds (unthrottled, in `sched`) and one local build's
    wall time alone on a workstation of the pool (`d`: half a CPU, every daemon stopped,
    no links), the issue's "each alone"."""
    # Alone on `d` first: the unthrottled build after it gives `d`'s load average time
    # to fall before a p2pcc round (which also waits for it, `settle`).
    station = pool.stations[REFERENCE_STATION]
    tree, _ = bench_builds.fresh(pool.home, f"{label}-alone", PROJECT)
    argv = project.make_command(tree, bench_builds.COMPILER, 2, BUILD_TIMEOUT)
    with stopped_daemons(pool):
        started = time.monotonic()
        result = station.run(pool.account.wrap(station, argv), timeout=BUILD_TIMEOUT + 30)
        alone = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-2000:]
    tree, _ = bench_builds.fresh(pool.home, f"{label}-cpu", PROJECT)
    argv = project.make_command(tree, bench_builds.COMPILER, 2, BUILD_TIMEOUT)
    before = pool.account.seconds(pool.sched)
    result = pool.sched.run(pool.account.wrap(pool.sched, argv), timeout=BUILD_TIMEOUT + 30)
    assert result.returncode == 0, result.stderr[-2000:]
    cpu_seconds = pool.account.seconds(pool.sched) - before
    return Reference(cpu_seconds, alone)


@contextlib.contextmanager
def stopped_daemons(pool: Pool) -> Iterator[None]:
    """The p2pcc daemons stopped (SIGSTOP; their distccd keeps serving, behind a door
    first seen to admit every other workstation), then resumed and waited for until every
    one sees the others alive and admits them again."""
    groups = [d.process.pid for d in pool.daemons.values() if d.process is not None]
    wait_until(lambda: all(_admits_all(d, NAMES) for d in pool.daemons.values()), 60, "doors")
    for group in groups:
        os.killpg(group, signal.SIGSTOP)
    try:
        yield
    finally:
        for group in groups:
            os.killpg(group, signal.SIGCONT)
        wait_until(lambda: all(_admits_all(d, NAMES) for d in pool.daemons.values()), 60, "doors")


def settle(pool: Pool, say: Say) -> None:
    """Wait (bounded) until every workstation's own load average is below SETTLED_LOAD."""
    started = time.monotonic()
    deadline = started + SETTLE_TIMEOUT
    while time.monotonic() < deadline:
        if all(pool.loads.load(ws) < SETTLED_LOAD for ws in pool.stations.values()):
            break
        time.sleep(1)
    loads = ", ".join(f"{n} {pool.loads.load(ws):.2f}" for n, ws in pool.stations.items())
    say(f"loads settled after {time.monotonic() - started:.0f} s: {loads}")


def run_mode(pool: Pool, mode: str, label: str, say: Say) -> ModeResult:
    """The three clients' builds of `mode`, started together, measured."""
    if mode == "p2pcc":
        settle(pool, say)
        return _measure(pool, mode, label)
    with stopped_daemons(pool):
        if mode == "hand":
            return _measure(pool, mode, label)
        stations = list(pool.stations.values())
        with icecream.icecream(pool.sched, stations, pool.home / f"{label}-ice") as ice:
            return _measure(pool, mode, label, ice)


def _commands(
    pool: Pool, mode: str, label: str, ice: icecream.Icecream | None
) -> dict[str, tuple[project.Tree, list[str], dict[str, str], str]]:
    """Per client: its fresh tree, the build's argv and environment, and its -j."""
    commands = {}
    for name in CLIENTS:
        ws = pool.stations[name]
        tree, distcc_dir = bench_builds.fresh(pool.home, f"{label}-{name}", PROJECT)
        if mode == "p2pcc":
            jobs = bench_builds.recommended_jobs(pool.daemons[name])
            links = pool.links(name)
            argv, env = bench_builds.p2pcc_build(
                pool.daemons[name], links, tree, distcc_dir, BUILD_TIMEOUT
            )
        elif mode == "hand":
            jobs = str(HAND_JOBS)
            others = (f"{o.address}:3632/1" for n, o in pool.stations.items() if n != name)
            hosts = " ".join(("localhost/1", *others))
            argv, env = bench_builds.masquerade_build(
                tree, distcc_dir, hosts, HAND_JOBS, BUILD_TIMEOUT
            )
        else:
            assert ice is not None
            jobs = str(ICECREAM_JOBS)
            argv = project.make_command(tree, bench_builds.COMPILER, ICECREAM_JOBS, BUILD_TIMEOUT)
            env = ice.client_env(ws, build_env(None, distcc_dir), _ice_log(pool, label, name))
        commands[name] = (tree, pool.account.wrap(ws, argv), env, jobs)
    return commands


def _ice_log(pool: Pool, label: str, name: str) -> Path:
    return pool.home / f"{label}-{name}-icecc.log"


def _measured(pool: Pool) -> str:
    """Per client, from its status: each peer's relative turnaround and delivered share
    (a peer judged slow is left out of the line), and the jobs it took back."""
    parts = []
    for name in CLIENTS:
        status = control_status(pool.daemons[name])
        if status is None:
            parts.append(f"{name}: no status")
            continue
        peers = []
        for peer in sorted(status["peers"], key=lambda p: str(p["name"])):
            relative = peer["turnaround"]["relative"]
            shown = "-" if relative is None else f"{relative:.1f}x"
            peers.append(f"{peer['name']} {shown} delivered {peer['delivered']:.2f}")
        taken = status["counters"]["jobs_taken_back"]
        parts.append(f"{name}: {', '.join(peers)}; took back {taken}")
    return ";  ".join(parts)


def _measure(pool: Pool, mode: str, label: str, ice: icecream.Icecream | None = None) -> ModeResult:
    commands = _commands(pool, mode, label, ice)
    pool.account.adopt()
    marks = log_marks(pool.daemons)
    before = {n: pool.account.seconds(ws) for n, ws in pool.stations.items()}
    daemons_before = _daemon_seconds(pool)
    started = time.monotonic()
    watch = LineWatch({n: pool.daemons[n] for n in CLIENTS}, bench_builds.COMPILER)
    with contextlib.ExitStack() as watching:
        if mode == "p2pcc":
            watching.enter_context(watch)
        by_command = (
            watching.enter_context(accounting(pool.home / f"{label}.pacct"))
            if pool.by_command
            else None
        )
        finished = _run_builds(pool, label, commands)
    window = time.monotonic() - started
    daemons_after = _daemon_seconds(pool)
    spent = {n: pool.account.seconds(ws) - before[n] for n, ws in pool.stations.items()}
    used = sum(spent.values())
    result = ModeResult(
        mode,
        {f.run.name: f.seconds for f in finished},
        window,
        used / (len(NAMES) * CPU_SHARE * window),
        all(f.complete for f in finished),
        " ".join(f"{n} -j{c[3]}" for n, c in commands.items()),
    )
    result.daemon_cpu = {n: daemons_after[n] - daemons_before[n] for n in daemons_before}
    result.cpu_by_command = dict(by_command or {})
    result.busy_by_station = {n: seconds / (CPU_SHARE * window) for n, seconds in spent.items()}
    if mode == "p2pcc":
        jobs = [int(c[3]) for c in commands.values() if c[3].isdigit()]
        result.lines = watch.summary(max(jobs, default=HAND_JOBS))
        result.measured = _measured(pool)
    for f in finished:
        times = bench_builds.object_times(f.run.tree).values()
        result.last_object[f.run.name] = max(times, default=f.run.wall_started) - f.run.wall_started
        if not f.complete:
            print(f"--- {f.run.name} ({mode}) exit {f.returncode}\n{f.tail()}")
    _count_jobs(pool, result, label, marks, {n: len(c[0].sources) for n, c in commands.items()})
    return result


def _run_builds(
    pool: Pool,
    label: str,
    commands: dict[str, tuple[project.Tree, list[str], dict[str, str], str]],
) -> list[bench_builds.Finished]:
    """The clients' builds started together; each one's end."""
    running = [
        bench_builds.start(
            n,
            pool.stations[n],
            tree=tree,
            argv=argv,
            env=env,
            output=pool.home / f"{label}-{n}.out",
        )
        for n, (tree, argv, env, _) in commands.items()
    ]
    return bench_builds.finish_all(running, BUILD_TIMEOUT + 60)


def _daemon_seconds(pool: Pool) -> dict[str, float]:
    """CPU seconds each daemon has used: its threads, and the helpers it started and
    reaped (`nft`, compiler probes).  distccd, its long-lived child, is reaped only when
    it stops, so the compiles it serves are in the workstation's counter, not here."""
    seconds = {}
    for name, daemon in pool.daemons.items():
        if daemon.process is None:
            continue
        fields = Path(f"/proc/{daemon.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
        seconds[name] = ticks / os.sysconf("SC_CLK_TCK")
    return seconds


def _count_jobs(
    pool: Pool, result: ModeResult, label: str, marks: dict[str, int], sources: dict[str, int]
) -> None:
    """Jobs each workstation served and each client compiled at home."""
    by_address = {ws.address: name for name, ws in pool.stations.items()}
    for client in CLIENTS:
        if result.mode == "icecream":
            counts = icecream.jobs_by_host(_ice_log(pool, label, client))
            remote = {by_address.get(a, a): n for a, n in counts.items() if a != "local"}
        else:
            records = jobs_since(pool.daemons, marks, pool.stations[client])
            remote = {name: sum(1 for r in rs if r.ok) for name, rs in records.items()}
        for name, count in remote.items():
            result.served[name] = result.served.get(name, 0) + count
        result.local[client] = sources[client] - sum(remote.values())
