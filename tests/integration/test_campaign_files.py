"""The bad-input campaign's local files: what distccd's user and other local users can
leave in the daemon's way, against real daemons on namespace workstations.

* The FIFO swap (issue 11, attack 2): distccd's user (anyone whose job distccd runs can
  act as it) replaces `RUNTIME_DIR/distccd/distccd.log` by a FIFO and kills distccd.
  The daemon used to block in `open()` on its event loop for good: no gossip, no
  status, SIGTERM ignored.  Now it must keep gossiping, answer `status` within a
  second, start distccd again and stop promptly on SIGTERM.
* A runtime directory another user made, or may write, or a link in its place (attack
  4): the daemon must refuse to start, with one line saying what to fix and exit
  status 1, and write nothing into it.

Figures are printed with the campaign's prefix `BAD-INPUT-FIGURE: ` (run with -s);
docs/security.md records them.  Unit-level proofs: tests/daemon/distccd/
test_hostile_directory.py, tests/daemon/test_runtime_dir.py.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from p2pcc.control_client import send_request
from p2pcc.core.control_protocol import StatusRequest
from p2pcc.core.errors import P2pccError
from tests.integration.distccd_jobs import kill_orphaned_distccd, log_file, pid_file
from tests.integration.netbed import TestBed
from tests.integration.pool import INTERVAL, Daemon, start_pool, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.netns]

FIGURE = "BAD-INPUT-FIGURE: "
NAMES = ("alpha", "beta")
OTHER_UID = 65534  # nobody: a second local user
DISTCCD = pwd.getpwnam("distccd")

#: Bounds: the daemon answers in milliseconds; a loaded CI machine must not flake.
STATUS_TIMEOUT = 1.0
WATCH_SECONDS = 6.0  # how long after the swap the daemon is watched answering
STOP_BOUND = 10.0  # SIGTERM to exit, with no job to drain


@pytest.fixture
def pool(bed: TestBed, shared_tmp: Path, key_file: Path) -> Iterator[list[Daemon]]:
    daemons: list[Daemon] = []
    try:
        for daemons in start_pool(bed, shared_tmp, NAMES, key_file):
            yield daemons
    finally:
        for daemon in daemons:
            release_fifo(log_file(daemon))  # should a reader still block on it
            kill_orphaned_distccd(daemon)


def release_fifo(path: Path) -> None:
    """Open `path` for writing if it is a FIFO someone is blocked reading, freeing them."""
    with contextlib.suppress(OSError):
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))


def as_distccd_user(script: str, *args: str) -> None:
    """Run a shell script as distccd's user, as a compile job sent to distccd could."""
    subprocess.run(
        ["sh", "-c", script, "sh", *args],
        user=DISTCCD.pw_uid,
        group=DISTCCD.pw_gid,
        extra_groups=[],
        check=True,
        timeout=10,
    )


def timed_status(daemon: Daemon) -> tuple[float, dict[str, Any] | None]:
    """How long the daemon's control socket took to answer `status`, and the answer
    (None when it did not answer within STATUS_TIMEOUT)."""
    started = time.monotonic()
    try:
        answer = send_request(
            daemon.runtime_dir / "control", StatusRequest(), timeout=STATUS_TIMEOUT
        )
    except (OSError, P2pccError):
        answer = None
    return time.monotonic() - started, answer


def distccd_pid(daemon: Daemon) -> int | None:
    """The pid in the daemon's distccd pid file, while that distccd runs."""
    try:
        pid = int(pid_file(daemon).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if Path(f"/proc/{pid}").exists() else None


def sequence_seen_by(observer: Daemon, name: str) -> int:
    _, status = timed_status(observer)
    peers = {} if status is None else {peer["name"]: peer for peer in status["peers"]}
    peer = peers.get(name)
    return int(peer["sequence"]) if peer and peer["liveness"] == "alive" else -1


def test_a_fifo_in_place_of_distccds_log_does_not_freeze_the_daemon(pool: list[Daemon]) -> None:
    alpha, beta = pool
    first = wait_until(lambda: distccd_pid(alpha), 10, "alpha's distccd pid file")
    heard_before = sequence_seen_by(beta, "alpha")
    swapped = time.monotonic()
    as_distccd_user(
        'rm -f "$1" && mkfifo "$1" && kill -KILL "$2"', str(log_file(alpha)), str(first)
    )

    latencies = []
    restarted_after = None
    while time.monotonic() - swapped < WATCH_SECONDS:
        latency, status = timed_status(alpha)
        assert status is not None, f"alpha did not answer status within {STATUS_TIMEOUT} s"
        latencies.append(latency)
        pid = distccd_pid(alpha)
        if restarted_after is None and pid not in (None, first) and status["node"]["serving"]:
            restarted_after = time.monotonic() - swapped
        time.sleep(0.1)
    heard_after = sequence_seen_by(beta, "alpha")
    print(
        f"\n{FIGURE}FIFO swap: {len(latencies)} status answers in {WATCH_SECONDS:g} s, "
        f"slowest {max(latencies) * 1000:.0f} ms; distccd serving again after "
        f"{restarted_after or -1:.2f} s; beta heard alpha's sequence go "
        f"{heard_before} -> {heard_after}"
    )
    assert restarted_after is not None, "distccd was not started again"
    assert heard_after >= heard_before + (WATCH_SECONDS / INTERVAL) / 2  # gossip went on
    assert log_file(alpha).is_file()  # a new regular log in place of the FIFO
    assert not log_file(alpha).is_symlink()
    assert f"removing {log_file(alpha)} (prw-" in alpha.log_text()

    assert alpha.process is not None
    stopping = time.monotonic()
    alpha.process.send_signal(signal.SIGTERM)
    assert alpha.process.wait(timeout=STOP_BOUND + 5) == 0
    stopped_after = time.monotonic() - stopping
    print(f"{FIGURE}FIFO swap: SIGTERM to exit {stopped_after:.2f} s")
    assert stopped_after < STOP_BOUND
    assert distccd_pid(alpha) is None  # distccd stopped with it


@pytest.mark.parametrize("planted", ["another user's", "group-writable", "a link"])
def test_a_runtime_directory_others_control_is_refused(
    bed: TestBed, shared_tmp: Path, planted: str
) -> None:
    daemon = Daemon(bed.add_workstation("delta"), shared_tmp / "delta")
    runtime = daemon.runtime_dir
    runtime.parent.mkdir(parents=True)
    private = shared_tmp / "root-only"  # what the other user would like root to chmod
    private.mkdir(mode=0o700)
    if planted == "a link":
        runtime.symlink_to(private)
        expected = "is a symbolic link, which the daemon does not follow"
    else:
        runtime.mkdir(mode=0o755)
        if planted == "another user's":
            os.chown(runtime, OTHER_UID, OTHER_UID)
            expected = f"belongs to nobody (uid {OTHER_UID}), not to the daemon's user root"
        else:
            runtime.chmod(0o775)
            expected = "is writable by group or others (mode 0775)"
        (runtime / "distccd").symlink_to(private)  # the daemon used to chmod it 0755
    started = time.monotonic()
    daemon.start()
    assert daemon.process is not None
    status = daemon.process.wait(timeout=60)
    refused_after = time.monotonic() - started
    output = daemon.log_text()
    errors = [line for line in output.splitlines() if line.startswith("p2pcc:")]
    print(f"\n{FIGURE}runtime dir {planted}: exit {status} after {refused_after:.2f} s: {errors}")
    assert status == 1
    assert len(errors) == 1
    assert f"p2pcc: the runtime directory {runtime} {expected}" in errors[0]
    assert "Traceback" not in output
    private_status = private.stat()
    assert (private_status.st_uid, private_status.st_mode & 0o7777) == (0, 0o700)
    assert list(private.iterdir()) == []
    if planted != "a link":  # nothing written there: no state file, no control socket
        assert [entry.name for entry in runtime.iterdir()] == ["distccd"]
