"""The decoder's memos: a status or an offer seen before is answered from memory, and
nothing in memory changes what a datagram decodes to."""

from __future__ import annotations

from dataclasses import replace

import pytest

from p2pcc.core import wire_status
from p2pcc.core.errors import OversizedError, WireFormatError
from p2pcc.core.wire_status import decode_status, status_payload
from tests.core.sim_pool import status_of

STATUS = status_of(7, 0)


def test_the_same_status_twice_decodes_to_it_both_times() -> None:
    payload = status_payload(STATUS)
    assert decode_status(payload) == STATUS
    assert decode_status(status_payload(STATUS)) is decode_status(payload)


def test_a_status_one_field_apart_decodes_to_its_own_value() -> None:
    decode_status(status_payload(STATUS))
    moved = replace(STATUS, load=3.25, jobs=2)
    assert decode_status(status_payload(moved)) == moved


def test_a_bad_status_is_refused_every_time_it_comes() -> None:
    payload = status_payload(STATUS)
    payload["slots"] = -1
    for _ in range(3):
        with pytest.raises(WireFormatError, match=r"body\.slots"):
            decode_status(payload)


def test_a_body_the_wire_cannot_carry_is_refused_as_before() -> None:
    payload = status_payload(STATUS)
    payload["name"] = object()
    with pytest.raises(WireFormatError, match=r"body\.name: expected a string"):
        decode_status(payload)
    with pytest.raises(WireFormatError, match="body: expected a map"):
        decode_status([1, 2])


def test_a_bad_offer_is_refused_every_time_and_never_remembered() -> None:
    payload = status_payload(STATUS)
    payload["cc"] = [[b"\x01" * 8, "-x", "gcc"]]  # a loose key starting with "-"
    for _ in range(2):
        with pytest.raises(WireFormatError, match=r"body.cc\[0\].loose"):
            decode_status(payload)
    payload["cc"] = [[b"\x01" * 9, "x", "gcc"]]
    with pytest.raises(OversizedError, match="fingerprint"):
        decode_status(payload)


def test_a_flood_of_made_up_offers_keeps_the_memo_bounded() -> None:
    for n in range(wire_status.KNOWN_OFFERS_CAP + 50):
        payload = status_payload(STATUS)
        payload["cc"] = [[n.to_bytes(8, "big"), "x86_64-linux-gnu--12", f"gcc-{n}"]]
        assert decode_status(payload).compilers[0].remote_name == f"gcc-{n}"
    assert len(wire_status._KNOWN_OFFERS) <= wire_status.KNOWN_OFFERS_CAP
