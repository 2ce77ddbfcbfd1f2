"""Daemon footprint at scale (issue 15, deliverable 5): a real daemon fed a pool's gossip.

Two namespace workstations on the test bed's private bridge.  `daemon` runs a real
`p2pcc daemon` (keyed pool, default timings, distccd *not* managed, so the figures are
the daemon's own; mDNS runs as usual).  `sim` holds the simulated members: its
interface gets one /32 per member in 10.214.0.0/16, a range that lives only on the
bridge (the daemon reaches it through a route via `sim`, and lists it in
`gossip.networks`: members on another subnet, the cross-subnet case).  The sender
(benchmarks/footprint_sender.py, one process, one socket) replays each member cheaply in
real time: its STATE every max(2, (members + 1) / 20) s, deaf (unicast), from its own
address; an ACK for every PROBE; and background news, by default one pause or resume a
second across the pool, the member's own STATE at once and transmits(members + 1) NEWS
copies of it from random members within a second (12 at 1,000).  SYNCs the daemon asks
for are not answered (at most one per 30 s; it gives up after 10 s).

Warm-up until the daemon's table holds every member (first states spread over
`--warmup` s), then `--settle` s, and on until the news of a thousand joins has drained
(the daemon passes each on transmits(n) times: at most `--drain` s, until its queue
holds no more than the background news keeps there), then `--seconds` of
measurement: the daemon's VmRSS (max and at the end), its CPU (utime + stime over the
window, % of one CPU), its gossip counters from `status` (taken just outside the
window, so that building a 1,000-peer status is not measured), the state-file
rewrites, and the sender's own CPU.  A baseline with 10 members runs first, in a bed of
its own.  With py-spy (`--py-spy PATH`), each case's daemon is then sampled for
`--profile` s and the functions taking most CPU are printed.  A table the peer cap
(`limits.MAX_PEERS`) keeps from holding every member is reported (TABLE FULL), and the
rest measured all the same.  Needs root; run under the shared lock:

    flock /tmp/p2pcc-heavy.lock .venv/bin/python benchmarks/daemon_footprint.py
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.footprint_profile import profile_lines
from p2pcc import statefile
from p2pcc.core.news import transmits
from tests.integration import pool
from tests.integration.netbed import TestBed, Workstation
from tests.integration.office import control_status

MEMBER_BASE = "10.214"
MEMBER_NET = f"{MEMBER_BASE}.0.0/16"
SENDER = Path(__file__).with_name("footprint_sender.py")
TARGETS = {"rss": 60.0, "cpu": 1.0, "kbps": 10.0}


@dataclass
class Figures:
    """What one case measured."""

    members: int
    peers: int = 0
    warmup: float = 0.0
    rss_max: float = 0.0
    rss_end: float = 0.0
    cpu: float = 0.0
    sender_cpu: float = 0.0
    rates: dict[str, float] = field(default_factory=dict)
    writes: float = 0.0
    drops: dict[str, int] = field(default_factory=dict)
    sent: dict[str, int] = field(default_factory=dict)
    log_problems: list[str] = field(default_factory=list)
    refused: str = ""  # why the table never held every member
    drained: float = 0.0  # seconds the joins' news took to drain after the settling
    profile: list[str] = field(default_factory=list)
    threads: dict[str, float] = field(default_factory=dict)  # % of one CPU per thread name
    system: float = 0.0  # % of one CPU spent in the kernel on the daemon's behalf


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_seconds(pid: int) -> dict[str, tuple[float, float]]:
    """User and system CPU seconds of each of `pid`'s threads, summed by thread name
    (trio's main loop is the process's own name; python-zeroconf's and trio's worker
    threads have theirs)."""
    tick = os.sysconf("SC_CLK_TCK")
    found: dict[str, tuple[float, float]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # a worker thread that ended meanwhile
        user, system = found.get(name, (0.0, 0.0))
        found[name] = (user + int(fields[11]) / tick, system + int(fields[12]) / tick)
    return found


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def give_addresses(sim: Workstation, members: int) -> None:
    """One /32 per member on `sim`'s interface."""
    from benchmarks.footprint_sender import member_address

    lines = [f"addr add {member_address(MEMBER_BASE, i)}/32 dev eth0" for i in range(members)]
    sim.run(["ip", "-batch", "-"], input="\n".join(lines) + "\n", timeout=120)


def start_daemon(bed: TestBed, home: Path) -> pool.Daemon:
    pool.INTERVAL, pool.SUSPECT_AFTER, pool.DEAD_AFTER = 2.0, 5.0, 15.0  # the defaults
    extra = f'networks = ["{MEMBER_NET}"]\n[distccd]\nmanage = false\n'
    daemon = pool.Daemon(bed.add_workstation("daemon"), home / "daemon", extra)
    daemon.start()
    pool.wait_until(lambda: control_status(daemon), 60, "the daemon's control socket")
    return daemon


def start_sender(
    sim: Workstation, daemon: pool.Daemon, members: int, args: argparse.Namespace, home: Path
) -> tuple[int, Path]:
    report = home / f"sender-{members}.json"
    command = [
        sys.executable, str(SENDER), "--key", str(pool.bed_key(sim.bed)),
        "--target", daemon.ws.address, "--members", str(members), "--base", MEMBER_BASE,
        "--warmup", str(args.warmup), "--news-rate", str(args.news_rate),
        "--news-copies", str(transmits(members + 1)), "--report", str(report),
    ]  # fmt: skip
    if args.vary_load:
        command.append("--vary-load")
    with (home / f"sender-{members}.log").open("w") as log:
        process = sim.start(command, stdout=log, stderr=log)
    return process.pid, report


#: News entries the daemon's queue holds in the steady state of the background news
#: (one event a second, each passed on for about a second).
STEADY_QUEUE = 8


def drain_news(daemon: pool.Daemon, timeout: float) -> float:
    """Seconds until the daemon's news queue is down to the steady state (or `timeout`)."""
    start = time.monotonic()
    while time.monotonic() < start + timeout:
        status = control_status(daemon)
        if status is not None and status["counters"]["news_queued"] <= STEADY_QUEUE:
            break
        time.sleep(1.0)
    return time.monotonic() - start


def wait_for_table(daemon: pool.Daemon, members: int, timeout: float) -> str:
    """Poll status every 2 s until the table holds `members` peers: "", or what kept it
    from doing so (table-full drops: the peer cap; the time-out)."""
    deadline = time.monotonic() + timeout
    while True:
        status = control_status(daemon)
        if status is not None:
            held = len(status["peers"])
            full = status["counters"]["drops"].get("table-full", 0)
            if held >= members:
                return ""
            if full:
                return f"TABLE FULL: holds {held} of {members}, {full} table-full drops"
        if time.monotonic() > deadline:
            count = "?" if status is None else str(len(status["peers"]))
            return f"TIMED OUT: table holds {count} of {members} after {timeout:.0f} s"
        time.sleep(2.0)


def measure(daemon: pool.Daemon, sender_pid: int, seconds: float, figures: Figures) -> None:
    """Sample RSS and the state file for `seconds`; CPU over the same window."""
    assert daemon.process is not None
    pid = daemon.process.pid
    state = daemon.runtime_dir / statefile.FILE_NAME
    first = control_status(daemon)
    start, cpu0, sender0 = time.monotonic(), cpu_seconds(pid), cpu_seconds(sender_pid)
    threads0 = thread_seconds(pid)
    writes, inode, next_rss = 0, _inode(state), start
    while (now := time.monotonic()) < start + seconds:
        if now >= next_rss:
            figures.rss_max = max(figures.rss_max, rss_mib(pid))
            next_rss = now + 1.0
        current = _inode(state)
        writes, inode = writes + (current != inode), current
        time.sleep(0.05)
    elapsed = time.monotonic() - start
    figures.cpu = 100 * (cpu_seconds(pid) - cpu0) / elapsed
    figures.sender_cpu = 100 * (cpu_seconds(sender_pid) - sender0) / elapsed
    for name, (user, system) in thread_seconds(pid).items():
        user0, system0 = threads0.get(name, (0.0, 0.0))
        figures.threads[name] = 100 * (user - user0 + system - system0) / elapsed
        figures.system += 100 * (system - system0) / elapsed
    figures.rss_end = rss_mib(pid)
    figures.rss_max = max(figures.rss_max, figures.rss_end)
    figures.writes = writes / elapsed
    last = control_status(daemon)
    if first is not None and last is not None:
        _counter_rates(first, last, last["generated_at"] - first["generated_at"], figures)


def _inode(path: Path) -> int:
    try:
        return path.stat().st_ino
    except OSError:
        return 0


def _counter_rates(
    first: dict[str, Any], last: dict[str, Any], elapsed: float, figures: Figures
) -> None:
    before, after = first["counters"], last["counters"]
    for key in ("packets_in", "packets_out", "bytes_in", "bytes_out"):
        figures.rates[key] = (after[key] - before[key]) / elapsed
    drops = after["drops"]
    figures.drops = {k: v - before["drops"].get(k, 0) for k, v in drops.items()}
    figures.peers = len(last["peers"])


def log_problems(daemon: pool.Daemon) -> list[str]:
    """The daemon log's warnings, errors and tracebacks (first 10)."""
    words = ("WARNING", "ERROR", "CRITICAL", "Traceback")
    lines = [line for line in daemon.log_text().splitlines() if any(w in line for w in words)]
    return lines[:10]


def run_case(members: int, args: argparse.Namespace, home: Path, profile: bool) -> Figures:
    """One bed: the daemon, `members` simulated members, warm-up, measurement."""
    figures = Figures(members)
    case_home = home / f"m{members}"
    with TestBed() as bed:
        daemon = start_daemon(bed, case_home)
        sim = bed.add_workstation("sim")
        give_addresses(sim, members)
        daemon.ws.run(["ip", "route", "add", MEMBER_NET, "via", sim.address])
        began = time.monotonic()
        sender_pid, report = start_sender(sim, daemon, members, args, case_home)
        figures.refused = wait_for_table(daemon, members, args.warmup + 120)
        figures.warmup = time.monotonic() - began
        time.sleep(args.settle)
        figures.drained = drain_news(daemon, args.drain)
        measure(daemon, sender_pid, args.seconds, figures)
        if profile and daemon.process is not None:
            figures.profile = profile_lines(
                args.py_spy, daemon.process.pid, args.profile, args.profile_rate, args.profile_top
            )
        figures.sent = json.loads(report.read_text()) if report.exists() else {}
        figures.log_problems = log_problems(daemon) + sender_problems(sender_pid, case_home)
    return figures


def sender_problems(pid: int, home: Path) -> list[str]:
    """Why the sender stopped, if it did (its figures would be of a silent pool)."""
    try:
        alive = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        alive = False
    if alive:
        return []
    lines = [p.read_text()[-600:] for p in sorted(home.glob("sender-*.log"))]
    return ["SENDER DIED: the figures are of a silent pool", *lines]


def print_table(cases: list[Figures], seconds: float) -> None:
    print(f"\n== daemon footprint: {seconds:.0f} s measured per case ==")
    head = "".join(f"{f'{c.members} members':>14}" for c in cases)
    print(f"{'':28}{head}{'target':>12}")
    rows: list[tuple[str, str, str]] = [
        ("peers in table", "peers", ""),
        ("warm-up to full table (s)", "warmup", ""),
        ("joins' news drained (s)", "drained", ""),
        ("RSS max (MiB)", "rss_max", f"<= {TARGETS['rss']:.0f}"),
        ("RSS at end (MiB)", "rss_end", f"<= {TARGETS['rss']:.0f}"),
        ("CPU (% of one)", "cpu", f"<= {TARGETS['cpu']:.0f}"),
        ("  of it in the kernel", "system", ""),
        ("sender CPU (% of one)", "sender_cpu", ""),
        ("state-file writes/s", "writes", ""),
    ]
    for label, attribute, target in rows:
        cells = "".join(f"{getattr(c, attribute):>14.2f}" for c in cases)
        print(f"{label:28}{cells}{target:>12}")
    for key, unit, scale, target in (
        ("bytes_in", "KB/s in", 1000, f"<= {TARGETS['kbps']:.0f}"),
        ("bytes_out", "KB/s out", 1000, f"<= {TARGETS['kbps']:.0f}"),
        ("packets_in", "datagrams/s in", 1, ""),
        ("packets_out", "datagrams/s out", 1, ""),
    ):
        cells = "".join(f"{c.rates.get(key, float('nan')) / scale:>14.2f}" for c in cases)
        print(f"{unit:28}{cells}{target:>12}")
    if len(cases) == 2 and cases[0].cpu > 0:
        print(f"CPU ratio {cases[1].members} / {cases[0].members} members: "
              f"{cases[1].cpu / cases[0].cpu:.1f}")  # fmt: skip
    for case in cases:
        print(f"\n{case.members} members: drops in window {case.drops}; sender totals {case.sent}")
        busy = sorted(case.threads.items(), key=lambda item: -item[1])
        print("  CPU by thread (% of one): " + ", ".join(f"{n} {v:.2f}" for n, v in busy if v))
        if case.refused:
            print(f"  {case.refused}: the figures are for a partial table")
        for line in case.log_problems:
            print(f"  log: {line[:160]}")
        for line in case.profile:
            print(f"  {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument(
        "--baseline", type=int, default=10, help="members of the baseline (0: none)"
    )
    parser.add_argument("--seconds", type=float, default=120.0, help="measurement window")
    parser.add_argument("--warmup", type=float, default=10.0, help="first states spread over")
    parser.add_argument("--settle", type=float, default=20.0, help="after a full table")
    parser.add_argument("--drain", type=float, default=240.0, help="most s for joins' news")
    parser.add_argument("--news-rate", type=float, default=1.0, help="pause/resume events/s")
    parser.add_argument("--vary-load", action="store_true", help="members' loads move")
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or "", help="py-spy binary")
    parser.add_argument("--profile", type=float, default=20.0, help="py-spy seconds")
    parser.add_argument("--profile-rate", type=int, default=100, help="py-spy samples/s")
    parser.add_argument("--profile-top", type=int, default=15, help="functions listed")
    args = parser.parse_args()
    # The daemons run this tree's p2pcc, whatever the venv has installed.
    os.environ["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    home = Path(tempfile.mkdtemp(prefix="p2pcc-footprint-"))
    home.chmod(0o755)
    try:
        profile = bool(args.py_spy)
        cases = [run_case(args.baseline, args, home, profile)] if args.baseline else []
        cases.append(run_case(args.members, args, home, profile))
        print_table(cases, args.seconds)
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
