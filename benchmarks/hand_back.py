"""How fast a paused workstation hands its peers' jobs back (issue 14, deliverable 2).

Two namespace workstations with real daemons: `server` serves with its distccd, `client`
builds generated C files that take `gcc -O2` seconds each (tests/integration/
served_jobs.py) with real distcc sent to `server` only, `make -j2`, DISTCC_FALLBACK at its
default.  Once `server` compiles both jobs, its owner comes back, in one of two ways:

* `now`: the owner runs `p2pcc pause --now` (the CLI in the workstation: its start-up
  is part of what a person waits for);
* `auto` (with `--auto`): the owner touches the keyboard: bytes appended to
  `/dev/input/event0`, a file on an overlay over `/dev` in `server`'s mount namespace
  (appended from within that namespace, the time of starting `sh` there included),
  which its daemon reads with `[idle] source = "input"` (it looks four times a second,
  docs/idle.md), `hand_back` at its default.

Each round measures, from the owner's act: the pause in effect (`now`: the CLI's
answer; `auto`: the daemon's status says paused), the served jobs gone (no process of
`server`'s distccd session but distccd), and the first file compiling locally at the
client (a `cc1` of the build's session that does not only preprocess); then the build
must succeed with objects identical to plain local compiles.  /proc and the server's
status are read every 10 ms or so (each /proc read takes a few ms on this machine:
that is the figures' resolution).  From the
server's log, each pause and how long after it the daemon logged its hand-back (its
own share, without the CLI's start-up).  Prints
median and max per way, and the failed builds (expected 0).  No pass/fail.  Needs root;
run under the shared lock:

    flock /tmp/p2pcc-heavy.lock .venv/bin/python benchmarks/hand_back.py --rounds 5 [--auto]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from p2pcc.control_client import send_request
from p2pcc.core.control_protocol import StatusRequest
from p2pcc.core.errors import P2pccError
from tests.integration.netbed import TestBed, Workstation
from tests.integration.pool import Daemon, cli_env, sees_all, wait_until
from tests.integration.served_jobs import (
    compile_locally,
    differing_objects,
    distccd_session,
    local_compiles,
    served_jobs,
    start_build,
    write_project,
)

FILES, SLOTS = 4, 2
IDLE = '[idle]\nenabled = true\nsource = "input"\nactive_within = 1.0\nresume_after = 2.0\n'
BUILD_TIMEOUT = 600.0
PAUSE_NOW = (sys.executable, "-m", "p2pcc", "pause", "--now", "--reason", "owner is back")


@dataclass
class Round:
    """One owner's return: seconds from the act to each step (None: not seen)."""

    way: str
    paused: float | None
    gone: float | None
    local: float | None
    failed: bool


def give_input_device(ws: Workstation, scratch: Path) -> Path:
    """An `event0` in /dev/input of `ws` only (an overlay over its /dev); the file to
    append to from here."""
    upper, work = scratch / "dev-upper", scratch / "dev-work"
    upper.mkdir(parents=True)
    work.mkdir()
    options = f"lowerdir=/dev,upperdir={upper},workdir={work}"
    ws.run(["mount", "-t", "overlay", "overlay", "-o", options, "/dev"])
    ws.run(["mkdir", "-p", "/dev/input"])
    ws.run(["touch", "/dev/input/event0"])
    return upper / "input" / "event0"


def paused(daemon: Daemon) -> bool:
    try:
        status = send_request(daemon.runtime_dir / "control", StatusRequest(), timeout=2)
    except (P2pccError, OSError):
        return False
    return status["node"]["pause"] is not None


def watch(session: int, build: int, since: float, check_pause: Callable[[], bool]) -> Round:
    """Poll until the served jobs are gone and a local compile was seen (30 s at most)."""
    gone = local = pause = None
    while time.monotonic() - since < 30 and (gone is None or local is None or pause is None):
        now = time.monotonic() - since
        if gone is None and not served_jobs(session):
            gone = now
        if local is None and local_compiles(build):
            local = now
        if pause is None and check_pause():
            pause = time.monotonic() - since
        # Not a busy loop: back to back, the status requests kept the server's daemon
        # from looking at its input device (2 of 3 automatic rounds never paused).
        time.sleep(0.01)
    return Round("", pause, gone, local, False)


@dataclass
class Bed:
    server: Daemon
    client: Daemon
    home: Path
    touch: Path | None  # the server's input device, None when there is none


def one_round(bed: Bed, way: str, index: int) -> Round:
    server, client, home, touch = bed.server, bed.client, bed.home, bed.touch
    directory = home / f"{way}-{index}"
    objects = write_project(directory, FILES)
    reference = home / "reference"
    if not reference.exists():
        compile_locally(directory, reference, objects)
    session = distccd_session(server)
    make = start_build(client, server, directory, SLOTS, way)
    try:
        wait_until(lambda: len(_compiling(session)) >= SLOTS, 120, "both jobs on the server")
        since = time.monotonic()
        if way == "now":
            cli = subprocess.Popen(
                [*server.ws.enter(), *PAUSE_NOW, "--config", str(server.config_path)],
                env=cli_env(server.home),
                stdout=subprocess.DEVNULL,
            )
            seen = watch(session, make.pid, since, lambda: cli.poll() is not None)
            cli.wait(timeout=30)
        else:
            assert touch is not None
            # One input_event's worth, written through the overlay in the workstation's
            # own mount namespace (written to the upper directory from outside, the
            # overlay went on showing the old size: overlayfs leaves that undefined).
            server.ws.run(["sh", "-c", "head -c 24 /dev/zero >> /dev/input/event0"])
            seen = watch(session, make.pid, since, lambda: paused(server))
        returncode = make.wait(timeout=BUILD_TIMEOUT)
    finally:
        if make.poll() is None:
            make.kill()
    seen.way = way
    seen.failed = returncode != 0 or bool(differing_objects(directory, reference, objects))
    _resume(server, way)
    return seen


def _compiling(session: int) -> list[int]:
    return [e.pid for e in served_jobs(session) if e.comm == "cc1"]


def _resume(server: Daemon, way: str) -> None:
    if way == "now":
        server.cli("resume")
    # The automatic pause ends 2 s after the last touch (resume_after).
    wait_until(lambda: not paused(server), 30, "the server to resume")


def report(rounds: list[Round]) -> None:
    for way in ("now", "auto"):
        mine = [r for r in rounds if r.way == way]
        if not mine:
            continue
        print(f"\n{way}: {len(mine)} round(s), seconds from the owner's act")
        for label, values in (
            ("pause in effect" if way == "auto" else "CLI answered", [r.paused for r in mine]),
            ("served jobs gone", [r.gone for r in mine]),
            ("client compiles locally", [r.local for r in mine]),
        ):
            seen = [v for v in values if v is not None]
            text = f"median {statistics.median(seen):.3f}  max {max(seen):.3f}" if seen else "-"
            missed = len(values) - len(seen)
            print(f"  {label:24} {text}" + (f"  (not seen in {missed})" if missed else ""))
            print(f"  {'':24} each: {' '.join('-' if v is None else f'{v:.3f}' for v in values)}")
        print(f"  failed client builds: {sum(r.failed for r in mine)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each way")
    parser.add_argument("--auto", action="store_true", help="also try the automatic pause")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="p2pcc-bench-"))
    home.chmod(0o755)
    rounds: list[Round] = []
    try:
        with TestBed() as bed:
            server_ws, client_ws = bed.add_workstation("server"), bed.add_workstation("client")
            touch = None
            if args.auto:
                try:
                    touch = give_input_device(server_ws, bed.state_dir / "server-dev")
                except subprocess.CalledProcessError as error:
                    print(f"automatic pause not measured: no /dev/input ({error.stderr.strip()})")
            server = Daemon(server_ws, home / "server", IDLE if touch else "")
            client = Daemon(client_ws, home / "client")
            for daemon in (server, client):
                daemon.start()
            names = ("server", "client")
            wait_until(lambda: all(sees_all(d, names) for d in (server, client)), 60, "tables")
            wait_until(lambda: _can_cut(server), 30, "the server's cut self-test")
            for index in range(args.rounds):
                for way in ("now", "auto") if touch else ("now",):
                    rounds.append(one_round(Bed(server, client, home, touch), way, index))
                    print(f"round {index} {way}: {rounds[-1]}", flush=True)
            status = server.status() or {}
            print(f"\nserver counters.jobs_handed_back: {status['counters']['jobs_handed_back']}")
            daemon_side(server.log_text())
    finally:
        shutil.rmtree(home, ignore_errors=True)
    report(rounds)


def daemon_side(log: str) -> None:
    """From the server's log (millisecond timestamps): each pause, and how long after it
    the daemon logged its first hand-back."""
    print("server log, pause -> first hand-back logged (daemon side, without the CLI):")
    began: datetime | None = None
    for line in log.splitlines():
        if "paused by uid" in line or "the desktop is in use: paused" in line:
            began = _stamp(line)
            print(f"  {line[24:].strip()[:70]}")
        elif "p2pcc.daemon.idle" in line:
            print(f"  {line[24:].strip()[:90]}")
        elif "paused: handed back" in line and began is not None:
            print(f"    {(_stamp(line) - began).total_seconds():.3f} s: {line[24:].strip()[:70]}")
            began = None


def _stamp(line: str) -> datetime:
    return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")


def _can_cut(server: Daemon) -> bool:
    status = server.status()
    return status is not None and status["node"]["cutoff_problem"] is None


if __name__ == "__main__":
    main()
