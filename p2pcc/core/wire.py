"""The gossip wire format: one `Message` per UDP datagram, msgpack inside a fixed header.

A datagram is an 8-byte header (magic `P2CC`, major and minor version, auth scheme, a
reserved byte), a msgpack map, then the MAC tag when the pool is keyed; docs/wire-format.md
is the specification.  Decoding is checked in the order that costs least: size, header,
MAC, then msgpack with length caps, then every field's type, range and length against
`limits`.  Its invariant: any bytes give a valid `Message` or raise a `WireFormatError`.
The encoder decodes what it produced before returning it, so we never send what we
would refuse.  Unknown keys are ignored, which is what lets minor versions add fields.
"""

from __future__ import annotations

import msgpack

from p2pcc.core import limits
from p2pcc.core.auth import Keyring
from p2pcc.core.errors import (
    AuthenticationError,
    BadMagicError,
    OversizedError,
    TruncatedError,
    UnknownKindError,
    UnsupportedVersionError,
    WireFormatError,
)
from p2pcc.core.model import EntryKind, Message, MessageKind, NewsEntry, NodeStatus
from p2pcc.core.wire_status import (
    InvalidMessageError,
    body_compilers_digest,
    decode_status,
    status_payload,
)
from p2pcc.core.wire_values import array, as_map, binary, integer, real, required

__all__ = ["InvalidMessageError", "MessageTooLargeError", "decode", "encode", "entry_size"]

MAGIC = b"P2CC"
MAJOR_VERSION = 1
#: 1.1 added news entries, PROBE/ACK/NEWS/SYNC/COOKIE and the status's gossip port;
#: a 1.0 node ignores the new keys and drops the new kinds (docs/wire-format.md).  1.2
#: added the compilers digest (`ccd`), sent only to members that speak 1.2, and `again`.
MINOR_VERSION = 2
AUTH_NONE = 0
AUTH_HMAC_SHA256_128 = 1
HEADER_BYTES = 8

#: Kinds that carry a nonce, NEWS that may (a sync transfer's), and kinds that may carry a
#: cookie.
_NONCE_KINDS = frozenset({MessageKind.PROBE, MessageKind.ACK, MessageKind.SYNC, MessageKind.COOKIE})
_OPTIONAL_NONCE_KINDS = frozenset({MessageKind.NEWS})
_COOKIE_KINDS = frozenset({MessageKind.SYNC, MessageKind.COOKIE})


class MessageTooLargeError(InvalidMessageError):
    """The encoded message would not fit in one `limits.MAX_DATAGRAM` datagram."""


# --- encoding --------------------------------------------------------------------------


def encode(message: Message, keyring: Keyring) -> bytes:
    """The datagram for `message`, signed with the keyring's first key if it has one."""
    header = MAGIC + bytes(
        [MAJOR_VERSION, MINOR_VERSION, AUTH_HMAC_SHA256_128 if keyring else AUTH_NONE, 0]
    )
    signed = header + _pack(_envelope_payload(message))
    datagram = signed + keyring.sign(signed) if keyring else signed
    if len(datagram) > limits.MAX_DATAGRAM:
        raise MessageTooLargeError(
            f"message encodes to {len(datagram)} bytes, more than {limits.MAX_DATAGRAM}"
        )
    try:
        # What a peer decodes, but for the frame (ours, and its MAC just computed).
        echoed = _message_from_payload(_unpack(signed[HEADER_BYTES:]), MINOR_VERSION)
    except WireFormatError as error:
        raise InvalidMessageError(f"refusing to send what peers would reject: {error}") from error
    if echoed != message:
        raise InvalidMessageError(
            "message does not survive encoding unchanged (a list instead of a tuple?)"
        )
    return datagram


def _pack(payload: dict[str, object]) -> bytes:
    return _pack_value(payload)


def _pack_value(payload: object) -> bytes:
    try:
        packed: bytes = msgpack.packb(payload, use_bin_type=True)
    except (ValueError, TypeError, OverflowError) as error:
        raise InvalidMessageError(f"message cannot be encoded: {error}") from error
    return packed


def _envelope_payload(message: Message) -> dict[str, object]:
    payload: dict[str, object] = {
        "id": message.node_id,
        "inc": message.incarnation,
        "seq": message.sequence,
        "ts": message.sent_at,
        "kind": int(message.kind),
    }
    if message.kind == MessageKind.STATE:
        if not isinstance(message.body, NodeStatus):
            raise InvalidMessageError("a STATE message needs a NodeStatus body")
        payload["body"] = status_payload(message.body, message.compilers_digest)
    elif message.body is not None:
        raise InvalidMessageError(f"a {message.kind!r} message carries no body")
    needed = message.kind in _NONCE_KINDS
    allowed = needed or message.kind in _OPTIONAL_NONCE_KINDS
    if (message.nonce is None and needed) or (message.nonce is not None and not allowed):
        raise InvalidMessageError(f"a {message.kind!r} message has a nonce only if it may")
    if message.nonce is not None:
        payload["nonce"] = message.nonce
    if message.cookie:
        payload["cookie"] = message.cookie
    if message.deaf:
        if message.kind is not MessageKind.STATE:
            raise InvalidMessageError("only a STATE says its sender does not hear us")
        payload["deaf"] = 1
    if (message.compilers_digest or message.resend) and message.kind is not MessageKind.STATE:
        raise InvalidMessageError("only a STATE has a compilers digest or asks for a resend")
    if message.resend:
        payload["again"] = 1
    if message.news:
        payload["news"] = [_entry_payload(entry) for entry in message.news]
    return payload


def _entry_payload(entry: NewsEntry) -> list[object]:
    item: list[object] = [
        int(entry.kind),
        entry.node_id,
        entry.incarnation,
        entry.sequence,
        entry.minor,
    ]
    if entry.kind is EntryKind.STATE:
        if not isinstance(entry.body, NodeStatus):
            raise InvalidMessageError("a STATE entry needs a NodeStatus body")
        item.append(status_payload(entry.body))
    elif entry.body is not None:
        raise InvalidMessageError(f"a {entry.kind!r} entry carries no body")
    return item


def entry_size(entry: NewsEntry) -> int:
    """Bytes `entry` adds to a datagram's news (its msgpack encoding)."""
    return len(_pack_value(_entry_payload(entry)))


# --- decoding: frame -------------------------------------------------------------------


def decode(data: bytes | bytearray | memoryview, keyring: Keyring) -> Message:
    """The message in datagram `data`, or a WireFormatError saying why there is none."""
    data = bytes(data)
    payload = _open_frame(data, keyring)
    return _message_from_payload(_unpack(payload), data[5])


def _open_frame(data: bytes, keyring: Keyring) -> bytes:
    """The msgpack payload of an authentic datagram of a version we read."""
    if len(data) > limits.MAX_DATAGRAM:
        raise OversizedError(f"datagram of {len(data)} bytes, more than {limits.MAX_DATAGRAM}")
    if data[: len(MAGIC)] != MAGIC[: len(data)]:
        raise BadMagicError("not a p2pcc datagram (bad magic)")
    if len(data) < HEADER_BYTES:
        raise TruncatedError(f"datagram of {len(data)} bytes is shorter than the header")
    major, auth = data[4], data[6]
    if major != MAJOR_VERSION:
        raise UnsupportedVersionError(
            f"protocol version {major}.{data[5]}, this build reads {MAJOR_VERSION}.x"
        )
    if auth == AUTH_NONE:
        if keyring:
            raise AuthenticationError("datagram has no MAC but this pool is keyed")
        return data[HEADER_BYTES:]
    if auth != AUTH_HMAC_SHA256_128:
        raise AuthenticationError(f"unknown authentication scheme {auth}")
    if not keyring:
        raise AuthenticationError(
            "a keyed peer is talking to this unkeyed node: configure the cluster key here too"
        )
    if len(data) < HEADER_BYTES + limits.MAC_BYTES:
        raise TruncatedError("datagram ends inside its MAC")
    signed, tag = data[: -limits.MAC_BYTES], data[-limits.MAC_BYTES :]
    if not keyring.verify(signed, tag):
        raise AuthenticationError("MAC does not match any key of the keyring")
    return signed[HEADER_BYTES:]


def _unpack(payload: bytes) -> object:
    """One msgpack value filling `payload`, with every length capped before allocation."""
    cap = limits.MAX_DATAGRAM
    unpacker = msgpack.Unpacker(
        raw=False,
        strict_map_key=True,
        max_buffer_size=cap,
        max_str_len=cap,
        max_bin_len=cap,
        max_array_len=cap,
        max_map_len=cap,
        max_ext_len=cap,
    )
    try:
        unpacker.feed(payload)
        value: object = unpacker.unpack()
    except msgpack.OutOfData:
        raise TruncatedError("payload ends inside a msgpack value") from None
    except (ValueError, msgpack.UnpackException, RecursionError) as error:
        # ValueError covers bad UTF-8, over-cap lengths, reserved bytes and deep nesting;
        # msgpack's messages are short and never echo the payload at length.
        detail = str(error)[:80] or type(error).__name__
        raise WireFormatError(f"payload is not valid msgpack: {detail}") from None
    if unpacker.tell() != len(payload):
        raise WireFormatError("payload has trailing bytes after its msgpack value")
    return value


# --- decoding: fields ------------------------------------------------------------------


def _message_from_payload(payload: object, minor: int) -> Message:
    envelope = as_map(payload, "payload")
    node_id = binary(required(envelope, "id"), "id", limits.NODE_ID_BYTES)
    incarnation = integer(required(envelope, "inc"), "inc", 0, limits.MAX_COUNTER)
    sequence = integer(required(envelope, "seq"), "seq", 0, limits.MAX_COUNTER)
    sent_at = real(required(envelope, "ts"), "ts", 0.0, limits.MAX_TIMESTAMP)
    kind_number = integer(required(envelope, "kind"), "kind", 0, limits.MAX_COUNTER)
    try:
        kind = MessageKind(kind_number)
    except ValueError:
        raise UnknownKindError(f"message kind {kind_number} is unknown to this build") from None
    # A LEAVE body is ignored: a newer minor version may give it one.
    body, digest = None, b""
    if kind == MessageKind.STATE:
        body = decode_status(required(envelope, "body"))
        digest = body_compilers_digest(envelope["body"])
    nonce = None
    if kind in _NONCE_KINDS:
        nonce = integer(required(envelope, "nonce"), "nonce", 0, limits.MAX_COUNTER)
    elif kind in _OPTIONAL_NONCE_KINDS and "nonce" in envelope:
        nonce = integer(envelope["nonce"], "nonce", 0, limits.MAX_COUNTER)
    cookie = b""
    if kind in _COOKIE_KINDS and "cookie" in envelope:
        cookie = binary(envelope["cookie"], "cookie", limits.COOKIE_BYTES)
    news = _news(envelope.get("news", []))
    deaf = kind is MessageKind.STATE and integer(envelope.get("deaf", 0), "deaf", 0, 1) == 1
    again = kind is MessageKind.STATE and integer(envelope.get("again", 0), "again", 0, 1) == 1
    return Message(
        node_id, incarnation, sequence, sent_at, kind, body, news, nonce, cookie, deaf,
        digest, again, minor,
    )  # fmt: skip


def _news(value: object) -> tuple[NewsEntry, ...]:
    """The entries of `news`; an entry of a kind this build does not know is skipped."""
    items = array(value, "news", limits.MAX_NEWS)
    entries = (_entry(item, f"news[{i}]") for i, item in enumerate(items))
    return tuple(entry for entry in entries if entry is not None)


def _entry(value: object, where: str) -> NewsEntry | None:
    # Elements past the sixth are ignored: a newer minor version may append some.
    items = array(value, where, limits.MAX_DATAGRAM)
    if len(items) < 5:
        raise WireFormatError(f"{where}: a news entry has at least 5 elements, got {len(items)}")
    kind_number = integer(items[0], f"{where}.kind", 0, limits.MAX_COUNTER)
    if kind_number not in EntryKind._value2member_map_:
        return None
    kind = EntryKind(kind_number)
    node_id = binary(items[1], f"{where}.id", limits.NODE_ID_BYTES)
    incarnation = integer(items[2], f"{where}.inc", 0, limits.MAX_COUNTER)
    sequence = integer(items[3], f"{where}.seq", 0, limits.MAX_COUNTER)
    minor = integer(items[4], f"{where}.minor", 0, 255)
    body = None
    if kind is EntryKind.STATE:
        if len(items) < 6:
            raise WireFormatError(f"{where}: a STATE entry needs a body")
        body = decode_status(items[5])
    return NewsEntry(kind, node_id, incarnation, sequence, minor, body)
