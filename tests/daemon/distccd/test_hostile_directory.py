"""distccd's directory belongs to distccd's user: whatever the daemon finds there may be a
FIFO, a link or a hard link put there to freeze the daemon or to have root change
another file.  Real files, FIFOs and links in tmp_path; a fake distccd (a shell script)
that plants them the way the attacker would and exits, as a killed distccd does."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import math
import os
import pwd
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
import trio

from p2pcc.config.model import DistccdConfig
from p2pcc.core import limits
from p2pcc.core.errors import P2pccError
from p2pcc.daemon.distccd import supervisor
from p2pcc.daemon.distccd.supervisor import SupervisorTiming, distccd_log_file, serve_distccd
from p2pcc.daemon.distccd.system import (
    clear_for_start,
    log_tail,
    pid_file_session,
    prepare_log_dir,
)

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="only root hands files to another user")

#: What the daemon's test stand-in for distccd's user is: any uid but ours.
NOBODY = pwd.getpwnam("nobody")

QUICK = SupervisorTiming(
    backoff_initial=0.01,
    backoff_max=0.05,
    start_timeout=5.0,
    term_timeout=1.0,
    poll_interval=0.01,
    file_timeout=0.3,
)


@contextlib.contextmanager
def fifo_released_after(fifo: Path, seconds: float) -> Iterator[None]:
    """A safety net for the tests below: should a reader block on `fifo` on the event
    loop (the bug they guard against), open it for writing after `seconds`, which
    frees the reader, so that the test fails on its `fail_after` instead of hanging."""
    stop = threading.Event()

    def release() -> None:
        while not stop.wait(seconds):
            with contextlib.suppress(OSError):  # ENXIO: nobody is blocked on it
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))

    watchdog = threading.Thread(target=release, daemon=True)
    watchdog.start()
    try:
        yield
    finally:
        stop.set()
        watchdog.join()


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    path = distccd_log_file(tmp_path)
    path.parent.mkdir()
    return path


@pytest.fixture
def pid_file(log_file: Path) -> Path:
    return log_file.with_name("distccd.pid")


@pytest.fixture
def precious(tmp_path: Path) -> Path:
    """A root-only file outside distccd's directory that links may point at."""
    path = tmp_path / "precious"
    path.write_text("distccd[1] (dcc_x) ERROR: root's secret\n")
    path.chmod(0o600)
    return path


def test_the_tail_of_a_log_is_its_last_bytes(log_file: Path) -> None:
    log_file.write_bytes(b"a" * 10_000 + b"\nlast line \xff\n")
    assert log_tail(log_file, 12) == "last line \ufffd\n"
    assert len(log_tail(log_file)) == 8192
    assert log_tail(log_file.with_name("missing")) == ""


def test_the_tail_of_a_fifo_or_a_link_is_nothing_at_once(log_file: Path, precious: Path) -> None:
    os.mkfifo(log_file)
    link = log_file.with_name("link")
    link.symlink_to(precious)
    with fifo_released_after(log_file, 5):
        assert log_tail(log_file) == ""
    assert log_tail(link) == ""


def test_the_pid_file_is_read_only_when_it_is_a_regular_file(
    pid_file: Path, precious: Path
) -> None:
    pid_file.write_text("4321\n")
    assert pid_file_session(pid_file) == 4321
    for content in ("", "pid\n", "\n"):
        pid_file.write_text(content)
        assert pid_file_session(pid_file) is None
    pid_file.unlink()
    assert pid_file_session(pid_file) is None
    precious.write_text("1\n")
    pid_file.symlink_to(precious)
    assert pid_file_session(pid_file) is None
    pid_file.unlink()
    os.mkfifo(pid_file)
    with fifo_released_after(pid_file, 5):
        assert pid_file_session(pid_file) is None


def test_a_fifo_or_link_in_place_of_the_log_or_pid_file_is_removed_before_a_start(
    log_file: Path, pid_file: Path, precious: Path, caplog: pytest.LogCaptureFixture
) -> None:
    os.mkfifo(log_file)
    pid_file.symlink_to(precious)
    clear_for_start(log_file, pid_file)
    assert not os.path.lexists(log_file)
    assert not os.path.lexists(pid_file)
    assert precious.read_text().endswith("root's secret\n")
    assert [record.getMessage() for record in caplog.records] == [
        f"removing {log_file} (prw-r--r--): distccd's user put it in place of a file",
        f"removing {pid_file} (lrwxrwxrwx): distccd's user put it in place of a file",
    ]


def test_a_big_log_is_set_aside_and_a_small_one_kept(log_file: Path, pid_file: Path) -> None:
    log_file.write_text("small\n")
    pid_file.write_text("1\n")
    clear_for_start(log_file, pid_file)
    assert (log_file.read_text(), pid_file.read_text()) == ("small\n", "1\n")
    with log_file.open("wb") as file:
        file.truncate(limits.DISTCCD_LOG_ROTATE_BYTES + 1)  # sparse: costs no disk
    clear_for_start(log_file, pid_file)
    assert not log_file.exists()
    assert log_file.with_name("distccd.log.1").stat().st_size == limits.DISTCCD_LOG_ROTATE_BYTES + 1


@as_root
def test_the_directory_is_handed_over_through_itself(tmp_path: Path) -> None:
    log_file = distccd_log_file(tmp_path)
    log_file.parent.mkdir(mode=0o700)
    log_file.write_text("old log\n")
    prepare_log_dir(log_file, log_file.with_name("distccd.pid"), NOBODY)
    directory = log_file.parent.stat()
    assert (directory.st_uid, directory.st_mode & 0o7777) == (NOBODY.pw_uid, 0o755)
    assert log_file.stat().st_uid == NOBODY.pw_uid


@as_root
def test_a_link_in_place_of_the_directory_is_refused_and_not_followed(tmp_path: Path) -> None:
    private = tmp_path / "root-only"
    private.mkdir(mode=0o700)
    log_file = distccd_log_file(tmp_path)
    log_file.parent.symlink_to(private)
    with pytest.raises(P2pccError) as refused:
        prepare_log_dir(log_file, log_file.with_name("distccd.pid"), NOBODY)
    assert str(refused.value) == (
        f"distccd's directory {log_file.parent} is a symbolic link, which the daemon "
        "does not follow: remove it (the daemon makes one)"
    )
    status = private.stat()
    assert (status.st_uid, status.st_mode & 0o7777) == (0, 0o700)  # neither chowned nor chmodded


@as_root
@pytest.mark.parametrize("planted", ["symlink", "hardlink", "fifo"])
def test_what_is_planted_in_place_of_the_log_is_removed_not_handed_over(
    log_file: Path, precious: Path, planted: str
) -> None:
    if planted == "symlink":
        log_file.symlink_to(precious)
    elif planted == "hardlink":
        os.link(precious, log_file)
    else:
        os.mkfifo(log_file)
    with fifo_released_after(log_file, 5):
        prepare_log_dir(log_file, log_file.with_name("distccd.pid"), NOBODY)
    assert not os.path.lexists(log_file)
    status = precious.stat()
    assert (status.st_uid, status.st_mode & 0o7777) == (0, 0o600)


class SupervisorLog(logging.Handler):
    """The supervisor's log lines; each restart notice also goes to a channel."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.send, self.restarts = trio.open_memory_channel[str](math.inf)

    def emit(self, record: logging.LogRecord) -> None:
        line = record.getMessage()
        self.lines.append(line)
        if "starting it again" in line:  # logged by the supervisor's task, on the loop
            self.send.send_nowait(line)


@pytest.fixture
def supervisor_log() -> Iterator[SupervisorLog]:
    handler = SupervisorLog()
    logger = logging.getLogger("p2pcc.daemon.distccd")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


#: A distccd that does what distccd's user can: write its log, or put a FIFO or a link
#: in its place, and die (here: exit 1 at once).
FAKE_DISTCCD = """#!/bin/sh
while [ $# -gt 0 ]; do [ "$1" = --log-file ] && log=$2; shift; done
case {planted} in
  nothing) echo "distccd[$$] (dcc_fake) ERROR: the detail from the log" >> "$log" ;;
  fifo) rm -f "$log"; mkfifo "$log" ;;
  link) rm -f "$log"; ln -s {target} "$log" ;;
esac
exit 1
"""


def fake_supervisor(tmp_path: Path, planted: str, **options: object) -> partial[None]:
    fake = tmp_path / "fake-distccd"
    fake.write_text(FAKE_DISTCCD.format(planted=planted, target=tmp_path / "elsewhere"))
    fake.chmod(0o755)
    os.mkfifo(tmp_path / "elsewhere")
    allow = (ipaddress.ip_network("127.0.0.0/8"),)
    config = DistccdConfig(
        manage=True, port=9, allow=allow, allow_stock_clients=(), jobs=1, nice=10, user="nobody"
    )
    return partial(
        serve_distccd,
        config,
        listen="127.0.0.1",
        interface="lo",
        log_file=distccd_log_file(tmp_path),
        on_serving=lambda serving: None,
        binary=str(fake),
        timing=QUICK,
        **options,
    )


@pytest.mark.parametrize("planted", ["nothing", "fifo", "link"])
async def test_a_fifo_or_link_in_place_of_the_log_costs_only_the_detail(
    tmp_path: Path, supervisor_log: SupervisorLog, planted: str
) -> None:
    log_file = distccd_log_file(tmp_path)
    with fifo_released_after(log_file, 8), trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(fake_supervisor(tmp_path, planted))
            restarts = [await supervisor_log.restarts.receive() for _ in range(3)]
            nursery.cancel_scope.cancel()
    detail = ": the detail from the log;"
    assert all(("status 1" + detail in line) == (planted == "nothing") for line in restarts)
    removed = [line for line in supervisor_log.lines if line.startswith(f"removing {log_file}")]
    assert len(removed) >= (0 if planted == "nothing" else 2)  # at each restart
    assert not any("did not end within" in line for line in supervisor_log.lines)


async def test_a_file_operation_that_hangs_costs_its_result_not_the_supervisor(
    tmp_path: Path, supervisor_log: SupervisorLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    hung = threading.Event()
    release = threading.Event()

    def hanging_tail(log_file: Path) -> str:  # as a read on a dead FUSE mount would
        hung.set()
        release.wait(30)
        return "distccd[1] (dcc_fake) ERROR: never seen"

    monkeypatch.setattr(supervisor, "log_tail", hanging_tail)
    started = trio.current_time()
    try:
        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                await nursery.start(fake_supervisor(tmp_path, "nothing"))
                restarts = [await supervisor_log.restarts.receive() for _ in range(2)]
                nursery.cancel_scope.cancel()
    finally:
        release.set()
    assert hung.is_set()
    assert all("status 1;" in line for line in restarts)  # no detail, no wait
    timeout = QUICK.file_timeout
    notices = [line for line in supervisor_log.lines if "did not end within" in line]
    assert notices[0] == (
        f"a file operation in distccd's directory {tmp_path / 'distccd'} did not end "
        f"within {timeout:g} s; going on"
    )
    assert trio.current_time() - started < 5
