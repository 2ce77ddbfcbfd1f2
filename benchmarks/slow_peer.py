"""A peer slow for a reason its daemon cannot read (issue 13, deliverable 4(a)).

Four namespace workstations in one keyed pool, all gcc-12: `client` (the builds run
here), `fast1`, `fast2`, and `slow`, whose distccd (its whole session, so every compile
it starts) is held to 10 % of one CPU by a cgroup its daemon is not in: the daemon reads
no quota and announces the slots and power of a normal machine, as with thermal
throttling or a noisy VM neighbour (tests/integration/test_turnaround.py does the
same).  Every workstation shows its daemon an idle `/proc/loadavg` of its own.  The
project is BoringSSL's libcrypto (234 C files, -O2 -g, tests/integration/project.py),
built in the client four ways, each with a fresh tree and DISTCC_DIR (rounds alternate
the order):

* `p2pcc`: `p2pcc build make` through the links, the slow peer in the pool;
* `p2pcc-without`: the same with the slow peer out of the pool (`p2pcc pause` on it,
  and the build starts once the client's lines no longer list it; resumed afterwards);
* `hand`: distcc's masquerade with the list a user writes, every machine two slots
  (each has the machine's 2 CPUs): `localhost/2 F1/2 F2/2 SLOW/2`, `make -j8`;
* `hand-without`: `localhost/2 F1/2 F2/2`, `make -j6`.

Prints each build's makespan, the jobs each host compiled, the ratio p2pcc / p2pcc-
without (issue 13's target: at most 1.05), and which host compiled the build's last
object: every object is written by the client, whichever host compiled it, so the
newest object file is the last job to finish, and the distccd logs say where it ran
(a source no distccd logged was compiled at home).  When that host is the slow peer,
also how long the build waited for it after the last object compiled elsewhere.  Needs
root; run under the shared lock:

    flock /tmp/p2pcc-heavy.lock .venv/bin/python benchmarks/slow_peer.py --rounds 2
"""

from __future__ import annotations

import contextlib
import shutil
import statistics
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from p2pcc import statefile
from tests.integration import bench_builds, project
from tests.integration.distccd_jobs import jobs_since, log_marks
from tests.integration.distccd_log_lines import JobRecord
from tests.integration.office import control_status, install_links
from tests.integration.pool import Daemon, wait_until
from tests.integration.test_turnaround import starve_distccd

PREFIX = "SLOW-PEER-FIGURE: "
NAMES = ("client", "fast1", "fast2", "slow")
PEERS = NAMES[1:]
SLOW_CPU = 0.10
PROJECT = project.BORINGSSL
BUILD_TIMEOUT = 900.0
MODES = ("p2pcc", "p2pcc-without", "hand", "hand-without")


def figure(text: str) -> None:
    print(PREFIX + text, flush=True)


@dataclass
class Bed:
    home: Path
    daemons: dict[str, Daemon]

    @property
    def client(self) -> Daemon:
        return self.daemons["client"]

    @property
    def links(self) -> Path:
        return self.home / "links"

    def address(self, name: str) -> str:
        return self.daemons[name].ws.address

    def hosts_lines(self) -> list[str]:
        state = statefile.read(str(self.client.runtime_dir / statefile.FILE_NAME))
        return [] if state is None else [line for _, line in state[1].values()]

    def lists_slow(self) -> bool:
        prefix = f"{self.address('slow')}:"
        return any(word.startswith(prefix) for line in self.hosts_lines() for word in line.split())


@dataclass
class Result:
    mode: str
    seconds: float
    complete: bool
    jobs: dict[str, int]  # per host, "client" = compiled at home
    last_host: str  # who compiled the object written last
    waited: float  # seconds the last object came after the last one from elsewhere
    tail: float  # build end after its last object
    note: str  # the hosts line or list, and the -j
    slow_longest: float  # the slow peer's longest job (distccd's time), 0 without one


@contextlib.contextmanager
def open_bed(home: Path) -> Iterator[Bed]:
    """The pool up, the slow peer starved, the client's links installed."""
    with bench_builds.idle_pool(home, NAMES) as (_, daemons):
        setup = Bed(home, daemons)
        wait_until(lambda: _all_listed(setup), 90, "every peer in the client's lines")
        moved = starve_distccd(daemons["slow"], SLOW_CPU)
        figure(f"slow: {moved} distccd processes held to {SLOW_CPU:.0%} of one CPU")
        install_links(setup.client, setup.links, setup.client.config_path)
        yield setup


def _all_listed(setup: Bed) -> bool:
    words = " ".join(setup.hosts_lines())
    return all(f"{setup.address(name)}:" in words for name in PEERS)


def show_pool(setup: Bed, label: str) -> None:
    """How the client sees each peer now (turnaround where the daemon reports one)."""
    status = control_status(setup.client)
    for peer in [] if status is None else status["peers"]:
        turnaround = peer.get("turnaround") or {}
        figure(
            f"{label}: client sees {peer['name']}: slots {peer['slots']} free"
            f" {peer['free_slots']} power {peer['power']:.2f}"
            f" turnaround relative {turnaround.get('relative')}"
        )


@contextlib.contextmanager
def slow_paused(setup: Bed) -> Iterator[None]:
    """`p2pcc pause` on the slow peer until the client's lines drop it; resumed after."""
    setup.daemons["slow"].cli("pause", "--reason", "benchmark")
    wait_until(lambda: not setup.lists_slow(), 60, "the client to drop the slow peer")
    try:
        yield
    finally:
        setup.daemons["slow"].cli("resume")
        with contextlib.suppress(AssertionError):  # a new ranking may leave it out
            wait_until(setup.lists_slow, 30, "the client to list the slow peer again")


def build(setup: Bed, mode: str, label: str) -> Result:
    """One build of `mode` in the client, measured."""
    tree, distcc_dir = bench_builds.fresh(setup.home, label, PROJECT)
    if mode.startswith("p2pcc"):
        argv, env = bench_builds.p2pcc_build(
            setup.client, setup.links, tree, distcc_dir, BUILD_TIMEOUT
        )
        lines = " | ".join(sorted(set(setup.hosts_lines())))
        note = f"-j{bench_builds.recommended_jobs(setup.client)} {lines}"
    else:
        peers = PEERS if mode == "hand" else PEERS[:2]
        hosts = " ".join(("localhost/2", *(f"{setup.address(p)}:3632/2" for p in peers)))
        jobs = 2 * (len(peers) + 1)
        argv, env = bench_builds.masquerade_build(tree, distcc_dir, hosts, jobs, BUILD_TIMEOUT)
        note = f"-j{jobs} {hosts}"
    marks = log_marks(setup.daemons)
    taken_before = taken_back(setup)
    running = bench_builds.start(
        "client",
        setup.client.ws,
        tree=tree,
        argv=argv,
        env=env,
        output=setup.home / f"{label}.out",
    )
    done = running.finish(BUILD_TIMEOUT + 60)
    if mode.startswith("p2pcc"):
        note += f"; jobs taken back from the slow peer: {taken_back(setup) - taken_before}"
    if not done.complete:
        print(f"--- {mode} exit {done.returncode}\n{done.tail()}")
    records = jobs_since(setup.daemons, marks, setup.client.ws)
    return _result(mode, done, records, note)


def taken_back(setup: Bed) -> int:
    """The client's count of jobs taken back from stragglers (aborted to compile at
    home; the slow peer's distccd may still log them as compiled)."""
    status = control_status(setup.client)
    return 0 if status is None else int(status["counters"]["jobs_taken_back"])


def _host_of(source: str, records: dict[str, list[JobRecord]]) -> str:
    for name, jobs in records.items():
        if any(r.ok and r.source.endswith(source) for r in jobs):
            return name
    return "client"


def _result(
    mode: str, done: bench_builds.Finished, records: dict[str, list[JobRecord]], note: str
) -> Result:
    times = bench_builds.object_times(done.run.tree)
    hosts = {source: _host_of(source, records) for source in times}
    jobs = {name: sum(1 for h in hosts.values() if h == name) for name in NAMES}
    last = max(times, key=lambda s: times[s]) if times else ""
    elsewhere = [t for s, t in times.items() if hosts[s] != hosts.get(last)]
    waited = times[last] - max(elsewhere) if last and hosts[last] == "slow" and elsewhere else 0.0
    tail = done.wall_ended - times[last] if last else 0.0
    longest = max((r.seconds for r in records.get("slow", []) if r.ok), default=0.0)
    holder = hosts.get(last, "-")
    return Result(mode, done.seconds, done.complete, jobs, holder, waited, tail, note, longest)


def report(result: Result, label: str) -> None:
    jobs = "  ".join(f"{name} {result.jobs[name]:3}" for name in NAMES)
    longest = f"  (slow's longest job {result.slow_longest:.1f} s)" if result.slow_longest else ""
    figure(f"{label} {result.mode:13} {result.seconds:6.1f} s  jobs: {jobs}{longest}")
    figure(
        f"{label} {result.mode:13} last object compiled by {result.last_host}"
        f" (waited {result.waited:.1f} s after the last one elsewhere;"
        f" build ended {result.tail:.1f} s after it)"
    )
    figure(f"{label} {result.mode:13} {result.note}")
    if not result.complete:
        figure(f"{label} {result.mode:13} INCOMPLETE: the build failed or left objects missing")


def summarize(results: dict[str, list[Result]]) -> None:
    median = {m: statistics.median(r.seconds for r in rs) for m, rs in results.items() if rs}
    for mode, runs in results.items():
        times = ", ".join(f"{r.seconds:.1f}" for r in runs)
        slow = ", ".join(str(r.jobs["slow"]) for r in runs)
        last = ", ".join(r.last_host for r in runs)
        figure(f"summary {mode:13} times {times} s; slow peer's jobs {slow}; last object: {last}")
    for with_, without in (("p2pcc", "p2pcc-without"), ("hand", "hand-without")):
        if with_ in median and without in median:
            ratios = ", ".join(
                f"{a.seconds / b.seconds:.2f}"
                for a, b in zip(results[with_], results[without], strict=True)
            )
            figure(
                f"summary ratio {with_} / {without} = {median[with_] / median[without]:.2f}"
                f" (medians; per round {ratios})"
            )
    if "hand" in median and "p2pcc" in median:
        figure(f"summary ratio hand / p2pcc = {median['hand'] / median['p2pcc']:.2f} (medians)")


def run(setup: Bed, rounds: int, modes: tuple[str, ...]) -> None:
    results: dict[str, list[Result]] = {mode: [] for mode in modes}
    for number in range(rounds):
        order = modes if number % 2 == 0 else modes[::-1]
        for mode in order:
            label = f"r{number + 1}-{mode}"
            if mode == "p2pcc-without":
                with slow_paused(setup):
                    result = build(setup, mode, label)
            else:
                result = build(setup, mode, label)
            report(result, f"round {number + 1}")
            results[mode].append(result)
        show_pool(setup, f"after round {number + 1}")
    summarize(results)


def main() -> None:
    options = bench_builds.bench_options(__doc__ or "", MODES)
    project.fetch(PROJECT)  # before the bed: the workstations have no route out
    home = Path(tempfile.mkdtemp(prefix="p2pcc-slow-peer-"))
    home.chmod(0o755)
    try:
        with open_bed(home) as setup:
            show_pool(setup, "before")
            run(setup, options.rounds, tuple(m for m in options.modes.split(",") if m))
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
