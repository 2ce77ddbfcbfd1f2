"""Node id and incarnation survive restarts and never go backwards."""

from __future__ import annotations

from pathlib import Path

import pytest

from p2pcc.daemon.stores.identity import IdentityError, load_node_id, next_incarnation


def test_node_id_is_created_once_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "state" / "node-id"
    first = load_node_id(path)
    assert len(first) == 16
    assert path.read_text() == first.hex() + "\n"
    assert load_node_id(path) == first


def test_corrupt_node_id_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "node-id"
    path.write_text("not hex at all\n")
    with pytest.raises(IdentityError, match=r"not a node id \(32 hex digits expected\); delete"):
        load_node_id(path)


def test_incarnation_grows_even_when_the_clock_goes_back(tmp_path: Path) -> None:
    path = tmp_path / "incarnation"
    first = next_incarnation(path, wall=1000.0)
    assert first == 1_000_000
    assert next_incarnation(path, wall=999.0) == 1_000_001  # clock stepped back
    assert next_incarnation(path, wall=2000.0) == 2_000_000


def test_incarnation_without_a_writable_file_follows_the_clock(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert next_incarnation(blocker / "incarnation", wall=5.5) == 5500
