"""`replace_file`: whole content, exact permissions, nothing left behind on failure."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from p2pcc.atomic_file import replace_file


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
