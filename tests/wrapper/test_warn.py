"""The one-warning-per-build markers (the behaviour across processes is tested in
test_wrapper_process: one warning per session, one across ninja-style groups)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from p2pcc.wrapper import warn


def test_a_build_is_marked_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = {"XDG_RUNTIME_DIR": str(tmp_path)}
    assert warn.warn_once("the daemon is down", env) is True
    assert warn.warn_once("the daemon is down", env) is False
    assert capsys.readouterr().err == "p2pcc: the daemon is down\n"
    [marker] = os.listdir(tmp_path / "p2pcc-warnings")
    assert marker == warn.build_key()


def test_the_build_key_names_the_process_group_and_its_leader() -> None:
    # A process in a session of its own leads its group (as make does when a shell
    # starts it): the key names that group and the leader's start time.  Run in a child
    # because the test runner's own group leader may long be gone (a CI script).
    code = (
        "import os, sys\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "from p2pcc.wrapper import warn\n"
        "print(warn.build_key(), os.getpid(), warn.process_stat(os.getpid())[3])\n"
    )
    root = str(Path(warn.__file__).parents[2])
    out = subprocess.run(
        [sys.executable, "-c", code, root],
        capture_output=True,
        text=True,
        check=True,
        start_new_session=True,
    ).stdout.split()
    key, pid, started = out
    assert key == f"{os.getuid()}.{pid}.{started}"


def test_markers_of_finished_builds_are_removed(tmp_path: Path) -> None:
    directory = tmp_path / "p2pcc-warnings"
    directory.mkdir(mode=0o700)
    gone = directory / f"{os.getuid()}.999999999.12345"  # no such process group leader
    gone.write_text("")
    recycled_pid = os.getpid()
    recycled = directory / f"{os.getuid()}.{recycled_pid}.1"  # a live pid, another start
    recycled.write_text("")
    foreign = directory / "notes.txt"
    foreign.write_text("")
    assert warn.mark_build({"XDG_RUNTIME_DIR": str(tmp_path)}) is True
    assert sorted(os.listdir(directory)) == sorted([warn.build_key(), "notes.txt"])


def test_a_marker_directory_others_can_write_is_not_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "p2pcc-warnings"
    directory.mkdir()
    directory.chmod(0o777)
    env = {"XDG_RUNTIME_DIR": str(tmp_path)}
    assert warn.marker_dir(env) is None
    assert warn.mark_build(env) is None
    # Without a usable marker the warning is given every time rather than never.
    assert warn.warn_once("x", env) is True
    assert warn.warn_once("x", env) is True
    assert capsys.readouterr().err.count("p2pcc: x\n") == 2


def test_a_link_in_place_of_the_marker_directory_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    (tmp_path / "p2pcc-warnings").symlink_to(target)
    assert warn.marker_dir({"XDG_RUNTIME_DIR": str(tmp_path)}) is None


def test_without_a_runtime_dir_markers_go_to_a_private_tmp_directory() -> None:
    directory = warn.marker_dir({})
    assert directory == f"/tmp/p2pcc-warnings-{os.getuid()}"
    assert os.stat(directory).st_mode & 0o777 == 0o700


def test_a_marker_of_a_build_whose_leader_was_gone_is_kept_for_a_day(tmp_path: Path) -> None:
    # A build started from a script that exited has no group leader to check against:
    # its marker ends in ".0" and must survive the clean-up, or every compile would warn.
    orphan = tmp_path / f"{os.getuid()}.999999999.0"
    finished = tmp_path / f"{os.getuid()}.999999998.12345"  # leader gone: build over
    orphan.write_text("")
    finished.write_text("")
    warn._forget_finished_builds(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == [orphan.name]
    day_old = orphan.stat().st_mtime - warn.ORPHAN_MARKER_SECONDS - 1
    os.utime(orphan, (day_old, day_old))
    warn._forget_finished_builds(str(tmp_path))
    assert list(tmp_path.iterdir()) == []
