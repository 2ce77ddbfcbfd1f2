"""A real distccd on 127.0.0.1 for tests that must prove a compile really went remote.

Started in a session of its own (so stopping it stops its preforked children too), as
user distccd when we are root (as `p2pcc.daemon.distccd.supervisor` does), with a log in a
directory that user can write, an explicit `--allow 127.0.0.1`, and a PATH without any
link directory.  `jobs()` reads its log: one "COMPILE_OK" summary line per job served.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from p2pcc import statefile
from p2pcc.compilers.probe import lookup
from p2pcc.daemon.compilers import native_expansions
from p2pcc.daemon.distccd.system import listening_on
from p2pcc.safe_files import replace_file
from p2pcc.statefile import stamp_of
from tests.integration.pool import wait_until


def require_distcc() -> None:
    """Skip unless distcc, distccd and (as root) the user distccd exist."""
    if not (shutil.which("distcc") and shutil.which("distccd")):
        pytest.skip("needs distcc and distccd")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("distccd")
        except KeyError:
            pytest.skip("running distccd as root needs the user distccd")


@dataclass(frozen=True)
class Distccd:
    """A running loopback distccd."""

    port: int
    log: Path

    @property
    def host(self) -> str:
        """Its DISTCC_HOSTS entry: two slots over TCP (so distcc really connects)."""
        return f"127.0.0.1:{self.port}/2"

    def jobs(self) -> list[str]:
        """The summary line of every job it compiled so far."""
        if not self.log.exists():
            return []
        return [line for line in self.log.read_text().splitlines() if "COMPILE_OK" in line]

    def wait_for_jobs(self, count: int) -> list[str]:
        """The job lines once there are at least `count`: distccd logs a job's summary
        after the client has its object, so the line may come a moment later."""
        wait_until(lambda: len(self.jobs()) >= count, 10, f"{count} jobs in {self.log}")
        return self.jobs()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def loopback_distccd(workdir: Path) -> Iterator[Distccd]:
    """Run distccd on 127.0.0.1 until the block ends; `workdir` must be reachable by the
    distccd user (the `shared_tmp` fixture)."""
    require_distcc()
    port = free_port()
    log_dir = workdir / f"distccd-{port}"
    log_dir.mkdir()
    log_dir.chmod(0o777)  # distccd opens its log after dropping to its user
    argv = ["distccd", "--daemon", "--no-detach", "--allow", "127.0.0.1"]
    argv += ["--listen", "127.0.0.1", "--port", str(port), "--jobs", "2"]
    argv += ["--log-file", str(log_dir / "distccd.log"), "--log-level", "info"]
    if os.geteuid() == 0:
        argv += ["--user", "distccd"]
    process = subprocess.Popen(
        argv,
        env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"},
        start_new_session=True,
        stdin=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: listening_on(port), 10, f"distccd listening on port {port}")
        yield Distccd(port, log_dir / "distccd.log")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)


def write_real_state(path: Path, hosts: str, env: dict[str, str]) -> None:
    """The state file the daemon would write for this machine's gcc, cc and g++ (real
    fingerprints and checked native expansions), every one of them with `hosts`."""
    compilers, lines, natives = {}, {}, {}
    for name in ("gcc", "cc", "g++"):
        fingerprint = lookup(name, env)
        compilers[fingerprint.command] = (
            stamp_of(os.stat(fingerprint.command)),
            fingerprint.id,
            fingerprint.remote_name,
        )
        lines[fingerprint.id] = (2, hosts)
        natives[fingerprint.id] = dict(native_expansions(fingerprint, env))
    replace_file(str(path), statefile.render(time.time(), lines, compilers, natives).encode())
