"""Icecream (Debian's `icecc` 1.4) on test-bed workstations: the central-scheduler anchor.

Issue 13 measures p2pcc against icecream, the scheduler-based system it must beat
without a scheduler.  `icecream()` runs `icecc-scheduler` in one workstation and an
`iceccd` in each given workstation (started through the bed, so inside its cgroup and
namespaces), every one with the scheduler's address given explicitly (`-s`) and a
private `--netname`: icecream finds its scheduler by broadcast otherwise, and all of it
stays on the bed's bridge, which has no uplink.

Icecream is not installed by `scripts/setup.sh` on purpose: Debian's package starts an
`iceccd` on the machine's real network.  Install it with a `policy-rc.d` that forbids
starting services; `kill_strays()` kills at once any `iceccd` or `icecc-scheduler`
running outside a namespace of ours (in the machine's own network namespace).

Per workstation: the daemon's unix socket goes to a directory of its own
(`ICECC_TEST_SOCKET`, read by both iceccd and the client: the default
`/var/run/icecc/iceccd.socket` is one path for every namespace), and so does its
environment cache (`-b`).  iceccd drops every capability but chroot's before it touches
them, so both directories belong to the `icecc` user beforehand.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.integration.netbed import Workstation

SCHEDULER_PORT = 8765
#: The masquerade directory of Debian's icecc (`gcc -> ../../../bin/icecc`).
ICECC_BIN = "/usr/lib/icecc/bin"
PROGRAMS = ("icecc", "iceccd", "icecc-scheduler")
#: Process names (`/proc/PID/comm`, 15 characters at most) of icecream's services.
SERVICES = ("iceccd", "icecc-scheduler")
READY_TIMEOUT = 30.0
_HOST = re.compile(r"Have to use host (\S+?):\d+ ")


def installed() -> bool:
    """Whether icecream's programs are all there."""
    return all(shutil.which(name) for name in PROGRAMS) and Path(ICECC_BIN).is_dir()


def _comm(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _net_namespace(pid: str) -> str:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return ""


def kill_strays() -> list[int]:
    """SIGKILL every iceccd / icecc-scheduler in this process's own network namespace
    (the machine's network, never a bed's); the pids killed."""
    ours = _net_namespace("self")
    killed = []
    for entry in Path("/proc").iterdir():
        name = entry.name
        if name.isdigit() and _comm(name) in SERVICES and _net_namespace(name) == ours:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(name), signal.SIGKILL)
                killed.append(int(name))
    return killed


@dataclass
class Icecream:
    """A running icecream network: where each workstation's iceccd listens, its logs."""

    home: Path
    netname: str
    scheduler: str = ""  # ADDRESS:PORT
    processes: list[tuple[Workstation, subprocess.Popen[Any]]] = field(default_factory=list)

    def start_daemon(self, ws: Workstation, max_jobs: int) -> None:
        """An iceccd on `ws` joins the network (as a machine switched on mid-build)."""
        _start_daemon(self, ws, self.scheduler, max_jobs)

    def stop_daemon(self, ws: Workstation) -> None:
        """`ws`'s iceccd stops (its owner takes the machine back: icecream has no pause)."""
        for entry in [e for e in self.processes if e[0] is ws and e != self.processes[0]]:
            _stop(*entry)
            self.processes.remove(entry)

    def socket(self, ws: Workstation) -> Path:
        return self.home / ws.name / "sock" / "iceccd.socket"

    def log(self, ws: Workstation) -> Path:
        return self.home / ws.name / "iceccd.log"

    def client_env(self, ws: Workstation, env: dict[str, str], log: Path) -> dict[str, str]:
        """A build's environment for icecream on `ws`: icecc's masquerade first in PATH,
        this workstation's daemon, and the client's own log (`log`) at debug level,
        which names the host of every remote job (`jobs_by_host`)."""
        return {
            **env,
            "PATH": f"{ICECC_BIN}:{env['PATH']}",
            "ICECC_TEST_SOCKET": str(self.socket(ws)),
            "ICECC_DEBUG": "debug",
            "ICECC_LOGFILE": str(log),
        }


def jobs_by_host(client_log: Path) -> dict[str, int]:
    """Remote jobs per host address in an icecc client log, and "local" for the rest
    (`building myself`)."""
    counts: dict[str, int] = {}
    text = client_log.read_text(errors="replace") if client_log.exists() else ""
    for line in text.splitlines():
        match = _HOST.search(line)
        key = match.group(1) if match else "local" if "building myself" in line else ""
        if key:
            counts[key] = counts.get(key, 0) + 1
    return counts


def _private_dir(path: Path) -> Path:
    """A directory owned by the icecc user (iceccd cannot chown it itself)."""
    path.mkdir(parents=True, exist_ok=True)
    shutil.chown(path, "icecc", "icecc")
    path.chmod(0o775)
    return path


def _stop(ws: Workstation, process: subprocess.Popen[Any]) -> None:
    """SIGTERM the service's process group, SIGKILL it after 3 s; then any iceccd or
    scheduler still in the workstation's namespace (a compile helper it forked)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=3)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)
    listed = subprocess.run(
        ["ip", "netns", "pids", ws.netns], capture_output=True, text=True, check=False
    )
    for pid in listed.stdout.split():
        if _comm(pid) in SERVICES:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)


@contextlib.contextmanager
def icecream(
    scheduler: Workstation, stations: Sequence[Workstation], home: Path, max_jobs: int = 1
) -> Iterator[Icecream]:
    """The scheduler on `scheduler`, an iceccd accepting `max_jobs` at once (`-m`) on
    each of `stations`, all connected; everything stopped on exit."""
    kill_strays()
    home.mkdir(parents=True, exist_ok=True)
    ice = Icecream(home, f"p2t{os.getpid()}", f"{scheduler.address}:{SCHEDULER_PORT}")
    try:
        log = (home / "scheduler.log").open("w")
        command = ["icecc-scheduler", "-n", ice.netname, "-p", str(SCHEDULER_PORT), "-vv"]
        ice.processes.append(
            (scheduler, scheduler.start(command, stdout=log, stderr=subprocess.STDOUT))
        )
        for ws in stations:
            _start_daemon(ice, ws, ice.scheduler, max_jobs)
        _wait_connected(ice, stations)
        yield ice
    finally:
        for ws, process in reversed(ice.processes):
            _stop(ws, process)
        kill_strays()


def _start_daemon(ice: Icecream, ws: Workstation, scheduler: str, max_jobs: int) -> None:
    base = ice.home / ws.name
    _private_dir(base / "sock")
    cache = _private_dir(base / "env")
    env = {**os.environ, "ICECC_TEST_SOCKET": str(ice.socket(ws))}
    command = ["iceccd", "-m", str(max_jobs), "-s", scheduler, "-n", ice.netname]
    command += ["-b", str(cache), "-N", ws.name, "-vv"]
    with ice.log(ws).open("w") as log:
        process = ws.start(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    ice.processes.append((ws, process))


def _wait_connected(ice: Icecream, stations: Sequence[Workstation]) -> None:
    """Until every iceccd's socket exists and its log says it reached the scheduler."""
    deadline = time.monotonic() + READY_TIMEOUT
    for ws in stations:
        while not (ice.socket(ws).exists() and "onnected to scheduler" in _text(ice.log(ws))):
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{ws.name}'s iceccd did not reach the scheduler in {READY_TIMEOUT:.0f} s:"
                    f"\n{_text(ice.log(ws))[-2000:]}"
                )
            time.sleep(0.2)


def _text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""
