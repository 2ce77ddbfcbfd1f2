"""A live -j that follows the pool (issue 14, deliverable 4): a peer pauses, one joins.

Four namespace workstations, all gcc-12, each showing its daemon an idle load of its
own: `client` (the builds run here), `peer1`, `peer2`, and `late`, whose daemon is
stopped when each build starts; icecream's scheduler runs in a fifth.  The project is
BoringSSL's libcrypto (234 C files).  Each build meets the same events, timed from its
start: `peer2` pauses at PAUSE_AT s, `late`'s daemon starts (joins) at JOIN_AT s,
`peer2` resumes at RESUME_AT s.  Modes:

* `live`: `p2pcc build make` — make under p2pcc's jobserver, sized by the pool;
* `fixed`: `p2pcc build --fixed-jobs make` — the -j of the pool when the build starts;
* `hand`: distcc's masquerade with the list a user writes for the office, every
  machine two slots, `make -j8` (late's distccd is down until it joins);
* `icecream`: Debian's icecc 1.4, its scheduler in a fifth workstation, an iceccd of 2
  jobs on client, peer1 and peer2, `make -j8` (the office's slots, as icecream's
  documentation advises); icecream has no pause, so peer2's iceccd stops at PAUSE_AT
  and starts again at RESUME_AT, and late's starts at JOIN_AT.  Skipped, saying so,
  where icecc is not installed.

Every SAMPLE_PERIOD s it samples p2pcc's view of the pool's slots for gcc (the client's
state file: what `p2pcc jobs gcc` says) and the build's jobs in flight (the distcc or
icecc processes: each make job that compiles is one, running here or on a peer, or
waiting for a slot), against the slots the office really offers (two per machine in
use, from the events).  Prints the timeline, and per mode: how long after each event
p2pcc's view changed and the jobs in flight followed (within one job of the office's
slots), the share of the build's time its jobs in flight exceeded the office's slots by
more than one (jobs queued with nowhere to run) and fell short of them by more than one
(slots left idle while make had work), and the makespans as ratios in the same run.
Needs root; run under the shared lock:

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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from p2pcc import statefile
from tests.integration import bench_builds, icecream, project
from tests.integration.netbed import Workstation
from tests.integration.office import build_env, control_status, install_links
from tests.integration.pool import Daemon, wait_until

PREFIX = "LIVE-JOBS-FIGURE: "
NAMES = ("client", "peer1", "peer2", "late")
PROJECT = project.BORINGSSL
BUILD_TIMEOUT = 900.0
MODES = ("live", "fixed", "hand", "icecream")
PAUSE_AT, JOIN_AT, RESUME_AT = 8.0, 16.0, 24.0
SAMPLE_PERIOD = 0.5


def figure(text: str) -> None:
    print(PREFIX + text, flush=True)


@dataclass
class Bed:
    home: Path
    daemons: dict[str, Daemon]
    sched: Workstation  # icecream's scheduler (no p2pcc daemon)
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


CLIENTS = {
    os.path.realpath(shutil.which(name) or f"/usr/bin/{name}") for name in ("distcc", "icecc")
}


def client_processes() -> int:
    """Live distcc (or icecc) client processes on the machine (only the benchmark's
    build runs), by executable: the masquerades' carry the compiler's name."""
    count = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{name}/exe") in CLIENTS:
                    count += 1
    return count


@contextlib.contextmanager
def open_bed(home: Path) -> Iterator[Bed]:
    with bench_builds.idle_pool(home, NAMES) as (bed, daemons):
        setup = Bed(home, daemons, bed.add_workstation("sched"))
        wait_until(lambda: all(setup.listed(n) for n in NAMES[1:]), 90, "every peer listed")
        status = wait_until(lambda: control_status(setup.client), 30, "the client's status")
        setup.fingerprint = next(
            c["fingerprint"] for c in status["node"]["compilers"] if "gcc" in c["names"]
        )
        install_links(setup.client, home / "links", setup.client.config_path)
        yield setup


def stop_late(setup: Bed) -> None:
    """`late` leaves: its daemon stopped (its distccd with it), the client's lines without it."""
    late = setup.daemons["late"]
    if late.process is not None and late.process.poll() is None:
        late.process.send_signal(signal.SIGTERM)
        late.process.wait(timeout=30)
    wait_until(lambda: not setup.listed("late"), 30, "the client to drop late")


Action = Callable[[], object]


def p2pcc_plan(setup: Bed) -> tuple[tuple[float, str, Action], ...]:
    """The events for p2pcc (and the hand list, which cannot follow them): peer2 pauses,
    late's daemon starts, peer2 resumes."""
    peer2 = setup.daemons["peer2"]
    return (
        (PAUSE_AT, "pause", lambda: peer2.cli("pause", "--reason", "bench")),
        (JOIN_AT, "join", setup.daemons["late"].start),
        (RESUME_AT, "resume", lambda: peer2.cli("resume")),
    )


def icecream_plan(setup: Bed, ice: icecream.Icecream) -> tuple[tuple[float, str, Action], ...]:
    """The same events for icecream, which has no pause: peer2's iceccd stops (what its
    owner can do), late's starts, peer2's starts again."""
    peer2, late = setup.daemons["peer2"].ws, setup.daemons["late"].ws
    return (
        (PAUSE_AT, "pause", lambda: ice.stop_daemon(peer2)),
        (JOIN_AT, "join", lambda: ice.start_daemon(late, 2)),
        (RESUME_AT, "resume", lambda: ice.start_daemon(peer2, 2)),
    )


def events(
    plan: Sequence[tuple[float, str, Action]],
    started: float,
    result: Result,
    done: threading.Event,
) -> None:
    """Each event of `plan` at its time after `started`, until `done`."""
    for at, name, action in plan:
        if done.wait(max(0.0, started + at - time.monotonic())):
            return
        result.events[name] = time.monotonic() - started
        action()


def build(setup: Bed, mode: str, label: str) -> Result:
    stop_late(setup)
    setup.daemons["peer2"].cli("resume", check=False)
    wait_until(lambda: setup.listed("peer2"), 30, "peer2 listed")
    if mode != "icecream":
        return _build(setup, mode, label, p2pcc_plan(setup), None)
    stations = [setup.daemons[name].ws for name in ("client", "peer1", "peer2")]
    with icecream.icecream(setup.sched, stations, setup.home / f"{label}-ice", 2) as ice:
        return _build(setup, mode, label, icecream_plan(setup, ice), ice)


def _build(
    setup: Bed,
    mode: str,
    label: str,
    plan: Sequence[tuple[float, str, Action]],
    ice: icecream.Icecream | None,
) -> Result:
    tree, distcc_dir = bench_builds.fresh(setup.home, label, PROJECT)
    links = setup.home / "links"
    if mode == "hand":
        addresses = [setup.daemons[n].ws.address for n in NAMES[1:]]
        hosts = " ".join(["localhost/2", *(f"{a}:3632/2" for a in addresses)])
        argv, env = bench_builds.masquerade_build(tree, distcc_dir, hosts, 8, BUILD_TIMEOUT)
    elif ice is not None:  # -j: the office's slots, as icecream's documentation advises
        argv = project.make_command(tree, bench_builds.COMPILER, 8, BUILD_TIMEOUT)
        env = ice.client_env(
            setup.client.ws, build_env(None, distcc_dir), setup.home / f"{label}-icecc.log"
        )
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
    timer = threading.Thread(target=events, args=(plan, running.started, result, done))
    timer.start()
    try:
        while running.process.poll() is None:
            at = time.monotonic() - running.started
            result.samples.append(Sample(at, setup.slots(), client_processes()))
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


def office_slots(result: Result, at: float) -> int:
    """The slots the office really offers at `at`, from the events: two per machine in
    use (client, peer1, peer2 to begin with; peer2 out while paused; late in once it
    joined)."""
    events = result.events

    def since(name: str) -> bool:
        return name in events and events[name] <= at

    return 6 - 2 * (since("pause") and not since("resume")) + 2 * since("join")


def followed(result: Result, event: str) -> tuple[float | None, float | None]:
    """Seconds from `event` until p2pcc's view of the slots changed (the client's state
    file), and until the jobs in flight were within one of the office's new slots
    (None: not within the build)."""
    at = result.events.get(event)
    if at is None:
        return None, None
    before = [s.slots for s in result.samples if s.at < at]
    after = [s for s in result.samples if s.at >= at]
    old = before[-1] if before else None
    changed = next((s for s in after if s.slots != old and s.slots is not None), None)
    near = next((s for s in after if abs(s.in_flight - office_slots(result, s.at)) <= 1), None)
    return (
        None if changed is None else changed.at - at,
        None if near is None else near.at - at,
    )


def report(result: Result, label: str) -> None:
    figure(f"{label} {result.mode:8} {result.seconds:6.1f} s complete={result.complete}")
    for sample in result.samples[:: int(2 / SAMPLE_PERIOD)]:
        office = office_slots(result, sample.at)
        flight = f"office slots {office} p2pcc's view {sample.slots} in flight {sample.in_flight}"
        figure(f"{label} {result.mode:8} t={sample.at:6.1f} {flight}")
    busy = [s for s in result.samples if s.at < result.seconds - 5]
    if busy:
        over = sum(1 for s in busy if s.in_flight > office_slots(result, s.at) + 1) / len(busy)
        under = sum(1 for s in busy if s.in_flight < office_slots(result, s.at) - 1) / len(busy)
        figure(
            f"{label} {result.mode:8} jobs in flight above the office's slots + 1 {over:.0%}"
            f" of the time, below them - 1 {under:.0%} (the last 5 s, the build's tail,"
            " left out)"
        )
    for line in result.log:
        figure(f"{label} {result.mode:8} client log: {line}")
    for event in ("pause", "join", "resume"):
        slots_after, jobs_after = followed(result, event)
        figure(
            f"{label} {result.mode:8} {event}: p2pcc's slots changed after"
            f" {_seconds(slots_after)}, jobs in flight within one of the office's after"
            f" {_seconds(jobs_after)}"
        )


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def summarize(results: dict[str, list[Result]]) -> None:
    """Times per mode, the builds that failed, and medians of the complete ones as ratios."""
    complete = {m: [r.seconds for r in rs if r.complete] for m, rs in results.items()}
    median = {m: statistics.median(times) for m, times in complete.items() if times}
    for mode, runs in results.items():
        times = ", ".join(f"{r.seconds:.1f}" + ("" if r.complete else " FAILED") for r in runs)
        figure(f"summary {mode:8} times {times} s")
    for a, b in (("live", "hand"), ("live", "icecream"), ("live", "fixed"), ("hand", "icecream")):
        if a in median and b in median:
            ratio = median[a] / median[b]
            figure(f"summary ratio {a} / {b} = {ratio:.2f} (medians of complete builds)")


def main() -> None:
    options = bench_builds.bench_options(__doc__ or "", MODES)
    modes = tuple(m for m in options.modes.split(",") if m)
    if "icecream" in modes and not icecream.installed():
        figure("icecream: icecc is not installed here; running the other modes only")
        modes = tuple(m for m in modes if m != "icecream")
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
