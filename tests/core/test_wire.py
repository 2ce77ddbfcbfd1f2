"""The wire codec: golden bytes, authentication, every cap, and the decoder's invariant.

Datagrams for hostile cases are built here with msgpack and hmac directly, not with the
encoder, so the tests also cross-check the framing the encoder produces.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from dataclasses import replace
from pathlib import Path

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pcc.core import limits
from p2pcc.core.auth import Keyring, format_key_line, parse_key_file
from p2pcc.core.errors import (
    AuthenticationError,
    BadMagicError,
    OversizedError,
    P2pccError,
    TruncatedError,
    UnknownKindError,
    UnsupportedVersionError,
    WireFormatError,
)
from p2pcc.core.model import (
    CompilerOffer,
    EntryKind,
    Message,
    MessageKind,
    NewsEntry,
    NodeState,
    NodeStatus,
)
from p2pcc.core.wire import (
    HEADER_BYTES,
    InvalidMessageError,
    MessageTooLargeError,
    decode,
    encode,
)
from tests.core.golden_vectors import (
    TEST_KEY,
    TEST_KEY_LINE,
    VECTORS,
    GoldenVector,
    annotated_dump,
)

DOC = Path(__file__).parents[2] / "docs" / "wire-format.md"
PLAIN = Keyring()
KEYED = Keyring([TEST_KEY])
OLD_KEY = b"o" * 32
NEW_KEY = b"n" * 32

STATE_MESSAGE = VECTORS[0].message
LEAVE_MESSAGE = Message(b"\x01" * 16, 1, 2, 3.0, MessageKind.LEAVE)
assert STATE_MESSAGE.body is not None
STATUS = STATE_MESSAGE.body

Payload = dict[str, object]


# --- helpers ---------------------------------------------------------------------------


def frame_raw(
    payload: bytes, keyring: Keyring = PLAIN, *, major: int = 1, minor: int = 0, reserved: int = 0
) -> bytes:
    """A datagram around raw payload bytes, signed with the keyring's first key if any."""
    header = b"P2CC" + bytes([major, minor, 1 if keyring else 0, reserved])
    signed = header + payload
    if keyring:
        signed += hmac.new(keyring.keys[0], signed, hashlib.sha256).digest()[:16]
    return signed


def frame(payload: object, keyring: Keyring = PLAIN, **header: int) -> bytes:
    return frame_raw(msgpack.packb(payload, use_bin_type=True), keyring, **header)


def payload_of(message: Message) -> Payload:
    """The decoded msgpack map our encoder writes for `message`, ready to be tampered with."""
    unpacked: Payload = msgpack.unpackb(encode(message, PLAIN)[HEADER_BYTES:])
    return unpacked


def body_with(**fields: object) -> Payload:
    """The STATE payload with some body fields replaced."""
    payload = payload_of(STATE_MESSAGE)
    body = payload["body"]
    assert isinstance(body, dict)
    body.update(fields)
    return payload


def decodes_or_rejects(data: bytes, keyring: Keyring) -> Message | None:
    """The invariant: a Message (that we could send ourselves) or a WireFormatError."""
    try:
        message = decode(data, keyring)
    except WireFormatError:
        return None
    assert isinstance(message, Message)
    assert decode(encode(message, keyring), keyring) == message
    return message


# --- golden vectors --------------------------------------------------------------------


def doc_vectors() -> dict[str, bytes]:
    """The bytes of every golden dump in the doc, with offsets checked as they are read."""
    found: dict[str, bytes] = {}
    blocks = re.findall(r"<!-- golden:([\w-]+) -->\n```text\n(.*?)```", DOC.read_text(), re.S)
    for name, block in blocks:
        data = bytearray()
        for line in block.splitlines():
            match = re.fullmatch(r"([0-9a-f]{4}):((?: [0-9a-f]{2})+)\s*(?:\|.*)?", line)
            assert match, f"{name}: unparsable dump line {line!r}"
            assert int(match[1], 16) == len(data), f"{name}: wrong offset on {line!r}"
            data += bytes.fromhex(match[2])
        found[name] = bytes(data)
    return found


def test_the_doc_shows_exactly_the_golden_bytes() -> None:
    assert doc_vectors() == {vector.name: vector.datagram for vector in VECTORS}


def test_the_doc_dumps_are_the_annotators_output() -> None:
    text = DOC.read_text()
    for vector in VECTORS:
        assert f"```text\n{annotated_dump(vector.datagram)}\n```" in text, vector.name


def test_the_doc_shows_the_test_key() -> None:
    assert format_key_line(TEST_KEY) == TEST_KEY_LINE
    assert parse_key_file(TEST_KEY_LINE, "doc") == KEYED
    assert f"\n{TEST_KEY_LINE}\n" in DOC.read_text()


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v.name)
def test_golden_message_encodes_to_the_pinned_bytes(vector: GoldenVector) -> None:
    assert encode(vector.message, KEYED if vector.keyed else PLAIN) == vector.datagram


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v.name)
def test_golden_bytes_decode_to_the_message(vector: GoldenVector) -> None:
    assert decode(vector.datagram, KEYED if vector.keyed else PLAIN) == vector.message


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v.name)
def test_every_truncation_of_a_golden_vector_is_rejected(vector: GoldenVector) -> None:
    datagram, keyed = vector.datagram, vector.keyed
    for length in range(len(datagram)):
        # Past header + tag a cut keyed datagram is indistinguishable from a forged one.
        expected: type[WireFormatError] = TruncatedError
        if keyed and length >= HEADER_BYTES + limits.MAC_BYTES:
            expected = AuthenticationError
        with pytest.raises(expected):
            decode(datagram[:length], KEYED if keyed else PLAIN)


@pytest.mark.parametrize("vector", [v for v in VECTORS if v.keyed], ids=lambda v: v.name)
def test_every_bit_flip_of_a_keyed_golden_vector_is_rejected(vector: GoldenVector) -> None:
    datagram = vector.datagram
    for bit in range(len(datagram) * 8):
        flipped = bytearray(datagram)
        flipped[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(WireFormatError):
            decode(bytes(flipped), KEYED)


def test_bit_flips_of_a_plain_golden_vector_keep_the_invariant() -> None:
    datagram = VECTORS[0].datagram
    outcomes = set()
    for bit in range(len(datagram) * 8):
        flipped = bytearray(datagram)
        flipped[bit // 8] ^= 1 << (bit % 8)
        outcomes.add(decodes_or_rejects(bytes(flipped), PLAIN) is None)
    assert outcomes == {True, False}  # some flips still decode (a letter of the name)


# --- authentication --------------------------------------------------------------------


def test_forged_mac_is_rejected() -> None:
    forged = VECTORS[1].datagram[: -limits.MAC_BYTES] + bytes(limits.MAC_BYTES)
    with pytest.raises(AuthenticationError, match="does not match"):
        decode(forged, KEYED)


def test_keyed_node_rejects_a_datagram_without_mac() -> None:
    with pytest.raises(AuthenticationError, match="no MAC"):
        decode(VECTORS[0].datagram, KEYED)


def test_stripping_the_mac_and_clearing_the_auth_byte_is_rejected() -> None:
    keyed = VECTORS[1].datagram
    stripped = keyed[:6] + b"\x00" + keyed[7 : -limits.MAC_BYTES]
    assert stripped == VECTORS[0].datagram
    with pytest.raises(AuthenticationError):
        decode(stripped, KEYED)


def test_mac_made_with_a_key_outside_the_keyring_is_rejected() -> None:
    datagram = encode(STATE_MESSAGE, Keyring([OLD_KEY]))
    with pytest.raises(AuthenticationError):
        decode(datagram, KEYED)


def test_unkeyed_node_rejects_a_keyed_peer_visibly() -> None:
    with pytest.raises(AuthenticationError, match="keyed peer is talking to this unkeyed node"):
        decode(VECTORS[1].datagram, PLAIN)


def test_rotation_accepts_the_old_key_while_it_is_in_the_keyring() -> None:
    signed_with_old = encode(STATE_MESSAGE, Keyring([OLD_KEY]))
    assert decode(signed_with_old, Keyring([NEW_KEY, OLD_KEY])) == STATE_MESSAGE
    with pytest.raises(AuthenticationError):
        decode(signed_with_old, Keyring([NEW_KEY]))


def test_rotation_signs_with_the_first_key() -> None:
    signed = encode(STATE_MESSAGE, Keyring([NEW_KEY, OLD_KEY]))
    assert decode(signed, Keyring([NEW_KEY])) == STATE_MESSAGE
    with pytest.raises(AuthenticationError):
        decode(signed, Keyring([OLD_KEY]))


def test_unknown_authentication_scheme_is_rejected() -> None:
    datagram = bytearray(VECTORS[1].datagram)
    datagram[6] = 2
    with pytest.raises(AuthenticationError, match="scheme 2"):
        decode(bytes(datagram), KEYED)


def test_keyed_datagram_ending_inside_its_tag_is_truncated() -> None:
    with pytest.raises(TruncatedError):
        decode(b"P2CC\x01\x00\x01\x00" + bytes(limits.MAC_BYTES - 1), KEYED)


# --- header and compatibility ----------------------------------------------------------


@pytest.mark.parametrize("major", [0, 2, 255])
def test_other_major_versions_are_rejected_before_parsing(major: int) -> None:
    with pytest.raises(UnsupportedVersionError):
        decode(b"P2CC" + bytes([major, 0, 0, 0]) + b"\xc1 not msgpack", PLAIN)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", TruncatedError),
        (b"P2", TruncatedError),
        (b"P2CC\x01\x00\x00", TruncatedError),
        (b"P2CC\x01\x00\x00\x00", TruncatedError),
        (b"P3", BadMagicError),
        (b"GET / HTTP/1.1\r\n\r\n", BadMagicError),
        (b"p2cc\x01\x00\x00\x00\x80", BadMagicError),
    ],
)
def test_header_errors(data: bytes, error: type[WireFormatError]) -> None:
    with pytest.raises(error):
        decode(data, PLAIN)


def test_reserved_byte_is_ignored() -> None:
    assert decode(frame(payload_of(STATE_MESSAGE), reserved=0xFF), PLAIN) == STATE_MESSAGE


def test_newer_minor_version_with_unknown_fields_decodes() -> None:
    payload = payload_of(STATE_MESSAGE)
    payload["trace"] = {"hops": [1, 2, 3], "ext": msgpack.ExtType(42, b"future")}
    body = payload["body"]
    assert isinstance(body, dict)
    body["gpu"] = "none"
    body["cc"] = [[*offer, {"lto": True}] for offer in body["cc"]]
    for keyring in (PLAIN, KEYED):
        assert decode(frame(payload, keyring, minor=9), keyring) == STATE_MESSAGE


def test_a_leave_body_is_ignored() -> None:
    payload = payload_of(LEAVE_MESSAGE)
    payload["body"] = {"why": "shutdown"}
    assert decode(frame(payload), PLAIN) == LEAVE_MESSAGE


@pytest.mark.parametrize("kind", [0, 8, 200, limits.MAX_COUNTER])
def test_unknown_kind_is_its_own_error(kind: int) -> None:
    payload = payload_of(LEAVE_MESSAGE)
    payload["kind"] = kind
    with pytest.raises(UnknownKindError):
        decode(frame(payload), PLAIN)


def test_explicit_nil_pause_until_and_integer_floats_are_accepted() -> None:
    payload = body_with(until=None, load=2, power=1)
    payload["ts"] = 1_767_225_600
    message = decode(frame(payload), PLAIN)
    assert message == replace(
        STATE_MESSAGE, sent_at=1_767_225_600.0, body=replace(STATUS, load=2.0, power=1.0)
    )
    assert message.body is not None
    assert isinstance(message.body.load, float)


def test_float32_is_accepted() -> None:
    payload = payload_of(STATE_MESSAGE)
    raw = msgpack.packb(payload, use_bin_type=True, use_single_float=True)
    message = decode(frame_raw(raw), PLAIN)
    assert message.body is not None
    assert message.body.power == 1.25


def test_optional_fields_may_be_absent() -> None:
    payload = payload_of(STATE_MESSAGE)
    body = payload["body"]
    assert isinstance(body, dict)
    del body["cc"]
    assert decode(frame(payload), PLAIN) == replace(
        STATE_MESSAGE, body=replace(STATUS, compilers=())
    )


# --- hostile structure -----------------------------------------------------------------


def test_oversized_datagram_is_rejected_before_parsing() -> None:
    garbage = b"P2CC\x01\x00\x00\x00" + b"\xc1" * (limits.MAX_DATAGRAM - HEADER_BYTES + 1)
    with pytest.raises(OversizedError):
        decode(garbage, PLAIN)
    with pytest.raises(OversizedError):
        decode(b"x" * 100_000, KEYED)


def test_a_datagram_of_exactly_max_size_decodes() -> None:
    payload = payload_of(STATE_MESSAGE)
    payload["pad"] = bytes(300)  # an unknown field, already past bin8's 255-byte range
    size = 300 + limits.MAX_DATAGRAM - len(frame(payload))
    payload["pad"] = bytes(size)
    assert len(frame(payload)) == limits.MAX_DATAGRAM
    assert decode(frame(payload), PLAIN) == STATE_MESSAGE
    payload["pad"] = bytes(size + 1)
    with pytest.raises(OversizedError):
        decode(frame(payload), PLAIN)


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"\x91" * 1390 + b"\x00", id="deep-arrays"),
        pytest.param(b"\x81\xa1a" * 460 + b"\x00", id="deep-maps"),
        pytest.param(b"\xdd\xff\xff\xff\xff", id="array32-4G"),
        pytest.param(b"\xdf\xff\xff\xff\xff", id="map32-4G"),
        pytest.param(b"\xdb\xff\xff\xff\xff", id="str32-4G"),
        pytest.param(b"\xc6\xff\xff\xff\xff", id="bin32-4G"),
        pytest.param(b"\xc9\xff\xff\xff\xff\x01", id="ext32-4G"),
        pytest.param(b"\x81\xa2id\xdd\x7f\xff\xff\xff", id="nested-array-2G"),
        pytest.param(b"\x81\xa1a\xa2\xff\xfe", id="bad-utf8"),
        pytest.param(b"\x81\x01\x02", id="int-map-key"),
        pytest.param(b"\x81\x91\x01\x02", id="array-map-key"),
        pytest.param(b"\x81\xa1a\xd6\xff\x00", id="truncated-timestamp"),
        pytest.param(b"\x81\xa1a\xc7\x03\xff\x00\x00\x00", id="bad-timestamp"),
        pytest.param(b"\xc1", id="reserved-byte"),
        pytest.param(b"\x92\x01\x02", id="array-not-map"),
        pytest.param(b"\xa5hello", id="string-not-map"),
        pytest.param(b"\xc0", id="nil-not-map"),
    ],
)
def test_hostile_payloads_are_rejected(payload: bytes) -> None:
    for keyring in (PLAIN, KEYED):
        with pytest.raises(WireFormatError):
            decode(frame_raw(payload, keyring), keyring)


def test_trailing_bytes_after_a_valid_payload_are_rejected() -> None:
    packed = msgpack.packb(payload_of(STATE_MESSAGE), use_bin_type=True)
    assert decode(frame_raw(packed), PLAIN) == STATE_MESSAGE
    with pytest.raises(WireFormatError, match="trailing"):
        decode(frame_raw(packed + b"\x00"), PLAIN)


def test_deep_nesting_in_an_unknown_field_is_harmless() -> None:
    payload = payload_of(LEAVE_MESSAGE)
    packed = msgpack.packb(payload, use_bin_type=True)
    # Re-open the top map with one more entry whose value nests as deep as the space allows.
    depth = limits.MAX_DATAGRAM - HEADER_BYTES - len(packed) - 6
    nested = bytes([packed[0] + 1]) + packed[1:] + b"\xa3zzz" + b"\x91" * depth + b"\xc0"
    assert decodes_or_rejects(frame_raw(nested), PLAIN) in (LEAVE_MESSAGE, None)


# --- type confusion and bad values -----------------------------------------------------

ENVELOPE_CASES: list[tuple[str, object]] = [
    ("id", "00112233445566778899aabbccddeeff"),
    ("id", b"short"),
    ("id", None),
    ("inc", "3"),
    ("inc", True),
    ("inc", 3.0),
    ("inc", -1),
    ("seq", -(2**63)),
    ("seq", [1]),
    ("ts", math.nan),
    ("ts", math.inf),
    ("ts", -math.inf),
    ("ts", -1.0),
    ("ts", "now"),
    ("ts", False),
    ("kind", "1"),
    ("kind", True),
    ("kind", -1),
    ("kind", 1.0),
    ("body", None),
    ("body", [1, 2]),
    ("body", "state"),
]

OFFER = [bytes(8), "x86_64-linux-gnu--12", "gcc-12"]
BODY_CASES: list[tuple[str, object]] = [
    ("name", 5),
    ("name", ""),
    ("name", b"ws-alice"),
    ("name", "ws\x1b[31m"),
    ("name", "ws\nalice"),
    ("addr", "192.0.2.1"),
    ("addr", ["not-an-ip"]),
    ("addr", ["192.0.2.1 "]),
    ("addr", ["192.0.2.1%eth0"]),
    ("addr", ["fe80::1%eth 0"]),
    ("addr", ["fe80::1%"]),
    ("addr", ["192.0.2.1/24"]),
    ("addr", [3232235777]),
    ("port", 0),
    ("port", True),
    ("port", "3632"),
    ("cpus", 2.0),
    ("cpus", -1),
    ("load", math.nan),
    ("load", -0.5),
    ("load", -math.inf),
    ("load", "high"),
    ("mem", -1),
    ("mem", 1.5),
    ("slots", None),
    ("jobs", -1),
    ("power", "fast"),
    ("power", math.inf),
    ("state", "sleeping"),
    ("state", "ACTIVE"),
    ("state", 1),
    ("reason", b"bytes"),
    ("reason", "lunch\x07"),
    ("until", math.inf),
    ("until", "later"),
    ("until", -5.0),
    ("cc", {}),
    ("cc", [OFFER[:2]]),
    ("cc", ["gcc"]),
    ("cc", [[bytes(7), *OFFER[1:]]]),
    ("cc", [["0123456789abcdef", *OFFER[1:]]]),
    ("cc", [[bytes(8), "-fplugin=evil.so", "gcc"]]),
    ("cc", [[bytes(8), "x86_64", "gcc -B/tmp"]]),
    ("cc", [[bytes(8), "x86_64", ""]]),
    ("cc", [[bytes(8), "x86_64", "gcc,lzo"]]),
    ("cc", [[bytes(8), 12, "gcc"]]),
]


@pytest.mark.parametrize(("key", "value"), ENVELOPE_CASES)
def test_bad_envelope_values_are_rejected(key: str, value: object) -> None:
    payload = payload_of(STATE_MESSAGE)
    payload[key] = value
    with pytest.raises(WireFormatError):
        decode(frame(payload), PLAIN)


@pytest.mark.parametrize(("key", "value"), BODY_CASES)
def test_bad_body_values_are_rejected(key: str, value: object) -> None:
    with pytest.raises(WireFormatError):
        decode(frame(body_with(**{key: value})), PLAIN)


@pytest.mark.parametrize("key", ["id", "inc", "seq", "ts", "kind", "body"])
def test_missing_envelope_fields_are_rejected(key: str) -> None:
    payload = payload_of(STATE_MESSAGE)
    del payload[key]
    with pytest.raises(WireFormatError, match=f"{key}: missing"):
        decode(frame(payload), PLAIN)


@pytest.mark.parametrize(
    "key", ["name", "addr", "port", "cpus", "load", "mem", "slots", "jobs", "power", "state"]
)
def test_missing_body_fields_are_rejected(key: str) -> None:
    payload = payload_of(STATE_MESSAGE)
    body = payload["body"]
    assert isinstance(body, dict)
    del body[key]
    with pytest.raises(WireFormatError, match=f"body.{key}: missing"):
        decode(frame(payload), PLAIN)


# --- caps ------------------------------------------------------------------------------

BIG_V6 = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"  # INET6_ADDRSTRLEN - 1 characters


def offer(loose: str = "x86_64-linux-gnu--12", remote: str = "gcc-12") -> list[object]:
    return [bytes(8), loose, remote]


def after(value: float) -> float:
    return math.nextafter(value, math.inf)


# (body key or envelope key, value at the cap, value one past the cap)
CAP_CASES: list[tuple[str, object, object]] = [
    ("name", "é" * 32, "é" * 32 + "a"),
    ("addr", ["192.0.2.1"] * limits.MAX_ADDRESSES, ["192.0.2.1"] * (limits.MAX_ADDRESSES + 1)),
    ("addr", [BIG_V6], [BIG_V6 + "0"]),
    ("addr", ["fe80::1%" + "e" * 37], ["fe80::1%" + "e" * 38]),
    ("port", limits.MAX_PORT, limits.MAX_PORT + 1),
    ("cpus", limits.MAX_CPUS, limits.MAX_CPUS + 1),
    ("load", limits.MAX_LOAD, after(limits.MAX_LOAD)),
    ("mem", limits.MAX_MEMORY, limits.MAX_MEMORY + 1),
    ("slots", limits.MAX_SLOTS, limits.MAX_SLOTS + 1),
    ("jobs", limits.MAX_JOBS, limits.MAX_JOBS + 1),
    ("power", limits.MAX_POWER, after(limits.MAX_POWER)),
    ("reason", "r" * limits.MAX_PAUSE_REASON, "r" * (limits.MAX_PAUSE_REASON + 1)),
    ("until", limits.MAX_TIMESTAMP, after(limits.MAX_TIMESTAMP)),
    ("cc", [offer()] * limits.MAX_COMPILERS, [offer()] * (limits.MAX_COMPILERS + 1)),
    ("cc", [offer(loose="l" * limits.MAX_LOOSE_KEY)], [offer(loose="l" * 33)]),
    ("cc", [offer(remote="r" * limits.MAX_REMOTE_NAME)], [offer(remote="r" * 33)]),
    ("cc", [[bytes(8), "l", "r"]], [[bytes(9), "l", "r"]]),
    ("id", bytes(limits.NODE_ID_BYTES), bytes(limits.NODE_ID_BYTES + 1)),
    ("ts", limits.MAX_TIMESTAMP, after(limits.MAX_TIMESTAMP)),
]


def with_field(key: str, value: object) -> Payload:
    if key in ("id", "ts", "inc", "seq"):
        payload = payload_of(STATE_MESSAGE)
        payload[key] = value
        return payload
    return body_with(**{key: value})


@pytest.mark.parametrize(("key", "at_cap", "past_cap"), CAP_CASES)
def test_a_field_at_its_cap_decodes_and_one_past_is_oversized(
    key: str, at_cap: object, past_cap: object
) -> None:
    assert decodes_or_rejects(frame(with_field(key, at_cap)), PLAIN) is not None
    with pytest.raises(OversizedError):
        decode(frame(with_field(key, past_cap)), PLAIN)


@pytest.mark.parametrize("key", ["inc", "seq"])
def test_counters_reach_the_top_of_uint64(key: str) -> None:
    message = decode(frame(with_field(key, limits.MAX_COUNTER)), PLAIN)
    assert limits.MAX_COUNTER in (message.incarnation, message.sequence)
    # One past does not exist in msgpack; the encoder refuses it instead.
    with pytest.raises(InvalidMessageError):
        encode(
            replace(STATE_MESSAGE, **{"incarnation" if key == "inc" else "sequence": 2**64}), PLAIN
        )


def message_at_every_cap() -> Message:
    status = NodeStatus(
        name="é" * (limits.MAX_NODE_NAME // 2),
        addresses=(BIG_V6,) * limits.MAX_ADDRESSES,
        distccd_port=limits.MAX_PORT,
        cpus=limits.MAX_CPUS,
        load=limits.MAX_LOAD,
        mem_available=limits.MAX_MEMORY,
        slots=limits.MAX_SLOTS,
        jobs=limits.MAX_JOBS,
        power=limits.MAX_POWER,
        state=NodeState.LEAVING,
        pause_reason="r" * limits.MAX_PAUSE_REASON,
        pause_until=limits.MAX_TIMESTAMP,
        compilers=tuple(
            CompilerOffer(f"{i:016x}", "l" * limits.MAX_LOOSE_KEY, "r" * limits.MAX_REMOTE_NAME)
            for i in range(limits.MAX_COMPILERS)
        ),
    )
    top = limits.MAX_COUNTER
    return Message(b"\xff" * 16, top, top, limits.MAX_TIMESTAMP, MessageKind.STATE, status)


def test_message_at_every_cap_fits() -> None:
    message = message_at_every_cap()
    datagram = encode(message, KEYED)
    assert len(datagram) == 1332  # the budget table in docs/wire-format.md
    assert len(datagram) <= limits.MAX_DATAGRAM
    assert decode(datagram, KEYED) == message


# --- the encoder -----------------------------------------------------------------------


def status_with(**fields: object) -> Message:
    return replace(STATE_MESSAGE, body=replace(STATUS, **fields))


@pytest.mark.parametrize(
    "message",
    [
        pytest.param(status_with(name="n" * 65), id="long-name"),
        pytest.param(status_with(load=math.nan), id="nan-load"),
        pytest.param(status_with(cpus=-1), id="negative-cpus"),
        pytest.param(status_with(addresses=("localhost",)), id="hostname-address"),
        pytest.param(status_with(addresses=["192.0.2.1"]), id="address-list-not-tuple"),
        pytest.param(status_with(name="a\ud800"), id="lone-surrogate"),
        pytest.param(
            status_with(compilers=(CompilerOffer("0123456789ABCDEF", "l", "r"),)), id="uppercase-fp"
        ),
        pytest.param(status_with(compilers=(CompilerOffer("xyz", "l", "r"),)), id="short-fp"),
        pytest.param(replace(STATE_MESSAGE, body=None), id="state-without-body"),
        pytest.param(replace(LEAVE_MESSAGE, body=STATUS), id="leave-with-body"),
        pytest.param(replace(LEAVE_MESSAGE, node_id=b"short"), id="short-node-id"),
        pytest.param(replace(LEAVE_MESSAGE, incarnation=-1), id="negative-incarnation"),
        pytest.param(replace(LEAVE_MESSAGE, sent_at=math.inf), id="infinite-time"),
    ],
)
def test_the_encoder_refuses_what_peers_would_reject(message: Message) -> None:
    with pytest.raises(InvalidMessageError) as raised:
        encode(message, PLAIN)
    # Sending is our own fault, not the network's: never confuse it with a wire error.
    assert isinstance(raised.value, P2pccError)
    assert not isinstance(raised.value, WireFormatError)


def test_the_encoder_refuses_a_datagram_over_the_size_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    # No valid message exceeds 1400 bytes today (see the budget), so the cap is lowered to
    # show the guard that protects a future cap change.
    monkeypatch.setattr(limits, "MAX_DATAGRAM", 200)
    with pytest.raises(MessageTooLargeError, match="more than 200"):
        encode(STATE_MESSAGE, PLAIN)


# --- properties ------------------------------------------------------------------------


def fit(text: str, cap: int) -> str:
    while len(text.encode()) > cap:
        text = text[:-1]
    return text


def texts(cap: int, min_size: int = 0) -> st.SearchStrategy[str]:
    alphabet = st.characters(exclude_categories=("Cc", "Cs"))
    return st.text(alphabet, min_size=min_size, max_size=cap).map(lambda t: fit(t, cap))


def tokens(cap: int) -> st.SearchStrategy[str]:
    return st.from_regex(rf"[A-Za-z0-9][A-Za-z0-9._+-]{{0,{cap - 1}}}", fullmatch=True)


def reals(high: float) -> st.SearchStrategy[float]:
    return st.floats(0.0, high, allow_nan=False)


offers = st.builds(
    CompilerOffer,
    fingerprint=st.binary(min_size=8, max_size=8).map(bytes.hex),
    loose_key=tokens(limits.MAX_LOOSE_KEY),
    remote_name=tokens(limits.MAX_REMOTE_NAME),
)

statuses = st.builds(
    NodeStatus,
    name=texts(limits.MAX_NODE_NAME, min_size=1),
    addresses=st.lists(st.ip_addresses().map(str), max_size=limits.MAX_ADDRESSES).map(tuple),
    distccd_port=st.integers(1, limits.MAX_PORT),
    cpus=st.integers(0, limits.MAX_CPUS),
    load=reals(limits.MAX_LOAD),
    mem_available=st.integers(0, limits.MAX_MEMORY),
    slots=st.integers(0, limits.MAX_SLOTS),
    jobs=st.integers(0, limits.MAX_JOBS),
    power=reals(limits.MAX_POWER),
    state=st.sampled_from(NodeState),
    pause_reason=texts(limits.MAX_PAUSE_REASON),
    pause_until=st.none() | reals(limits.MAX_TIMESTAMP),
    compilers=st.lists(offers, max_size=limits.MAX_COMPILERS).map(tuple),
)


@st.composite
def news_entries(draw: st.DrawFn) -> NewsEntry:
    kind = draw(st.sampled_from(EntryKind))
    return NewsEntry(
        kind=kind,
        node_id=draw(st.binary(min_size=16, max_size=16)),
        incarnation=draw(st.integers(0, limits.MAX_COUNTER)),
        sequence=draw(st.integers(0, limits.MAX_COUNTER)),
        minor=draw(st.integers(0, 255)),
        body=draw(statuses) if kind == EntryKind.STATE else None,
    )


NONCE_KINDS = {MessageKind.PROBE, MessageKind.ACK, MessageKind.SYNC, MessageKind.COOKIE}


@st.composite
def messages(draw: st.DrawFn) -> Message:
    kind = draw(st.sampled_from(MessageKind))
    cookie_kind = kind in {MessageKind.SYNC, MessageKind.COOKIE}
    nonce = draw(st.none() | st.integers(0, 9)) if kind is MessageKind.NEWS else None
    return Message(
        node_id=draw(st.binary(min_size=16, max_size=16)),
        incarnation=draw(st.integers(0, limits.MAX_COUNTER)),
        sequence=draw(st.integers(0, limits.MAX_COUNTER)),
        sent_at=draw(reals(limits.MAX_TIMESTAMP)),
        kind=kind,
        body=draw(statuses) if kind == MessageKind.STATE else None,
        news=tuple(draw(st.lists(news_entries(), max_size=2))),
        nonce=draw(st.integers(0, limits.MAX_COUNTER)) if kind in NONCE_KINDS else nonce,
        cookie=draw(st.binary(min_size=16, max_size=16)) if cookie_kind else b"",
    )


keyrings = st.sampled_from([PLAIN, KEYED, Keyring([NEW_KEY, OLD_KEY])])

msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=40)
    | st.binary(max_size=40),
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=8), children, max_size=6)
    ),
    max_leaves=30,
)


@given(messages(), keyrings)
def test_any_valid_message_round_trips(message: Message, keyring: Keyring) -> None:
    datagram = encode(message, keyring)
    assert len(datagram) <= limits.MAX_DATAGRAM
    assert decode(datagram, keyring) == message


@given(st.binary(max_size=limits.MAX_DATAGRAM + 16), keyrings)
def test_random_bytes_decode_or_raise_a_wire_error(data: bytes, keyring: Keyring) -> None:
    decodes_or_rejects(data, keyring)


@given(st.binary(max_size=limits.MAX_DATAGRAM - HEADER_BYTES), keyrings, st.integers(0, 255))
def test_random_payload_behind_a_valid_header_decodes_or_raises(
    payload: bytes, keyring: Keyring, minor: int
) -> None:
    decodes_or_rejects(frame_raw(payload, keyring, minor=minor), keyring)


@given(msgpack_values, keyrings)
def test_random_msgpack_behind_a_valid_header_decodes_or_raises(
    value: object, keyring: Keyring
) -> None:
    decodes_or_rejects(frame(value, keyring), keyring)


@given(messages(), st.data())
def test_a_valid_payload_with_one_field_replaced_decodes_or_raises(
    message: Message, data: st.DataObject
) -> None:
    payload = payload_of(message)
    target = payload
    body = payload.get("body")
    if isinstance(body, dict) and data.draw(st.booleans()):
        target = body
        offers_list = body["cc"]
        if offers_list and data.draw(st.booleans()):
            entry = data.draw(st.sampled_from(offers_list))
            entry[data.draw(st.integers(0, len(entry) - 1))] = data.draw(msgpack_values)
            decodes_or_rejects(frame(payload), PLAIN)
            return
    key = data.draw(st.sampled_from(sorted(target)) | st.text(max_size=6))
    target[key] = data.draw(msgpack_values)
    decodes_or_rejects(frame(payload), PLAIN)
