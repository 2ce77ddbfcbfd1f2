"""Building the mDNS records we publish, and pacing their publication.

`p2pcc_record` is our `_p2pcc._tcp` instance (gossip endpoint), `distcc_record` our
distccd as stock `distccd --zeroconf` publishes it, from a `DistccdAnnouncement` made of
what `cc -dumpmachine`, `cc -dumpversion` and `distccd --version` print (`first_word`,
`parse_distccd_version` read them as distcc does).  Each builder checks its record with
the parser peers use (`p2pcc.core.zeroconf_parse`) and raises `ZeroconfNameError` rather
than publish what we would refuse.  `publish_delay` spaces updates out and never delays
a withdrawal.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from p2pcc.core import limits
from p2pcc.core.zeroconf_names import (
    DISTCC_SERVICE_TYPE,
    P2PCC_MARKER_KEY,
    P2PCC_SERVICE_TYPE,
    DistccdAnnouncement,
    ServiceRecord,
    ZeroconfNameError,
    distcc_instance,
    distcc_subtype,
    p2pcc_instance,
    server_name,
)
from p2pcc.core.zeroconf_parse import ZeroconfRecordError, parse_distcc_service, parse_p2pcc_service

TXT_VERSION = "1"


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
        parse_distcc_service(record.name, _as_wire(record), record.addresses, record.port)
    except ZeroconfRecordError as error:
        raise ZeroconfNameError(f"cannot publish our distccd: {error}") from None
    return record


def _as_wire(record: ServiceRecord) -> dict[bytes, bytes | None]:
    return {key.encode("utf-8"): value.encode("utf-8") for key, value in record.properties}


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
