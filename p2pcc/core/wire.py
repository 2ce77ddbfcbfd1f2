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

import ipaddress
import math
import re
import unicodedata
from collections.abc import Callable
from typing import TypeVar

import msgpack

from p2pcc.core import limits
from p2pcc.core.auth import Keyring
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
from p2pcc.core.model import CompilerOffer, Message, MessageKind, NodeState, NodeStatus

MAGIC = b"P2CC"
MAJOR_VERSION = 1
MINOR_VERSION = 0
AUTH_NONE = 0
AUTH_HMAC_SHA256_128 = 1
HEADER_BYTES = 8

#: Loose keys and remote compiler names end up on distcc's command line and in
#: DISTCC_HOSTS: a conservative alphabet, and no leading "-" that could read as an option.
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
_SCOPE_ID = re.compile(r"[A-Za-z0-9_.-]+")
_FINGERPRINT = re.compile(r"[0-9a-f]{16}")

_T = TypeVar("_T")


class InvalidMessageError(P2pccError):
    """A message we were asked to send breaks the wire rules (a bug or a bad local value)."""


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
        echoed = decode(datagram, keyring)
    except WireFormatError as error:
        raise InvalidMessageError(f"refusing to send what peers would reject: {error}") from error
    if echoed != message:
        raise InvalidMessageError(
            "message does not survive encoding unchanged (a list instead of a tuple?)"
        )
    return datagram


def _pack(payload: dict[str, object]) -> bytes:
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
        payload["body"] = _status_payload(message.body)
    elif message.body is not None:
        raise InvalidMessageError(f"a {message.kind!r} message carries no body")
    return payload


def _status_payload(status: NodeStatus) -> dict[str, object]:
    body: dict[str, object] = {
        "name": status.name,
        "addr": list(status.addresses),
        "port": status.distccd_port,
        "cpus": status.cpus,
        "load": status.load,
        "mem": status.mem_available,
        "slots": status.slots,
        "jobs": status.jobs,
        "power": status.power,
        "state": status.state.value,
    }
    # Defaults are left out: the decoder restores them, and every byte counts.
    if status.pause_reason:
        body["reason"] = status.pause_reason
    if status.pause_until is not None:
        body["until"] = status.pause_until
    body["cc"] = [_offer_payload(offer) for offer in status.compilers]
    return body


def _offer_payload(offer: CompilerOffer) -> list[object]:
    if not (isinstance(offer.fingerprint, str) and _FINGERPRINT.fullmatch(offer.fingerprint)):
        raise InvalidMessageError("a fingerprint id must be 16 lowercase hex characters")
    return [bytes.fromhex(offer.fingerprint), offer.loose_key, offer.remote_name]


# --- decoding: frame -------------------------------------------------------------------


def decode(data: bytes | bytearray | memoryview, keyring: Keyring) -> Message:
    """The message in datagram `data`, or a WireFormatError saying why there is none."""
    payload = _open_frame(bytes(data), keyring)
    return _message_from_payload(_unpack(payload))


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


def _message_from_payload(payload: object) -> Message:
    envelope = _as_map(payload, "payload")
    node_id = _binary(_required(envelope, "id"), "id", limits.NODE_ID_BYTES)
    incarnation = _integer(_required(envelope, "inc"), "inc", 0, limits.MAX_COUNTER)
    sequence = _integer(_required(envelope, "seq"), "seq", 0, limits.MAX_COUNTER)
    sent_at = _real(_required(envelope, "ts"), "ts", 0.0, limits.MAX_TIMESTAMP)
    kind_number = _integer(_required(envelope, "kind"), "kind", 0, limits.MAX_COUNTER)
    try:
        kind = MessageKind(kind_number)
    except ValueError:
        raise UnknownKindError(f"message kind {kind_number} is unknown to this build") from None
    # A LEAVE body is ignored: a newer minor version may give it one.
    body = _status(_required(envelope, "body")) if kind == MessageKind.STATE else None
    return Message(node_id, incarnation, sequence, sent_at, kind, body)


def _status(value: object) -> NodeStatus:
    body = _as_map(value, "body")

    def field(key: str, check: Callable[[object, str], _T]) -> _T:
        return check(_required(body, key, "body."), f"body.{key}")

    until = body.get("until")
    pause_until = None if until is None else _real(until, "body.until", 0.0, limits.MAX_TIMESTAMP)
    return NodeStatus(
        name=field("name", _node_name),
        addresses=field("addr", _addresses),
        distccd_port=field("port", lambda v, w: _integer(v, w, 1, limits.MAX_PORT)),
        cpus=field("cpus", lambda v, w: _integer(v, w, 0, limits.MAX_CPUS)),
        load=field("load", lambda v, w: _real(v, w, 0.0, limits.MAX_LOAD)),
        mem_available=field("mem", lambda v, w: _integer(v, w, 0, limits.MAX_MEMORY)),
        slots=field("slots", lambda v, w: _integer(v, w, 0, limits.MAX_SLOTS)),
        jobs=field("jobs", lambda v, w: _integer(v, w, 0, limits.MAX_JOBS)),
        power=field("power", lambda v, w: _real(v, w, 0.0, limits.MAX_POWER)),
        state=field("state", _node_state),
        pause_reason=_text(body.get("reason", ""), "body.reason", limits.MAX_PAUSE_REASON),
        pause_until=pause_until,
        compilers=_offers(body.get("cc", []), "body.cc"),
    )


def _node_name(value: object, where: str) -> str:
    name = _text(value, where, limits.MAX_NODE_NAME)
    if not name:
        raise WireFormatError(f"{where}: empty")
    return name


def _node_state(value: object, where: str) -> NodeState:
    token = _text(value, where, limits.MAX_NODE_NAME)
    try:
        return NodeState(token)
    except ValueError:
        raise WireFormatError(f"{where}: unknown node state") from None


def _addresses(value: object, where: str) -> tuple[str, ...]:
    items = _array(value, where, limits.MAX_ADDRESSES)
    return tuple(_address(item, f"{where}[{i}]") for i, item in enumerate(items))


def _address(value: object, where: str) -> str:
    text = _text(value, where, limits.MAX_ADDRESS_LEN)
    host, percent, scope = text.partition("%")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise WireFormatError(f"{where}: not an IP address") from None
    if percent and not (address.version == 6 and _SCOPE_ID.fullmatch(scope)):
        raise WireFormatError(f"{where}: bad IPv6 scope id")
    return text


def _offers(value: object, where: str) -> tuple[CompilerOffer, ...]:
    items = _array(value, where, limits.MAX_COMPILERS)
    return tuple(_offer(item, f"{where}[{i}]") for i, item in enumerate(items))


def _offer(value: object, where: str) -> CompilerOffer:
    # Elements past the third are ignored: a newer minor version may append some.
    items = _array(value, where, limits.MAX_DATAGRAM)
    if len(items) < 3:
        raise WireFormatError(f"{where}: a compiler offer has 3 elements, got {len(items)}")
    fingerprint = _binary(items[0], f"{where}.fingerprint", limits.FINGERPRINT_BYTES)
    loose_key = _token(items[1], f"{where}.loose", limits.MAX_LOOSE_KEY)
    remote_name = _token(items[2], f"{where}.remote", limits.MAX_REMOTE_NAME)
    return CompilerOffer(fingerprint.hex(), loose_key, remote_name)


def _token(value: object, where: str, cap: int) -> str:
    text = _text(value, where, cap)
    if not _TOKEN.fullmatch(text):
        raise WireFormatError(f"{where}: must be letters, digits and ._+- not starting with one")
    return text


# --- decoding: typed values ------------------------------------------------------------


def _type_name(value: object) -> str:
    return type(value).__name__


def _as_map(value: object, where: str) -> dict[object, object]:
    if not isinstance(value, dict):
        raise WireFormatError(f"{where}: expected a map, got {_type_name(value)}")
    return value


def _required(fields: dict[object, object], key: str, prefix: str = "") -> object:
    if key not in fields:
        raise WireFormatError(f"{prefix}{key}: missing")
    return fields[key]


def _array(value: object, where: str, cap: int) -> list[object]:
    if not isinstance(value, list):
        raise WireFormatError(f"{where}: expected an array, got {_type_name(value)}")
    if len(value) > cap:
        raise OversizedError(f"{where}: {len(value)} elements, at most {cap}")
    return value


def _integer(value: object, where: str, low: int, high: int) -> int:
    # bool is a subclass of int in Python, but `true` is not a number on the wire.
    if not isinstance(value, int) or isinstance(value, bool):
        raise WireFormatError(f"{where}: expected an integer, got {_type_name(value)}")
    _check_range(value, where, low, high)
    return value


def _real(value: object, where: str, low: float, high: float) -> float:
    """A finite number in [low, high]; integers are accepted for other encoders' sake."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise WireFormatError(f"{where}: expected a number, got {_type_name(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise WireFormatError(f"{where}: not a finite number")
    _check_range(number, where, low, high)
    return number


def _check_range(number: float, where: str, low: float, high: float) -> None:
    """Above the cap is oversized (a bound of ours); below the floor is malformed."""
    if number > high:
        raise OversizedError(f"{where}: {number} is more than {high}")
    if number < low:
        raise WireFormatError(f"{where}: {number} is less than {low}")


def _text(value: object, where: str, cap: int) -> str:
    """A string of at most `cap` UTF-8 bytes with no control characters."""
    if not isinstance(value, str):
        raise WireFormatError(f"{where}: expected a string, got {_type_name(value)}")
    size = len(value.encode("utf-8"))
    if size > cap:
        raise OversizedError(f"{where}: {size} bytes, at most {cap}")
    # Control characters could drive the terminal of whoever runs `p2pcc status`.
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise WireFormatError(f"{where}: contains a control character")
    return value


def _binary(value: object, where: str, size: int) -> bytes:
    if not isinstance(value, bytes):
        raise WireFormatError(f"{where}: expected binary, got {_type_name(value)}")
    if len(value) > size:
        raise OversizedError(f"{where}: {len(value)} bytes, expected {size}")
    if len(value) < size:
        raise WireFormatError(f"{where}: {len(value)} bytes, expected {size}")
    return value
