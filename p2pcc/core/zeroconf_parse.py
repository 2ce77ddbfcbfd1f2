"""Reading what others publish over mDNS: every received record is checked before use.

A record comes from anyone on the link, so everything received is checked against
`limits` and either parses into a `DiscoveredNode` or a `StockServer` or raises
`ZeroconfRecordError` with a short `reason` token (the daemon counts drops by it).
Unknown TXT keys are ignored, so newer versions can add some; TXT keys compare
case-insensitively and the first of two equal keys wins.  A stock server without `cpus`
or `jobs` gets the values distcc's own zeroconf client assumes.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from p2pcc.core import limits
from p2pcc.core.addresses import Refusal, check_address
from p2pcc.core.errors import FingerprintError, P2pccError
from p2pcc.core.fingerprint import loose_key, parse_triple, parse_version
from p2pcc.core.zeroconf_names import (
    DISTCC_SERVICE_TYPE,
    P2PCC_MARKER_KEY,
    P2PCC_SERVICE_TYPE,
    DiscoveredNode,
    StockServer,
)

#: What distcc's zeroconf client assumes when a record has no `cpus` or no `jobs` key.
STOCK_DEFAULT_CPUS = 1
STOCK_DEFAULT_JOBS = 4

_HEX_ID = re.compile(f"[0-9a-f]{{{2 * limits.NODE_ID_BYTES}}}")
_DIGITS = re.compile(r"[0-9]{1,10}")
#: RFC 6763 6.4: printable US-ASCII other than "=", at least one character.
_TXT_KEY = re.compile(rb"[\x20-\x3c\x3e-\x7e]{1,255}")


class ZeroconfRecordError(P2pccError):
    """A received mDNS record is not one we can use; `reason` is a short stable token."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def parse_p2pcc_service(
    name: str, props: Mapping[Any, object], addresses: Iterable[object], port: object, proto: int
) -> DiscoveredNode:
    """A `_p2pcc._tcp` record speaking wire major `proto`, or ZeroconfRecordError."""
    instance = instance_of(name, P2PCC_SERVICE_TYPE)
    txt = txt_mapping(props)
    node_hex = txt_text(txt, "node")
    if node_hex is None or not _HEX_ID.fullmatch(node_hex):
        raise ZeroconfRecordError("bad-node-id", f"node={node_hex!r}")
    their_proto = txt_text(txt, "proto")
    if their_proto != str(proto):
        raise ZeroconfRecordError("incompatible", f"protocol {their_proto!r}, we speak {proto}")
    return DiscoveredNode(
        bytes.fromhex(node_hex), instance, usable_addresses(addresses), checked_port(port)
    )


def is_p2pcc_instance(props: Mapping[Any, object]) -> bool:
    """True if a `_distcc._tcp` record carries our marker (a p2pcc node, not a stock server)."""
    try:
        return P2PCC_MARKER_KEY in txt_mapping(props)
    except ZeroconfRecordError:
        return False


def parse_distcc_service(
    name: str, props: Mapping[Any, object], addresses: Iterable[object], port: object
) -> StockServer:
    """A stock distccd's `_distcc._tcp` record, or ZeroconfRecordError."""
    instance = instance_of(name, DISTCC_SERVICE_TYPE)
    txt = txt_mapping(props)
    machine, version = txt_text(txt, "cc_machine"), txt_text(txt, "cc_version")
    if machine is None or version is None:
        raise ZeroconfRecordError("no-compiler", "no cc_machine or cc_version in its TXT")
    try:
        key = loose_key(parse_triple(machine), parse_version(version))
    except FingerprintError as error:
        raise ZeroconfRecordError("bad-compiler", str(error)) from None
    cpus = _count(txt, "cpus", STOCK_DEFAULT_CPUS, limits.MAX_CPUS)
    jobs = _count(txt, "jobs", STOCK_DEFAULT_JOBS, limits.MAX_SLOTS)
    return StockServer(instance, usable_addresses(addresses), checked_port(port), key, cpus, jobs)


def _count(txt: Mapping[str, bytes | None], key: str, default: int, cap: int) -> int:
    text = txt_text(txt, key)
    if text is None:
        return default
    if not _DIGITS.fullmatch(text) or not 1 <= int(text) <= cap:
        raise ZeroconfRecordError(f"bad-{key}", f"{key}={text[:16]!r}, expected 1..{cap}")
    return int(text)


def txt_mapping(props: Mapping[Any, object]) -> dict[str, bytes | None]:
    """TXT properties with lower-cased ASCII keys (first one wins), checked against caps."""
    if not isinstance(props, Mapping):
        raise ZeroconfRecordError("bad-txt", f"properties are a {type(props).__name__}")
    if len(props) > limits.MAX_TXT_KEYS:
        raise ZeroconfRecordError("oversized", f"{len(props)} TXT keys")
    txt: dict[str, bytes | None] = {}
    for key, value in props.items():
        if not isinstance(key, bytes) or not _TXT_KEY.fullmatch(key):
            raise ZeroconfRecordError("bad-txt", f"TXT key {key!r:.40}")
        if value is not None and not isinstance(value, bytes):
            raise ZeroconfRecordError("bad-txt", f"TXT value of type {type(value).__name__}")
        if value is not None and len(value) > limits.MAX_TXT_VALUE:
            raise ZeroconfRecordError("oversized", f"TXT value of {len(value)} bytes")
        txt.setdefault(key.decode("ascii").lower(), value)
    return txt


def txt_text(txt: Mapping[str, bytes | None], key: str) -> str | None:
    """The value of `key` as text, None when absent or valueless; ZeroconfRecordError if bad."""
    raw = txt.get(key)
    if raw is None:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ZeroconfRecordError("bad-txt", f"{key} is not UTF-8") from None
    if _has_control(text):
        raise ZeroconfRecordError("bad-txt", f"{key} holds a control character")
    return text


def usable_addresses(addresses: Iterable[object]) -> tuple[str, ...]:
    """The first `MAX_ADDRESSES` unicast, non-loopback IP addresses; ZeroconfRecordError if none."""
    usable: list[str] = []
    for text in addresses:
        if len(usable) == limits.MAX_ADDRESSES:
            break
        if isinstance(text, str) and len(text) <= limits.MAX_ADDRESS_LEN and _unicast(text):
            usable.append(text)
    if not usable:
        raise ZeroconfRecordError("no-address", "no usable unicast address")
    return tuple(usable)


def _unicast(text: str) -> bool:
    """Whether `text` could be dialled at all (the pool's own networks are checked where
    the address is used: p2pcc.core.addresses)."""
    return not isinstance(check_address(text, None), Refusal)


def checked_port(port: object) -> int:
    """A TCP/UDP port number 1..65535, or ZeroconfRecordError."""
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= limits.MAX_PORT:
        raise ZeroconfRecordError("bad-port", f"port {port!r:.20}")
    return port


def instance_of(name: str, service_type: str) -> str:
    """The instance part of a full service name of `service_type`, checked."""
    if not isinstance(name, str) or not name.lower().endswith("." + service_type.lower()):
        raise ZeroconfRecordError("bad-name", f"{name!r} is not a {service_type} instance")
    instance = name[: -len(service_type) - 1]
    if not instance or len(instance.encode("utf-8")) > limits.MAX_DNS_LABEL:
        raise ZeroconfRecordError("bad-name", f"instance name of {len(instance)} characters")
    if _has_control(instance):
        raise ZeroconfRecordError("bad-name", "instance name with a control character")
    return instance


def _has_control(text: str) -> bool:
    return any(unicodedata.category(c) == "Cc" for c in text)
