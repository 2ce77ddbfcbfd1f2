"""What p2pcc publishes and reads over mDNS/DNS-SD: names, TXT records and their checks.

Two service types.  `_p2pcc._tcp` carries a node's unicast gossip endpoint (the SRV port
is the gossip UDP port) with TXT `txtvers`, `node` (id in hex) and `proto` (wire major
version).  `_distcc._tcp` is stock distcc's: we publish our distccd exactly as
`distccd --zeroconf` does (instance `distcc@<host>` under the subtype
`_<machine>--<version>._sub._distcc._tcp`, TXT `txtvers cpus distcc gnuhost cc_version
cc_machine jobs`) plus `p2pcc=<node id>`, which tells other p2pcc nodes to skip it, and
we read stock servers' records as peers known only by a loose compiler key.

Rules: everything received is checked against `limits` and either parses or raises
`ZeroconfRecordError` with a short `reason` token; unknown TXT keys are ignored, so
newer versions can add some.  Builders check their own output with the parsers, so we
never publish what we would refuse.  The subtype label follows distcc 3.4's
`dcc_make_dnssd_subtype`: each of machine and version cut to 63 bytes, ASCII letters
lower-cased, digits kept, every other byte `-`.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from p2pcc.core import limits
from p2pcc.core.errors import FingerprintError, P2pccError
from p2pcc.core.fingerprint import loose_key, parse_triple, parse_version

P2PCC_SERVICE_TYPE = "_p2pcc._tcp.local."
DISTCC_SERVICE_TYPE = "_distcc._tcp.local."
TXT_VERSION = "1"
#: TXT key marking a `_distcc._tcp` instance as a p2pcc node's (value: its node id).
P2PCC_MARKER_KEY = "p2pcc"
#: What distcc's zeroconf client assumes when a record has no `cpus` or no `jobs` key.
STOCK_DEFAULT_CPUS = 1
STOCK_DEFAULT_JOBS = 4

_HEX_ID = re.compile(f"[0-9a-f]{{{2 * limits.NODE_ID_BYTES}}}")
_DIGITS = re.compile(r"[0-9]{1,10}")
#: RFC 6763 6.4: printable US-ASCII other than "=", at least one character.
_TXT_KEY = re.compile(rb"[\x20-\x3c\x3e-\x7e]{1,255}")
_SUBTYPE_KEEP = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789")
_HOST_LABEL_MAX = 40  # leaves room for "-p2pcc-<8 hex>" inside one 63-byte DNS label


class ZeroconfRecordError(P2pccError):
    """A received mDNS record is not one we can use; `reason` is a short stable token."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


class ZeroconfNameError(P2pccError):
    """A local value (host name, compiler, counts) cannot be published over mDNS."""


@dataclass(frozen=True, slots=True)
class DiscoveredNode:
    """A p2pcc node found over mDNS: where to send unicast gossip to it."""

    node_id: bytes
    name: str  # the mDNS instance name, for logs and status
    addresses: tuple[str, ...]
    port: int  # its gossip UDP port


@dataclass(frozen=True, slots=True)
class StockServer:
    """A stock `distccd --zeroconf`: lower confidence, its compiler known by loose key only."""

    instance: str
    addresses: tuple[str, ...]
    port: int
    loose_key: str  # "<cc -dumpmachine>--<major of cc -dumpversion>", as CompilerOffer's
    cpus: int
    jobs: int


@dataclass(frozen=True, slots=True)
class DistccdAnnouncement:
    """What our distccd tells stock distcc clients: the values `distccd --zeroconf` sends.

    `cc_machine` and `cc_version` must be what `cc -dumpmachine` and `cc -dumpversion`
    print (stock clients compare them with their own `cc`'s); `distcc_version` and
    `gnuhost` are the two words after "distccd" in `distccd --version` (optional).
    """

    port: int
    cpus: int
    jobs: int
    cc_machine: str
    cc_version: str
    distcc_version: str = ""
    gnuhost: str = ""


@dataclass(frozen=True, slots=True)
class ServiceRecord:
    """One service instance to register: everything python-zeroconf's ServiceInfo needs."""

    type_: str  # the service type, or the subtype it is registered under
    name: str  # "<instance>.<service type>"
    server: str  # the host name its address records are published under
    port: int
    properties: tuple[tuple[str, str], ...]  # TXT, in publication order
    addresses: tuple[str, ...]

    @property
    def txt(self) -> dict[str, str]:
        """The TXT properties as a dict."""
        return dict(self.properties)

    def same_registration(self, other: ServiceRecord) -> bool:
        """True if `other` only changes what an update can change (TXT, port, addresses)."""
        return (self.type_, self.name, self.server) == (other.type_, other.name, other.server)


# --- names ------------------------------------------------------------------------------


def distcc_subtype_label(machine: str, version: str) -> str:
    """`_<machine>--<version>`, each part made safe the way distcc 3.4 does it."""
    label = f"_{_distcc_safe(machine)}--{_distcc_safe(version)}"
    if len(label) > limits.MAX_DNS_LABEL:
        raise ZeroconfNameError(
            f"the distcc subtype {label!r} is longer than a DNS label ({limits.MAX_DNS_LABEL})"
        )
    return label


def distcc_subtype(machine: str, version: str) -> str:
    """The subtype stock distcc registers and browses, e.g. `_x86-64-linux-gnu--12._sub.…`."""
    return f"{distcc_subtype_label(machine, version)}._sub.{DISTCC_SERVICE_TYPE}"


def _distcc_safe(text: str) -> str:
    # distcc works on bytes: a multi-byte UTF-8 character becomes several "-".
    raw = text.encode("utf-8")[: limits.MAX_DNS_LABEL]
    return "".join(chr(b) if b in _SUBTYPE_KEEP else "-" for b in raw.lower())


def p2pcc_instance(node_name: str, node_id: bytes) -> str:
    """`<node name> [<first 8 hex of the id>]`, cut to one DNS label."""
    suffix = f" [{node_id.hex()[:8]}]"
    return _fit_label(_printable(node_name), limits.MAX_DNS_LABEL - len(suffix)) + suffix


def distcc_instance(hostname: str) -> str:
    """`distcc@<hostname>`, the instance name stock distccd uses, cut to one DNS label."""
    return _fit_label("distcc@" + _printable(hostname), limits.MAX_DNS_LABEL)


def server_name(hostname: str, node_id: bytes) -> str:
    """Our own mDNS host name, `<host>-p2pcc-<8 hex>.local.`.

    Not `<host>.local.`: avahi on the same machine owns that name with every address of
    the machine, and publishing it with fewer would read as a conflict.
    """
    first = hostname.split(".", 1)[0].lower()
    label = re.sub(r"[^a-z0-9-]", "-", first)[:_HOST_LABEL_MAX].strip("-") or "host"
    return f"{label}-p2pcc-{node_id.hex()[:8]}.local."


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


def _printable(text: str) -> str:
    return "".join("?" if unicodedata.category(c) == "Cc" else c for c in text)


def _fit_label(text: str, size: int) -> str:
    return text.encode("utf-8")[:size].decode("utf-8", errors="ignore")


def _has_control(text: str) -> bool:
    return any(unicodedata.category(c) == "Cc" for c in text)


# --- what we publish ---------------------------------------------------------------------


def p2pcc_txt(node_id: bytes, proto: int) -> dict[str, str]:
    """The TXT of our `_p2pcc._tcp` instance."""
    if len(node_id) != limits.NODE_ID_BYTES:
        raise ZeroconfNameError(f"a node id is {limits.NODE_ID_BYTES} bytes, not {len(node_id)}")
    return {"txtvers": TXT_VERSION, "node": node_id.hex(), "proto": str(proto)}


def distcc_txt(announcement: DistccdAnnouncement, node_id: bytes) -> dict[str, str]:
    """The TXT of our `_distcc._tcp` instance: stock distccd's keys, in its order, + ours."""
    txt = {"txtvers": TXT_VERSION, "cpus": str(announcement.cpus)}
    if announcement.distcc_version:
        txt["distcc"] = announcement.distcc_version
    if announcement.gnuhost:
        txt["gnuhost"] = announcement.gnuhost
    txt["cc_version"] = announcement.cc_version
    txt["cc_machine"] = announcement.cc_machine
    txt["jobs"] = str(announcement.jobs)
    txt[P2PCC_MARKER_KEY] = node_id.hex()
    return txt


def p2pcc_record(
    *,
    hostname: str,
    node_id: bytes,
    node_name: str,
    addresses: Iterable[str],
    gossip_port: int,
    proto: int,
) -> ServiceRecord:
    """Our `_p2pcc._tcp` instance; ZeroconfNameError if a peer would refuse it."""
    record = ServiceRecord(
        type_=P2PCC_SERVICE_TYPE,
        name=f"{p2pcc_instance(node_name, node_id)}.{P2PCC_SERVICE_TYPE}",
        server=server_name(hostname, node_id),
        port=gossip_port,
        properties=tuple(p2pcc_txt(node_id, proto).items()),
        addresses=tuple(addresses),
    )
    try:
        parse_p2pcc_service(record.name, _as_wire(record), record.addresses, record.port, proto)
    except ZeroconfRecordError as error:
        raise ZeroconfNameError(f"cannot publish our p2pcc service: {error}") from None
    return record


def distcc_record(
    *, hostname: str, node_id: bytes, addresses: Iterable[str], announcement: DistccdAnnouncement
) -> ServiceRecord:
    """Our `_distcc._tcp` instance under its compiler subtype; ZeroconfNameError if invalid."""
    record = ServiceRecord(
        type_=distcc_subtype(announcement.cc_machine, announcement.cc_version),
        name=f"{distcc_instance(hostname)}.{DISTCC_SERVICE_TYPE}",
        server=server_name(hostname, node_id),
        port=announcement.port,
        properties=tuple(distcc_txt(announcement, node_id).items()),
        addresses=tuple(addresses),
    )
    try:
        _parse_stock_fields(record.name, _as_wire(record), record.addresses, record.port)
    except ZeroconfRecordError as error:
        raise ZeroconfNameError(f"cannot publish our distccd: {error}") from None
    return record


def _as_wire(record: ServiceRecord) -> dict[bytes, bytes | None]:
    return {key.encode("utf-8"): value.encode("utf-8") for key, value in record.properties}


# --- what we read -------------------------------------------------------------------------


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
    return _parse_stock_fields(name, props, addresses, port)


def _parse_stock_fields(
    name: str, props: Mapping[Any, object], addresses: Iterable[object], port: object
) -> StockServer:
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
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    return not (address.is_multicast or address.is_unspecified or address.is_loopback)


def checked_port(port: object) -> int:
    """A TCP/UDP port number 1..65535, or ZeroconfRecordError."""
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= limits.MAX_PORT:
        raise ZeroconfRecordError("bad-port", f"port {port!r:.20}")
    return port


# --- stock tools' output ------------------------------------------------------------------


def first_word(output: str) -> str:
    """What distcc keeps of `cc -dumpmachine`/`-dumpversion`: the first line up to a blank."""
    line = output.split("\n", 1)[0]
    return re.split(r"[ \t\r]", line, maxsplit=1)[0]


def parse_distccd_version(output: str) -> tuple[str, str]:
    """Version and GNU host from `distccd --version` ("distccd 3.4 x86_64-pc-linux-gnu")."""
    words = output.split("\n", 1)[0].split()
    if len(words) < 3 or words[0] not in ("distccd", "distcc"):
        raise ZeroconfNameError(f"unexpected distccd --version output: {output[:60]!r}")
    return words[1], words[2]


# --- publication pacing ---------------------------------------------------------------------


def publish_delay(
    *,
    applied: ServiceRecord | None,
    wanted: ServiceRecord | None,
    last_change: float,
    now: float,
    interval: float,
) -> float:
    """Seconds to wait before making `wanted` the published record (0: now).

    Withdrawing is never delayed, since stock clients would keep sending jobs to a
    distccd that stopped; publishing and updates come at most once per `interval`.
    """
    if wanted is None or applied == wanted:
        return 0.0
    return max(0.0, last_change + interval - now)
