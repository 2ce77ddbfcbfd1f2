"""A live -j that follows the pool (issue 14, deliverable 4): a peer pauses, one joins.

Four namespace workstations, all gcc-12, each showing its daemon an idle load of its
own: `client` (the builds run here), `peer1`, `peer2`, and `late`, whose daemon is
stopped when each build starts.  The project is BoringSSL's libcrypto (234 C files).
Each build meets the same events, timed from its start: `peer2` pauses at PAUSE_AT s,
`late`'s daemon starts (joins) at JOIN_AT s, `peer2` resumes at RESUME_AT s.  Modes:

* `live`: `p2pcc build make` — make under p2pcc's jobserver, sized by the pool;
* `fixed`: `p2pcc build --fixed-jobs make` — the -j of the pool when the build starts;
* `hand`: distcc's masquerade with the list a user writes for the office, every
  machine two slots, `make -j8` (late's distccd is down until it joins).

Every SAMPLE_PERIOD s it samples the pool's slots for gcc (the client's state file: what
`p2pcc jobs gcc` says) and the build's jobs in flight (the distcc processes: each make
job that compiles is one, running here or on a peer, or waiting for a slot).  Prints
the timeline, and per mode: how long after each event the slots changed and the jobs
in flight followed (within one job of the slots), the share of the build's time its
jobs in flight exceeded the slots by more than one (jobs queued with nowhere to run)
and fell short of them by more than one (slots left idle while make had work), and
the makespan as a ratio to `hand` and `fixed` in the same run.  Needs root; run under
the shared lock:

    flock /tmp/p2pcc-heavy.lock .venv/bin/python benchmarks/live_jobs.py --rounds 1
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from p2pcc import statefile
from tests.integration import bench_builds, project, workstation_compilers
from tests.integration.distccd_jobs import kill_orphaned_distccd
from tests.integration.netbed import TestBed
from tests.integration.office import control_status, install_links
from tests.integration.pool import Daemon, wait_until

PREFIX = "LIVE-JOBS-FIGURE: "
NAMES = ("client", "peer1", "peer2", "late")
PROJECT = project.BORINGSSL
BUILD_TIMEOUT = 900.0
MODES = ("live", "fixed", "hand")
PAUSE_AT, JOIN_AT, RESUME_AT = 8.0, 16.0, 24.0
SAMPLE_PERIOD = 0.5


def figure(text: str) -> None:
    print(PREFIX + text, flush=True)


@dataclass
class Bed:
    home: Path
    daemons: dict[str, Daemon]
    fingerprint: str = ""

    @property
    def client(self) -> Daemon:
        return self.daemons["client"]

    def listed(self, name: str) -> bool:
        state = statefile.read(str(self.client.runtime_dir / statefile.FILE_NAME))
        address = f"{self.daemons[name].ws.address}:"
        words = [] if state is None else " ".join(line for _, line in state[1].values()).split()
        return any(word.startswith(address) for word in words)

    def slots(self) -> int | None:
        """The pool's jobs for gcc in the client's state file now (`p2pcc jobs gcc`)."""
        state = statefile.read(str(self.client.runtime_dir / statefile.FILE_NAME))
        entry = None if state is None else state[1].get(self.fingerprint)
        return None if entry is None else int(entry[0])


@dataclass
class Sample:
    at: float  # seconds since the build started
    slots: int | None
    in_flight: int


@dataclass
class Result:
    mode: str
    seconds: float
    complete: bool
    samples: list[Sample] = field(default_factory=list)
    events: dict[str, float] = field(default_factory=dict)  # event -> seconds since start
    log: list[str] = field(default_factory=list)  # the client daemon's pool news meanwhile


DISTCC = os.path.realpath(shutil.which("distcc") or "/usr/bin/distcc")


def distcc_processes() -> int:
    """Live distcc client processes on the machine (only the benchmark's build runs),
    by executable: the masquerade's are named after the compiler they stand for."""
    count = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{name}/exe") == DISTCC:
                    count += 1
    return count


@contextlib.contextmanager
def open_bed(home: Path) -> Iterator[Bed]:
    with TestBed() as bed:
        daemons: dict[str, Daemon] = {}
        try:
            for name in NAMES:
                ws = bed.add_workstation(name)
                workstation_compilers.pretend_idle(ws, home)
                daemons[name] = Daemon(ws, home / name)
            for daemon in daemons.values():
                daemon.start()
            setup = Bed(home, daemons)
            wait_until(lambda: all(setup.listed(n) for n in NAMES[1:]), 90, "every peer listed")
            status = wait_until(lambda: control_status(setup.client), 30, "the client's status")
            setup.fingerprint = next(
                c["fingerprint"] for c in status["node"]["compilers"] if "gcc" in c["names"]
            )
            install_links(setup.client, home / "links", setup.client.config_path)
            yield setup
        finally:
            bed.close()
            for daemon in daemons.values():
                kill_orphaned_distccd(daemon)


def stop_late(setup: Bed) -> None:
    """`late` leaves: its daemon stopped (its distccd with it), the client's lines without it."""
    late = setup.daemons["late"]
    if late.process is not None and late.process.poll() is None:
        late.process.send_signal(signal.SIGTERM)
        late.process.wait(timeout=30)
    wait_until(lambda: not setup.listed("late"), 30, "the client to drop late")


def events(setup: Bed, started: float, result: Result, done: threading.Event) -> None:
    """Pause peer2, start late, resume peer2, at their times after `started`."""
    plan = (
        (PAUSE_AT, "pause", lambda: setup.daemons["peer2"].cli("pause", "--reason", "bench")),
        (JOIN_AT, "join", setup.daemons["late"].start),
        (RESUME_AT, "resume", lambda: setup.daemons["peer2"].cli("resume")),
    )
    for at, name, action in plan:
        if done.wait(max(0.0, started + at - time.monotonic())):
            return
        result.events[name] = time.monotonic() - started
        action()


def build(setup: Bed, mode: str, label: str) -> Result:
    stop_late(setup)
    setup.daemons["peer2"].cli("resume", check=False)
    wait_until(lambda: setup.listed("peer2"), 30, "peer2 listed")
    tree, distcc_dir = bench_builds.fresh(setup.home, label, PROJECT)
    links = setup.home / "links"
    if mode == "hand":
        addresses = [setup.daemons[n].ws.address for n in NAMES[1:]]
        hosts = " ".join(["localhost/2", *(f"{a}:3632/2" for a in addresses)])
        argv, env = bench_builds.masquerade_build(tree, distcc_dir, hosts, 8, BUILD_TIMEOUT)
    else:
        argv, env = bench_builds.p2pcc_build(setup.client, links, tree, distcc_dir, BUILD_TIMEOUT)
        if mode == "fixed":
            argv.insert(argv.index("build") + 1, "--fixed-jobs")
    result = Result(mode, 0.0, False)
    log_start = len(setup.client.log_text().splitlines())
    done = threading.Event()
    running = bench_builds.start(
        "client", setup.client.ws, tree=tree, argv=argv, env=env, output=setup.home / f"{label}.out"
    )
    timer = threading.Thread(target=events, args=(setup, running.started, result, done))
    timer.start()
    try:
        while running.process.poll() is None:
            at = time.monotonic() - running.started
            result.samples.append(Sample(at, setup.slots(), distcc_processes()))
            time.sleep(SAMPLE_PERIOD)
        finished = running.finish(BUILD_TIMEOUT + 60)
    finally:
        done.set()
        timer.join()
    result.seconds, result.complete = finished.seconds, finished.complete
    result.log = [
        line
        for line in setup.client.log_text().splitlines()[log_start:]
        if any(word in line for word in ("turnaround:", "suspect", "dead", "joined", "left"))
    ]
    if not finished.complete:
        print(f"--- {mode} exit {finished.returncode}\n{finished.tail()}")
    return result


def followed(result: Result, event: str) -> tuple[float | None, float | None]:
    """Seconds from `event` until the slots changed, and until the jobs in flight were
    within one of the new slots (None: not within the build)."""
    at = result.events.get(event)
    if at is None:
        return None, None
    before = [s.slots for s in result.samples if s.at < at]
    after = [s for s in result.samples if s.at >= at]
    old = before[-1] if before else None
    changed = next((s for s in after if s.slots != old and s.slots is not None), None)
    if changed is None:
        return None, None
    later = [s for s in after if s.at >= changed.at]
    near = next((s for s in later if abs(s.in_flight - (s.slots or 0)) <= 1), None)
    return changed.at - at, None if near is None else near.at - at


def report(result: Result, label: str) -> None:
    figure(f"{label} {result.mode:6} {result.seconds:6.1f} s complete={result.complete}")
    for sample in result.samples[:: int(2 / SAMPLE_PERIOD)]:
        flight = f"slots {sample.slots} in flight {sample.in_flight}"
        figure(f"{label} {result.mode:6} t={sample.at:6.1f} {flight}")
    busy = [s for s in result.samples if s.slots is not None and s.at < result.seconds - 5]
    if busy:
        over = sum(1 for s in busy if s.in_flight > (s.slots or 0) + 1) / len(busy)
        under = sum(1 for s in busy if s.in_flight < (s.slots or 0) - 1) / len(busy)
        figure(
            f"{label} {result.mode:6} jobs in flight above slots+1 {over:.0%} of the time,"
            f" below slots-1 {under:.0%} (the last 5 s, the build's tail, left out)"
        )
    for line in result.log:
        figure(f"{label} {result.mode:6} client log: {line}")
    for event in ("pause", "join", "resume"):
        slots_after, jobs_after = followed(result, event)
        figure(
            f"{label} {result.mode:6} {event}: slots changed after {_seconds(slots_after)},"
            f" jobs in flight within one of them after {_seconds(jobs_after)}"
        )


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def summarize(results: dict[str, list[Result]]) -> None:
    median = {m: statistics.median(r.seconds for r in rs) for m, rs in results.items() if rs}
    for mode, runs in results.items():
        figure(f"summary {mode:6} times {', '.join(f'{r.seconds:.1f}' for r in runs)} s")
    for a, b in (("live", "hand"), ("live", "fixed"), ("fixed", "hand")):
        if a in median and b in median:
            figure(f"summary ratio {a} / {b} = {median[a] / median[b]:.2f} (medians)")


def main() -> None:
    options = bench_builds.bench_options(__doc__ or "", MODES)
    modes = tuple(m for m in options.modes.split(",") if m)
    project.fetch(PROJECT)
    home = Path(tempfile.mkdtemp(prefix="p2pcc-live-jobs-"))
    home.chmod(0o755)
    results: dict[str, list[Result]] = {mode: [] for mode in modes}
    try:
        with open_bed(home) as setup:
            for number in range(options.rounds):
                for mode in modes if number % 2 == 0 else modes[::-1]:
                    result = build(setup, mode, f"r{number + 1}-{mode}")
                    report(result, f"round {number + 1}")
                    results[mode].append(result)
        summarize(results)
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
