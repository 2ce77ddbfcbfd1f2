"""Protocol 1.1 on the wire: news entries, nonces, cookies and the status's gossip port."""

from __future__ import annotations

from dataclasses import replace

import msgpack
import pytest

from p2pcc.core import limits
from p2pcc.core.auth import Keyring
from p2pcc.core.errors import OversizedError, WireFormatError
from p2pcc.core.model import EntryKind, Message, MessageKind, NewsEntry
from p2pcc.core.wire import (
    HEADER_BYTES,
    MINOR_VERSION,
    InvalidMessageError,
    decode,
    encode,
    entry_size,
)
from p2pcc.core.wire_status import compilers_digest
from tests.core.golden_vectors import ACTIVE_STATUS, NODE_ID, OTHER_NODE_ID, VECTORS

PLAIN = Keyring()
NEWS = next(vector.message for vector in VECTORS if vector.name == "news-keyed")
PROBE = Message(NODE_ID, 3, 42, 1.0, MessageKind.PROBE, nonce=9)


def tampered(message: Message, **fields: object) -> bytes:
    """`message` as our encoder writes it, with envelope fields replaced."""
    payload = msgpack.unpackb(encode(message, PLAIN)[HEADER_BYTES:])
    payload.update(fields)
    packed: bytes = msgpack.packb(payload, use_bin_type=True)
    return b"P2CC\x01\x01\x00\x00" + packed


def test_a_decoded_datagram_says_its_minor_version() -> None:
    assert decode(encode(PROBE, PLAIN), PLAIN).minor == MINOR_VERSION == 2
    old = b"P2CC\x01\x00\x00\x00" + tampered(PROBE)[HEADER_BYTES:]
    assert decode(old, PLAIN).minor == 0


def test_the_gossip_port_is_written_only_when_not_the_default() -> None:
    plain = msgpack.unpackb(encode(replace(NEWS, news=NEWS.news[:1]), PLAIN)[HEADER_BYTES:])
    assert len(plain["news"][0][5]) == 11  # no "gp"
    moved = NewsEntry(EntryKind.STATE, NODE_ID, 3, 42, 1, replace(ACTIVE_STATUS, gossip_port=4000))
    message = replace(NEWS, news=(moved,))
    decoded = decode(encode(message, PLAIN), PLAIN)
    assert decoded.news[0].body is not None
    assert decoded.news[0].body.gossip_port == 4000


def test_an_entry_of_an_unknown_kind_is_skipped_and_the_rest_kept() -> None:
    entries = msgpack.unpackb(encode(NEWS, PLAIN)[HEADER_BYTES:])["news"]
    future = [99, OTHER_NODE_ID, 1, 1, 1, {"whatever": 1}]
    decoded = decode(tampered(NEWS, news=[future, *entries]), PLAIN)
    assert decoded.news == NEWS.news


@pytest.mark.parametrize(
    "entry",
    [
        [1, NODE_ID, 1, 1, 1],  # a STATE without its body
        [3, NODE_ID[:15], 1, 1, 1],  # a short node id
        [3, NODE_ID, -1, 1, 1],  # a negative incarnation
        [3, NODE_ID, 1, 1, 256],  # a minor version past a byte
        [3, NODE_ID, 1, 1],  # too short
        "not an entry",
    ],
)
def test_a_malformed_entry_rejects_the_datagram(entry: object) -> None:
    with pytest.raises(WireFormatError):
        decode(tampered(NEWS, news=[entry]), PLAIN)


def test_news_at_its_cap_decodes_and_one_more_is_oversized() -> None:
    suspect = [3, NODE_ID, 1, 1, 1]
    assert (
        len(decode(tampered(NEWS, news=[suspect] * limits.MAX_NEWS), PLAIN).news) == limits.MAX_NEWS
    )
    with pytest.raises(OversizedError):
        decode(tampered(NEWS, news=[suspect] * (limits.MAX_NEWS + 1)), PLAIN)


def test_a_probe_without_its_nonce_is_malformed_and_a_state_with_one_ignores_it() -> None:
    payload = msgpack.unpackb(encode(PROBE, PLAIN)[HEADER_BYTES:])
    del payload["nonce"]
    with pytest.raises(WireFormatError, match="nonce: missing"):
        decode(b"P2CC\x01\x01\x00\x00" + msgpack.packb(payload, use_bin_type=True), PLAIN)
    state = VECTORS[0].message
    assert decode(tampered(state, nonce=5, cookie=b"x" * 16), PLAIN).nonce is None


def test_a_cookie_longer_than_its_cap_is_oversized() -> None:
    sync = Message(NODE_ID, 1, 1, 1.0, MessageKind.SYNC, nonce=1)
    assert decode(tampered(sync, cookie=b"c" * 16), PLAIN).cookie == b"c" * 16
    with pytest.raises(OversizedError):
        decode(tampered(sync, cookie=b"c" * 17), PLAIN)


def test_the_encoder_refuses_a_nonce_where_none_belongs_and_a_body_on_a_suspicion() -> None:
    assert decode(encode(replace(NEWS, nonce=1), PLAIN), PLAIN).nonce == 1  # a transfer's
    with pytest.raises(InvalidMessageError):
        encode(replace(VECTORS[0].message, nonce=1), PLAIN)
    with pytest.raises(InvalidMessageError):
        encode(replace(PROBE, nonce=None), PLAIN)
    wrong = NewsEntry(EntryKind.SUSPECT, NODE_ID, 1, 1, 1, ACTIVE_STATUS)
    with pytest.raises(InvalidMessageError):
        encode(replace(NEWS, news=(wrong,)), PLAIN)


def test_entry_size_is_what_the_entry_adds_to_the_datagram() -> None:
    bare = replace(NEWS, news=NEWS.news[:1])
    both = len(encode(NEWS, PLAIN)) - len(encode(bare, PLAIN))
    assert both == entry_size(NEWS.news[1])


def test_a_short_state_carries_the_compilers_digest_instead_of_the_offers() -> None:
    digest = compilers_digest(ACTIVE_STATUS.compilers)
    short = Message(
        NODE_ID, 3, 44, 1.0, MessageKind.STATE, replace(ACTIVE_STATUS, compilers=()),
        deaf=True, compilers_digest=digest, resend=True,
    )  # fmt: skip
    data = encode(short, PLAIN)
    assert decode(data, PLAIN) == short
    whole = encode(replace(short, body=ACTIVE_STATUS, compilers_digest=b""), PLAIN)
    assert len(data) < len(whole) - 80
    assert compilers_digest(ACTIVE_STATUS.compilers[:1]) != digest  # another list
    with pytest.raises(InvalidMessageError):  # a digest stands for the offers, not beside
        encode(replace(short, body=ACTIVE_STATUS), PLAIN)
    with pytest.raises(InvalidMessageError):
        encode(Message(NODE_ID, 1, 2, 1.0, MessageKind.LEAVE, resend=True), PLAIN)


def test_a_body_with_both_a_digest_and_offers_is_malformed() -> None:
    state = Message(NODE_ID, 3, 44, 1.0, MessageKind.STATE, ACTIVE_STATUS)
    body = msgpack.unpackb(encode(state, PLAIN)[HEADER_BYTES:])["body"]
    with pytest.raises(WireFormatError, match="both"):
        decode(tampered(state, body={**body, "ccd": bytes(8)}), PLAIN)
    del body["cc"]
    with pytest.raises(WireFormatError, match="ccd"):  # a digest is exactly 8 bytes
        decode(tampered(state, body={**body, "ccd": bytes(7)}), PLAIN)
