"""The STATE body on the wire: a node's status as a msgpack map, and back.

Every field is checked for type, range and length against `limits`; a status that
decodes is one the rest of the core can use without further checks (addresses still
pass the pool's address rule, p2pcc.core.addresses, before anyone dials them).
Unknown keys are ignored, so minor versions can add fields; defaults are left out.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import re
from collections.abc import Callable
from typing import TypeVar

import msgpack

from p2pcc.core import limits
from p2pcc.core.errors import P2pccError, WireFormatError
from p2pcc.core.model import DEFAULT_GOSSIP_PORT, CompilerOffer, NodeState, NodeStatus
from p2pcc.core.wire_values import array, as_map, binary, integer, real, required, string

#: Loose keys and remote compiler names end up on distcc's command line and in
#: DISTCC_HOSTS: a conservative alphabet, and no leading "-" that could read as an option.
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
_SCOPE_ID = re.compile(r"[A-Za-z0-9_.-]+")
_FINGERPRINT = re.compile(r"[0-9a-f]{16}")

_T = TypeVar("_T")

#: Bytes of a compilers digest: a collision between two offer lists of one node would
#: need 2^32 of them.
COMPILERS_DIGEST_BYTES = 8


class InvalidMessageError(P2pccError):
    """A message we were asked to send breaks the wire rules (a bug or a bad local value)."""


def status_payload(status: NodeStatus, compilers_digest: bytes = b"") -> dict[str, object]:
    """The msgpack map of `status`; with `compilers_digest`, that stands for its
    compilers (1.2: `ccd` instead of `cc`, and `status.compilers` must be empty)."""
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
    if status.gossip_port != DEFAULT_GOSSIP_PORT:
        body["gp"] = status.gossip_port
    if compilers_digest:
        if status.compilers or len(compilers_digest) != COMPILERS_DIGEST_BYTES:
            raise InvalidMessageError("a compilers digest is 8 bytes and replaces the offers")
        body["ccd"] = compilers_digest
    else:
        body["cc"] = [_offer_payload(offer) for offer in status.compilers]
    return body


@functools.lru_cache(maxsize=4096)
def compilers_digest(compilers: tuple[CompilerOffer, ...]) -> bytes:
    """What stands for `compilers` in a short STATE (1.2): the first 8 bytes of the
    BLAKE2b hash of their msgpack encoding, as `cc` carries them.  Cached: a member's
    digest is checked against its known offers on every short STATE it sends."""
    packed = msgpack.packb([_offer_payload(offer) for offer in compilers], use_bin_type=True)
    return hashlib.blake2b(packed, digest_size=COMPILERS_DIGEST_BYTES).digest()


def body_compilers_digest(value: object) -> bytes:
    """The `ccd` of a STATE body map (b"" when it has none); a body with both `ccd`
    and `cc` is malformed."""
    body = as_map(value, "body")
    if "ccd" not in body:
        return b""
    if "cc" in body:
        raise WireFormatError("body has both a compilers digest (ccd) and offers (cc)")
    return binary(body["ccd"], "body.ccd", COMPILERS_DIGEST_BYTES)


def _offer_payload(offer: CompilerOffer) -> list[object]:
    if not (isinstance(offer.fingerprint, str) and _FINGERPRINT.fullmatch(offer.fingerprint)):
        raise InvalidMessageError("a fingerprint id must be 16 lowercase hex characters")
    return [bytes.fromhex(offer.fingerprint), offer.loose_key, offer.remote_name]


# --- decoding ---------------------------------------------------------------------


#: Statuses remembered by their encoding (`decode_status`): enough for our own few
#: (every copy we send is decoded back before it leaves, `wire.encode`) and for the
#: news entries that arrive from several relays; a few hundred kB at most.
STATUS_MEMO = 512


def decode_status(value: object) -> NodeStatus:
    """The status in the msgpack map `value`, every field checked.  Remembered by its
    msgpack encoding: the same status comes round many times (our own, checked before
    each of the thousand copies a large pool gets; a relayed news entry, heard from
    several members), and packing a small map costs a tenth of checking it."""
    if not isinstance(value, dict):
        as_map(value, "body")  # raises
    try:
        packed = msgpack.packb(value, use_bin_type=True)
    except (ValueError, TypeError, OverflowError):
        return _decode_status(value)  # not something the wire gives: say why, fully
    return _decode_packed_status(packed)


@functools.lru_cache(maxsize=STATUS_MEMO)
def _decode_packed_status(packed: bytes) -> NodeStatus:
    # Unpacked again rather than taken from the caller, so the memo's answer depends
    # on the key alone.  An error is raised, not remembered: a bad status costs a full
    # check each time, as before.
    return _decode_status(msgpack.unpackb(packed, raw=False, strict_map_key=False))


def _decode_status(value: object) -> NodeStatus:
    body = as_map(value, "body")

    def field(key: str, check: Callable[[object, str], _T]) -> _T:
        return check(required(body, key, "body."), f"body.{key}")

    until = body.get("until")
    pause_until = None if until is None else real(until, "body.until", 0.0, limits.MAX_TIMESTAMP)
    return NodeStatus(
        name=field("name", _node_name),
        addresses=field("addr", _addresses),
        distccd_port=field("port", lambda v, w: integer(v, w, 1, limits.MAX_PORT)),
        cpus=field("cpus", lambda v, w: integer(v, w, 0, limits.MAX_CPUS)),
        load=field("load", lambda v, w: real(v, w, 0.0, limits.MAX_LOAD)),
        mem_available=field("mem", lambda v, w: integer(v, w, 0, limits.MAX_MEMORY)),
        slots=field("slots", lambda v, w: integer(v, w, 0, limits.MAX_SLOTS)),
        jobs=field("jobs", lambda v, w: integer(v, w, 0, limits.MAX_JOBS)),
        power=field("power", lambda v, w: real(v, w, 0.0, limits.MAX_POWER)),
        state=field("state", _node_state),
        pause_reason=string(body.get("reason", ""), "body.reason", limits.MAX_PAUSE_REASON),
        pause_until=pause_until,
        compilers=_offers(body.get("cc", []), "body.cc"),
        gossip_port=integer(body.get("gp", DEFAULT_GOSSIP_PORT), "body.gp", 1, limits.MAX_PORT),
    )


def _node_name(value: object, where: str) -> str:
    name = string(value, where, limits.MAX_NODE_NAME)
    if not name:
        raise WireFormatError(f"{where}: empty")
    return name


def _node_state(value: object, where: str) -> NodeState:
    token = string(value, where, limits.MAX_NODE_NAME)
    try:
        return NodeState(token)
    except ValueError:
        raise WireFormatError(f"{where}: unknown node state") from None


def _addresses(value: object, where: str) -> tuple[str, ...]:
    items = array(value, where, limits.MAX_ADDRESSES)
    return tuple(_address(item, f"{where}[{i}]") for i, item in enumerate(items))


def _address(value: object, where: str) -> str:
    address_text = string(value, where, limits.MAX_ADDRESS_LEN)
    problem = _address_problem(address_text)
    if problem:
        raise WireFormatError(f"{where}: {problem}")
    return address_text


@functools.lru_cache(maxsize=limits.MAX_PEERS)
def _address_problem(text: str) -> str:
    """What is wrong with an address's syntax ("" if nothing).  Cached: every member's
    addresses come round in every datagram, and parsing them is most of decoding."""
    host, percent, scope = text.partition("%")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "not an IP address"
    if percent and not (address.version == 6 and _SCOPE_ID.fullmatch(scope)):
        return "bad IPv6 scope id"
    return ""


def _offers(value: object, where: str) -> tuple[CompilerOffer, ...]:
    items = array(value, where, limits.MAX_COMPILERS)
    return tuple(_offer(item, f"{where}[{i}]") for i, item in enumerate(items))


#: Offers remembered once checked (`_offer`): every member of a pool offers a handful
#: of the same compilers, in every full STATE.
_KNOWN_OFFERS: dict[tuple[bytes, str, str], CompilerOffer] = {}
KNOWN_OFFERS_CAP = 1024


def _offer(value: object, where: str) -> CompilerOffer:
    # Elements past the third are ignored: a newer minor version may append some.
    items = array(value, where, limits.MAX_DATAGRAM)
    if len(items) < 3:
        raise WireFormatError(f"{where}: a compiler offer has 3 elements, got {len(items)}")
    fingerprint, loose_key, remote_name = items[0], items[1], items[2]
    if not (
        isinstance(fingerprint, bytes)
        and isinstance(loose_key, str)
        and isinstance(remote_name, str)
    ):
        return _checked_offer(items, where)  # raises
    key = (fingerprint, loose_key, remote_name)
    known = _KNOWN_OFFERS.get(key)
    if known is None:
        known = _checked_offer(items, where)
        if len(_KNOWN_OFFERS) >= KNOWN_OFFERS_CAP:
            _KNOWN_OFFERS.clear()  # a flood of made-up offers costs checks, not memory
        _KNOWN_OFFERS[key] = known
    return known


def _checked_offer(items: list[object], where: str) -> CompilerOffer:
    fingerprint = binary(items[0], f"{where}.fingerprint", limits.FINGERPRINT_BYTES)
    loose_key = _token(items[1], f"{where}.loose", limits.MAX_LOOSE_KEY)
    remote_name = _token(items[2], f"{where}.remote", limits.MAX_REMOTE_NAME)
    return CompilerOffer(fingerprint.hex(), loose_key, remote_name)


def _token(value: object, where: str, cap: int) -> str:
    token = string(value, where, cap)
    if not _TOKEN.fullmatch(token):
        raise WireFormatError(f"{where}: must be letters, digits and ._+- not starting with one")
    return token
