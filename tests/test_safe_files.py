"""`replace_file`: whole content, exact permissions, nothing left behind on failure;
`read_regular_file`: regular files only, never blocking on a FIFO."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from p2pcc.safe_files import (
    is_directory,
    is_regular,
    open_regular,
    read_regular_file,
    read_regular_tail,
    replace_file,
    trusted_by,
)


def test_the_file_holds_exactly_the_data_and_no_temporary_remains(tmp_path: Path) -> None:
    target = tmp_path / "state"
    target.write_bytes(b"old content that is longer than the new one")
    replace_file(target, b"new")
    assert target.read_bytes() == b"new"
    assert [entry.name for entry in tmp_path.iterdir()] == ["state"]


@pytest.mark.parametrize("mode", [0o600, 0o644, 0o755])
@pytest.mark.parametrize("durable", [False, True])
def test_the_mode_is_exact_whatever_the_umask(tmp_path: Path, mode: int, durable: bool) -> None:
    old_umask = os.umask(0o077)
    try:
        replace_file(str(tmp_path / "file"), b"x", mode=mode, durable=durable)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((tmp_path / "file").stat().st_mode) == mode


def test_a_failed_rename_keeps_the_target_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "occupied"
    target.mkdir()
    (target / "inside").write_text("kept")
    with pytest.raises(IsADirectoryError):
        replace_file(target, b"data")
    assert (target / "inside").read_text() == "kept"
    assert [entry.name for entry in tmp_path.iterdir()] == ["occupied"]


def test_a_missing_directory_is_an_oserror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        replace_file(tmp_path / "absent" / "file", b"data")


def test_a_reader_racing_the_writers_sees_only_whole_contents(tmp_path: Path) -> None:
    target = tmp_path / "state"
    contents = [bytes([65 + n]) * (50_000 + n) for n in range(4)]
    replace_file(target, contents[0])
    seen: set[bytes] = set()
    stop = threading.Event()

    def read_until_stopped() -> None:
        while not stop.is_set():
            seen.add(target.read_bytes())

    reader = threading.Thread(target=read_until_stopped)
    reader.start()
    try:
        for round_ in range(200):
            replace_file(target, contents[round_ % len(contents)])
    finally:
        stop.set()
        reader.join(timeout=10)
    assert seen
    assert seen <= set(contents)
    assert [entry.name for entry in tmp_path.iterdir()] == ["state"]


def test_a_regular_file_is_read_up_to_the_limit(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"0123456789")
    assert read_regular_file(str(tmp_path / "file"), 100) == b"0123456789"
    assert read_regular_file(str(tmp_path / "file"), 4) == b"0123"
    (tmp_path / "link").symlink_to("file")
    assert read_regular_file(str(tmp_path / "link"), 100) is None  # a link is not followed


def test_anything_but_a_regular_file_reads_as_none_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    code = (
        "import sys; from p2pcc.safe_files import read_regular_file\n"
        "print([read_regular_file(path, 100) for path in sys.argv[1:]])"
    )
    paths = [str(tmp_path / "fifo"), str(tmp_path), "/dev/zero", str(tmp_path / "absent")]
    done = subprocess.run(
        [sys.executable, "-c", code, *paths], capture_output=True, text=True, timeout=20, check=True
    )
    assert done.stdout.strip() == "[None, None, None, None]"
    assert read_regular_file("nul\0byte", 100) is None


def test_file_types_are_those_of_the_stat_module(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "file").write_text("")
    for path in ("fifo", "file", "."):
        mode = os.stat(tmp_path / path).st_mode
        assert is_regular(mode) == stat.S_ISREG(mode)
        assert is_directory(mode) == stat.S_ISDIR(mode)
    assert is_regular(os.stat(tmp_path / "file").st_mode)
    assert is_directory(os.stat(tmp_path).st_mode)


def test_a_link_is_not_followed_even_to_a_regular_file(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_bytes(b"chosen by whoever planted the link")
    (tmp_path / "state").symlink_to(target)
    assert read_regular_file(str(tmp_path / "state"), 100) is None
    assert open_regular(str(tmp_path / "state")) is None
    fd = open_regular(str(target))
    assert fd is not None
    os.close(fd)


@pytest.mark.parametrize(
    ("uid", "mode", "trusted"),
    [
        (0, 0o755, True),
        (1000, 0o700, True),
        (1000, 0o644, True),
        (2000, 0o755, False),  # someone else's
        (1000, 0o775, False),  # the group may write it
        (0, 0o757, False),  # anyone may write it
        (0, 0o1777, False),  # /tmp: sticky, yet shared
    ],
)
def test_trusted_means_ours_or_roots_and_writable_by_no_one_else(
    uid: int, mode: int, trusted: bool
) -> None:
    status = os.stat_result((stat.S_IFDIR | mode, 0, 0, 1, uid, 0, 0, 0, 0, 0))
    assert trusted_by(status, (0, 1000)) is trusted


def test_a_durable_replace_also_works_for_a_name_without_a_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    replace_file("id", b"x", durable=True)
    assert (tmp_path / "id").read_bytes() == b"x"


def test_a_tail_is_the_last_bytes_of_a_regular_file_and_nothing_else(tmp_path: Path) -> None:
    (tmp_path / "log").write_bytes(b"0123456789")
    assert read_regular_tail(str(tmp_path / "log"), 4) == b"6789"
    assert read_regular_tail(str(tmp_path / "log"), 100) == b"0123456789"
    (tmp_path / "link").symlink_to("log")
    os.mkfifo(tmp_path / "fifo")
    code = (
        "import sys; from p2pcc.safe_files import read_regular_tail\n"
        "print([read_regular_tail(path, 100) for path in sys.argv[1:]])"
    )
    paths = [str(tmp_path / name) for name in ("link", "fifo", ".", "absent")]
    done = subprocess.run(
        [sys.executable, "-c", code, *paths], capture_output=True, text=True, timeout=20, check=True
    )
    assert done.stdout.strip() == "[None, None, None, None]"
