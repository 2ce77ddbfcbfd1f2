"""Node id and incarnation survive restarts, never go backwards, and heal when damaged."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from p2pcc.core import limits
from p2pcc.daemon.stores.identity import (
    IdentityError,
    load_node_id,
    next_incarnation,
    store_node_id,
)
from p2pcc.safe_files import replace_file

GOOD_ID = bytes(range(16))


@pytest.fixture(autouse=True)
def no_hang() -> Iterator[None]:
    """A read that blocks (a FIFO opened the ordinary way) fails the test instead."""

    def blocked(signum: int, frame: object) -> None:
        raise TimeoutError("a read blocked")

    previous = signal.signal(signal.SIGALRM, blocked)
    signal.alarm(10)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_node_id_is_created_once_and_kept(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "state" / "node-id"
    first = load_node_id(path)
    assert len(first) == 16
    assert path.read_text() == first.hex() + "\n"
    assert load_node_id(path) == first
    assert warnings_of(caplog) == []  # a first start is no damage


def test_both_files_are_written_durably(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, bool]] = []

    def recording(path: Path, data: bytes, *, durable: bool = False) -> None:
        calls.append((Path(path).name, durable))
        replace_file(path, data, durable=durable)

    monkeypatch.setattr("p2pcc.daemon.stores.identity.replace_file", recording)
    load_node_id(tmp_path / "node-id")
    next_incarnation(tmp_path / "incarnation", wall=1.0)
    store_node_id(tmp_path / "node-id", GOOD_ID)
    assert calls == [("node-id", True), ("incarnation", True), ("node-id", True)]


def fifo(path: Path) -> None:
    os.mkfifo(path)


def symlink_to_a_valid_id(path: Path) -> None:
    elsewhere = path.with_name("planted")
    elsewhere.write_text(GOOD_ID.hex() + "\n")
    path.symlink_to(elsewhere)


@pytest.mark.parametrize(
    ("make", "damage"),
    [
        (lambda p: p.write_text(""), "empty"),
        (lambda p: p.write_text("\n"), "empty"),
        (lambda p: p.write_text(GOOD_ID.hex()[:20]), "not 32 hex digits"),  # truncated
        (lambda p: p.write_text(GOOD_ID.hex() + "00"), "not 32 hex digits"),
        (lambda p: p.write_text("not hex at all\n"), "not 32 hex digits"),
        (lambda p: p.write_bytes(b"\xff\xfe" * 16), "not 32 hex digits"),
        (fifo, "not a regular file, or unreadable"),
        (symlink_to_a_valid_id, "not a regular file, or unreadable"),
    ],
    ids=["empty", "newline", "short", "long", "non-hex", "binary", "fifo", "symlink"],
)
def test_a_damaged_id_is_replaced_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, make: object, damage: str
) -> None:
    path = tmp_path / "node-id"
    make(path)  # type: ignore[operator]
    node_id = load_node_id(path)
    assert len(node_id) == 16
    assert node_id != GOOD_ID  # a link is never followed, not even to a valid id
    assert not path.is_symlink()
    assert path.read_text() == node_id.hex() + "\n"
    assert warnings_of(caplog) == [
        f"{path} held no node id ({damage}); a new one, {node_id.hex()}, replaces it"
    ]
    assert load_node_id(path) == node_id  # and it is kept from then on
    assert len(warnings_of(caplog)) == 1


def test_the_planted_links_target_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "node-id"
    symlink_to_a_valid_id(path)
    load_node_id(path)
    assert (tmp_path / "planted").read_text() == GOOD_ID.hex() + "\n"


def test_an_id_that_cannot_be_replaced_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "node-id"
    path.mkdir()
    (path / "something").write_text("")
    with pytest.raises(IdentityError, match=r"node-id: cannot write the node id: .*writable"):
        load_node_id(path)


def test_an_id_file_whose_directory_cannot_be_made_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where the directory should be")
    with pytest.raises(IdentityError, match=r"state/node-id: cannot write the node id"):
        load_node_id(blocker / "node-id")


def test_store_node_id_replaces_the_id(tmp_path: Path) -> None:
    path = tmp_path / "state" / "node-id"
    load_node_id(path)
    store_node_id(path, GOOD_ID)
    assert load_node_id(path) == GOOD_ID
    assert [p.name for p in path.parent.iterdir()] == ["node-id"]  # no temporary left


def test_incarnation_grows_even_when_the_clock_goes_back(tmp_path: Path) -> None:
    path = tmp_path / "incarnation"
    first = next_incarnation(path, wall=1000.0)
    assert first == 1_000_000
    assert next_incarnation(path, wall=999.0) == 1_000_001  # clock stepped back
    assert next_incarnation(path, wall=2000.0) == 2_000_000


@pytest.mark.parametrize(
    ("make", "damage"),
    [
        (lambda p: p.write_text(""), "empty"),
        (lambda p: p.write_text("12ab\n"), "not a counter"),
        (lambda p: p.write_text("-5\n"), "not a counter"),
        (lambda p: p.write_text(f"{limits.MAX_COUNTER}\n"), "not a counter"),
        (fifo, "not a regular file, or unreadable"),
    ],
    ids=["empty", "garbage", "negative", "at-the-cap", "fifo"],
)
def test_a_damaged_incarnation_counts_from_the_clock_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, make: object, damage: str
) -> None:
    path = tmp_path / "incarnation"
    make(path)  # type: ignore[operator]
    assert next_incarnation(path, wall=1234.5) == 1_234_500
    assert path.read_text() == "1234500\n"
    assert warnings_of(caplog) == [
        f"{path} held no incarnation ({damage}); counting from the clock"
    ]


def test_incarnation_without_a_writable_file_follows_the_clock(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert next_incarnation(blocker / "incarnation", wall=5.5) == 5500
