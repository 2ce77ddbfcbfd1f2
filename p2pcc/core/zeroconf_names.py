"""The vocabulary of p2pcc over mDNS/DNS-SD: service types, the values exchanged, names.

Two service types.  `_p2pcc._tcp` carries a node's unicast gossip endpoint (the SRV port
is the gossip UDP port) with TXT `txtvers`, `node` (id in hex) and `proto` (wire major
version).  `_distcc._tcp` is stock distcc's: we publish our distccd exactly as
`distccd --zeroconf` does (instance `distcc@<host>` under the subtype
`_<machine>--<version>._sub._distcc._tcp`, TXT `txtvers cpus distcc gnuhost cc_version
cc_machine jobs`) plus `p2pcc=<node id>`, which tells other p2pcc nodes to skip it, and
we read stock servers' records as peers known only by a loose compiler key.

This module holds what both directions share: the types and the marker key, the values
(what a received record turns into, what our records are built from) and the instance,
subtype and host names.  Reading received records is `p2pcc.core.zeroconf_parse`;
building ours (checked with that reader) and pacing their publication is
`p2pcc.core.zeroconf_publish`.  The subtype label follows distcc 3.4's
`dcc_make_dnssd_subtype`: each of machine and version cut to 63 bytes, ASCII letters
lower-cased, digits kept, every other byte `-`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from p2pcc.core import limits
from p2pcc.core.errors import P2pccError

P2PCC_SERVICE_TYPE = "_p2pcc._tcp.local."
DISTCC_SERVICE_TYPE = "_distcc._tcp.local."
#: TXT key marking a `_distcc._tcp` instance as a p2pcc node's (value: its node id).
P2PCC_MARKER_KEY = "p2pcc"

_SUBTYPE_KEEP = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789")
_HOST_LABEL_MAX = 40  # leaves room for "-p2pcc-<8 hex>" inside one 63-byte DNS label


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


def _printable(text: str) -> str:
    return "".join("?" if unicodedata.category(c) == "Cc" else c for c in text)


def _fit_label(text: str, size: int) -> str:
    return text.encode("utf-8")[:size].decode("utf-8", errors="ignore")
