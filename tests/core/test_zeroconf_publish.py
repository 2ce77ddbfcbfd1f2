"""Our mDNS records: exact TXT and names, refusing what peers would refuse, pacing."""

from __future__ import annotations

from typing import Any

import pytest

from p2pcc.core import limits
from p2pcc.core.zeroconf_names import DistccdAnnouncement, ServiceRecord, ZeroconfNameError
from p2pcc.core.zeroconf_parse import parse_p2pcc_service
from p2pcc.core.zeroconf_publish import (
    distcc_record,
    distcc_txt,
    first_word,
    p2pcc_record,
    p2pcc_txt,
    parse_distccd_version,
    publish_delay,
)

NODE_ID = bytes(range(16))
NODE_HEX = "000102030405060708090a0b0c0d0e0f"
ANNOUNCEMENT = DistccdAnnouncement(
    3632, 8, 6, "x86_64-linux-gnu", "12", "3.4", "x86_64-pc-linux-gnu"
)


def test_p2pcc_txt() -> None:
    assert p2pcc_txt(NODE_ID, 1) == {"txtvers": "1", "node": NODE_HEX, "proto": "1"}
    with pytest.raises(ZeroconfNameError, match="16 bytes, not 3"):
        p2pcc_txt(b"abc", 1)


def test_distcc_txt_has_stock_keys_in_stock_order_and_our_marker() -> None:
    assert list(distcc_txt(ANNOUNCEMENT, NODE_ID).items()) == [
        ("txtvers", "1"),
        ("cpus", "8"),
        ("distcc", "3.4"),
        ("gnuhost", "x86_64-pc-linux-gnu"),
        ("cc_version", "12"),
        ("cc_machine", "x86_64-linux-gnu"),
        ("jobs", "6"),
        ("p2pcc", NODE_HEX),
    ]


def test_distcc_txt_leaves_out_unknown_distcc_version() -> None:
    bare = DistccdAnnouncement(3632, 2, 4, "x86_64-linux-gnu", "12")
    assert set(distcc_txt(bare, NODE_ID)) == {
        "txtvers",
        "cpus",
        "cc_version",
        "cc_machine",
        "jobs",
        "p2pcc",
    }


def test_p2pcc_record() -> None:
    record = p2pcc_record(
        hostname="alpha",
        node_id=NODE_ID,
        node_name="alpha",
        addresses=["10.0.0.1"],
        gossip_port=7463,
        proto=1,
    )
    assert record == ServiceRecord(
        type_="_p2pcc._tcp.local.",
        name="alpha [00010203]._p2pcc._tcp.local.",
        server="alpha-p2pcc-00010203.local.",
        port=7463,
        properties=(("txtvers", "1"), ("node", NODE_HEX), ("proto", "1")),
        addresses=("10.0.0.1",),
    )


def test_distcc_record_registers_under_the_compiler_subtype() -> None:
    record = distcc_record(
        hostname="alpha", node_id=NODE_ID, addresses=["10.0.0.1"], announcement=ANNOUNCEMENT
    )
    assert record.type_ == "_x86-64-linux-gnu--12._sub._distcc._tcp.local."
    assert record.name == "distcc@alpha._distcc._tcp.local."
    assert record.server == "alpha-p2pcc-00010203.local."
    assert (record.port, record.addresses) == (3632, ("10.0.0.1",))
    assert record.txt == distcc_txt(ANNOUNCEMENT, NODE_ID)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"jobs": 0}, "jobs='0'"),
        ({"cpus": limits.MAX_CPUS + 1}, "cpus='4097'"),
        ({"port": 0}, "port 0"),
        ({"cc_machine": "not a triple"}, "target triple"),
        ({"cc_version": "twelve"}, "instead of a version"),
    ],
)
def test_distcc_record_refuses_what_peers_would_refuse(
    change: dict[str, Any], message: str
) -> None:
    fields = {
        "port": 3632,
        "cpus": 2,
        "jobs": 4,
        "cc_machine": "x86_64-linux-gnu",
        "cc_version": "12",
    } | change
    with pytest.raises(ZeroconfNameError, match=message):
        distcc_record(
            hostname="a",
            node_id=NODE_ID,
            addresses=["10.0.0.1"],
            announcement=DistccdAnnouncement(**fields),
        )


def test_p2pcc_record_needs_a_usable_address() -> None:
    with pytest.raises(ZeroconfNameError, match="no usable unicast address"):
        p2pcc_record(
            hostname="a",
            node_id=NODE_ID,
            node_name="a",
            addresses=["127.0.0.1"],
            gossip_port=1,
            proto=1,
        )


def test_same_registration_ignores_what_an_update_can_change() -> None:
    record = distcc_record(
        hostname="a", node_id=NODE_ID, addresses=["10.0.0.1"], announcement=ANNOUNCEMENT
    )
    busier = DistccdAnnouncement(3633, 8, 9, "x86_64-linux-gnu", "12")
    other_cc = DistccdAnnouncement(3632, 8, 6, "x86_64-linux-gnu", "11")
    kwargs: dict[str, Any] = {"hostname": "a", "node_id": NODE_ID, "addresses": ["10.0.0.2"]}
    assert record.same_registration(distcc_record(announcement=busier, **kwargs))
    assert not record.same_registration(distcc_record(announcement=other_cc, **kwargs))


def test_our_own_p2pcc_record_parses_back() -> None:
    record = p2pcc_record(
        hostname="h", node_id=NODE_ID, node_name="n", addresses=["10.0.0.1"], gossip_port=9, proto=1
    )
    wire = {k.encode(): v.encode() for k, v in record.properties}
    assert (
        parse_p2pcc_service(record.name, wire, record.addresses, record.port, 1).node_id == NODE_ID
    )


# --- stock tools' output and pacing ----------------------------------------------------------


def test_first_word_keeps_what_distcc_reads_from_cc() -> None:
    assert first_word("12\n") == "12"
    assert first_word("x86_64-linux-gnu\r\nmore") == "x86_64-linux-gnu"
    assert first_word("14.0.6 extra\n") == "14.0.6"


def test_parse_distccd_version() -> None:
    text = "distccd 3.4 x86_64-pc-linux-gnu\n  (protocols 1, 2 and 3) (default port 3632)\n"
    assert parse_distccd_version(text) == ("3.4", "x86_64-pc-linux-gnu")
    with pytest.raises(ZeroconfNameError, match="unexpected distccd --version"):
        parse_distccd_version("gcc (Debian 12.2.0-14) 12.2.0")


def _record(jobs: int) -> ServiceRecord:
    announcement = DistccdAnnouncement(3632, 2, jobs, "x86_64-linux-gnu", "12")
    return distcc_record(
        hostname="a", node_id=NODE_ID, addresses=["10.0.0.1"], announcement=announcement
    )


def test_publish_delay_paces_publication_but_never_withdrawal() -> None:
    first, second = _record(4), _record(5)
    pace = {"interval": 10.0, "last_change": 100.0}
    assert publish_delay(applied=None, wanted=first, now=100.0, **pace) == 10.0
    assert publish_delay(applied=first, wanted=second, now=104.0, **pace) == 6.0
    assert publish_delay(applied=first, wanted=second, now=111.0, **pace) == 0.0
    assert publish_delay(applied=first, wanted=None, now=100.0, **pace) == 0.0
    assert publish_delay(applied=first, wanted=first, now=100.0, **pace) == 0.0
