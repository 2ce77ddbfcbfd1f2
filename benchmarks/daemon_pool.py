"""Figures for the daemon on three namespace workstations, with the default timings.

Measures: daemon start to being in every peer's table; a pause reaching the peers; a
SIGKILLed daemon turning suspect and then dead at its peers; each daemon's resident
memory and its CPU use while the pool idles.  Needs root (network namespaces).

    sudo .venv/bin/python benchmarks/daemon_pool.py [--idle SECONDS]

The status is read straight from each daemon's control socket every 20 ms, so the
figures carry about 20 ms of polling error, not a CLI's start-up time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from p2pcc.control_client import send_request
from p2pcc.core.control_protocol import PauseRequest, StatusRequest
from p2pcc.core.errors import P2pccError
from tests.integration import pool
from tests.integration.netbed import TestBed

NAMES = ("alpha", "beta", "gamma")


def status(daemon: pool.Daemon) -> dict[str, Any] | None:
    try:
        return send_request(daemon.runtime_dir / "control", StatusRequest(), timeout=2)
    except (P2pccError, OSError):  # a daemon not up yet answers nothing
        return None


def peer(daemon: pool.Daemon, name: str) -> dict[str, Any] | None:
    document = status(daemon)
    if document is None:
        return None
    return next((p for p in document["peers"] if p["name"] == name), None)


def wait(predicate: Callable[[], object], timeout: float) -> float:
    """Seconds until `predicate` holds, polled every 20 ms."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise SystemExit(f"timed out after {timeout} s")
        time.sleep(0.02)
    return time.monotonic() - start


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle", type=float, default=30.0, help="seconds of idle measurement")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="p2pcc-bench-"))
    home.chmod(0o755)
    # Default timings: interval 2 s, suspect 5 s, dead 15 s.
    pool.INTERVAL, pool.SUSPECT_AFTER, pool.DEAD_AFTER = 2.0, 5.0, 15.0
    try:
        with TestBed() as bed:
            daemons = [pool.Daemon(bed.add_workstation(n), home / n) for n in NAMES]
            started = time.monotonic()
            for daemon in daemons:
                daemon.start()

            def full() -> bool:
                return all(all(peer(d, n) for n in NAMES if n != d.ws.name) for d in daemons)

            wait(full, 60)
            print(f"start of 3 daemons to full tables:   {time.monotonic() - started:6.2f} s")
            print("  (includes interpreter start, compiler probes and distccd start-up)")
            alpha, beta, gamma = daemons
            pause_sent = time.monotonic()
            send_request(alpha.runtime_dir / "control", PauseRequest(600, "bench"))
            wait(
                lambda: all(
                    (peer(d, "alpha") or {}).get("state") == "paused" for d in (beta, gamma)
                ),
                10,
            )
            print(f"pause reaching both peers:           {time.monotonic() - pause_sent:6.3f} s")
            time.sleep(3)
            pids = [d.process.pid for d in daemons if d.process]
            before = {pid: cpu_seconds(pid) for pid in pids}
            time.sleep(args.idle)
            for daemon in daemons:
                assert daemon.process is not None
                pid = daemon.process.pid
                used = cpu_seconds(pid) - before[pid]
                print(
                    f"{daemon.ws.name:6} RSS {rss_mib(pid):6.1f} MiB, idle CPU "
                    f"{100 * used / args.idle:5.2f} % over {args.idle:.0f} s"
                )
            assert gamma.process is not None
            killed = time.monotonic()
            os.killpg(gamma.process.pid, signal.SIGKILL)
            suspect = wait(lambda: (peer(alpha, "gamma") or {}).get("liveness") == "suspect", 30)
            wait(lambda: (peer(alpha, "gamma") or {}).get("liveness") == "dead", 30)
            print(f"killed daemon suspect after:         {suspect:6.2f} s (suspect_after 5 s)")
            print(
                f"killed daemon dead after:            {time.monotonic() - killed:6.2f} s "
                "(dead_after 15 s)"
            )
            print(
                "  (silence is counted from the last datagram, up to one 2 s interval "
                "before the kill)"
            )
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
