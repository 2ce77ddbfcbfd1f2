"""Members beyond our link kept across a restart: which are kept, how seeds and them
combine, and the file, read as hostile."""

from __future__ import annotations

import pytest

from p2pcc.core.peers import Liveness, Peer
from p2pcc.core.remembered import (
    HEADER,
    MAX_FILE_BYTES,
    MAX_REMEMBERED,
    contacts,
    decode,
    encode,
    to_remember,
)
from tests.core.local_nodes import status


def peer(index: int, heard: float) -> Peer:
    node_id = index.to_bytes(16, "big")
    return Peer(
        node_id, status(f"ws{index}", f"10.2.0.{index}"), Liveness.ALIVE, heard, 0.0, (1, 1)
    )


def test_the_most_recently_heard_members_are_kept_at_most_the_cap() -> None:
    peers = [peer(index, heard=float(index)) for index in range(1, 41)]
    beyond = {p.node_id: (p.status.addresses[0], 3634) for p in peers}
    kept = to_remember(beyond, peers)
    assert len(kept) == MAX_REMEMBERED
    assert set(kept) == {(f"10.2.0.{index}", 3634) for index in range(25, 41)}
    assert list(kept) == sorted(kept)
    assert to_remember({}, peers) == ()


def test_the_configured_seeds_come_first_without_repeats() -> None:
    seeds = [("10.1.0.1", 3634), ("10.2.0.9", 3634)]
    remembered = [("10.2.0.9", 3634), ("10.3.0.1", 4000)]
    assert contacts(seeds, remembered) == (
        ("10.1.0.1", 3634),
        ("10.2.0.9", 3634),
        ("10.3.0.1", 4000),
    )
    assert contacts(seeds, ()) == tuple(seeds)


def test_a_file_holds_what_was_kept() -> None:
    kept = (("10.2.0.1", 3634), ("fe80::1%2", 3634), ("2001:db8::5", 65535))
    data = encode(kept)
    assert data.startswith(HEADER.encode() + b"\n")
    assert decode(data) == kept
    assert decode(encode(())) == ()


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "does not start with"),
        (b"p2pcc-members 2\n10.0.0.1 3634\n", "does not start with"),
        (HEADER.encode() + b"\n10.0.0.1\n", "line 2 is not 'address port'"),
        (HEADER.encode() + b"\nbuild1.example.org 3634\n", "line 2 is not 'address port'"),
        (HEADER.encode() + b"\n10.0.0.1 0\n", "line 2: no port '0'"),
        (HEADER.encode() + b"\n10.0.0.1 65536\n", "no port '65536'"),
        (HEADER.encode() + b"\n10.0.0.1 +80\n", "no port '+80'"),
        (HEADER.encode() + b"\n10.0.0.1 3634 x\n", "line 2 is not 'address port'"),
        (HEADER.encode() + "\n10.0.0.1 3634\u00e9\n".encode(), "not ASCII"),
        (encode([(f"10.0.0.{n}", 3634) for n in range(MAX_REMEMBERED + 1)]), "more than"),
        (HEADER.encode() + b"\n" + b" " * MAX_FILE_BYTES, "over"),
    ],
)
def test_anything_else_is_refused_whole_saying_why(data: bytes, why: str) -> None:
    with pytest.raises(ValueError, match=why.replace("+", r"\+")):
        decode(data)
