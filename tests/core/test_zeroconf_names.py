"""mDNS names and TXT records: exact values, stock distcc's rules, and hostile input."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pcc.core import limits
from p2pcc.core.zeroconf_names import (
    DiscoveredNode,
    DistccdAnnouncement,
    ServiceRecord,
    StockServer,
    ZeroconfNameError,
    ZeroconfRecordError,
    distcc_instance,
    distcc_record,
    distcc_subtype,
    distcc_subtype_label,
    distcc_txt,
    first_word,
    instance_of,
    is_p2pcc_instance,
    p2pcc_instance,
    p2pcc_record,
    p2pcc_txt,
    parse_distcc_service,
    parse_distccd_version,
    parse_p2pcc_service,
    publish_delay,
    server_name,
    usable_addresses,
)

NODE_ID = bytes(range(16))
NODE_HEX = "000102030405060708090a0b0c0d0e0f"
ANNOUNCEMENT = DistccdAnnouncement(
    3632, 8, 6, "x86_64-linux-gnu", "12", "3.4", "x86_64-pc-linux-gnu"
)
#: What Debian's `distccd --zeroconf` 3.4 published in the test bed (seen with avahi-browse).
STOCK_TXT = {
    b"txtvers": b"1",
    b"cpus": b"2",
    b"distcc": b"3.4",
    b"gnuhost": b"x86_64-pc-linux-gnu",
    b"cc_version": b"12",
    b"cc_machine": b"x86_64-linux-gnu",
    b"jobs": b"6",
}
STOCK_NAME = "distcc@gamma._distcc._tcp.local."
P2PCC_TXT = {b"txtvers": b"1", b"node": NODE_HEX.encode(), b"proto": b"1"}
P2PCC_NAME = "alpha [00010203]._p2pcc._tcp.local."


# --- names ------------------------------------------------------------------------------


def test_distcc_subtype_matches_distcc_for_debian_gcc_12() -> None:
    assert (
        distcc_subtype("x86_64-linux-gnu", "12") == "_x86-64-linux-gnu--12._sub._distcc._tcp.local."
    )


def test_distcc_subtype_lowers_letters_and_dashes_everything_else() -> None:
    assert distcc_subtype_label("X86_64-PC-Linux-GNU", "14.0.6") == "_x86-64-pc-linux-gnu--14-0-6"


def test_distcc_subtype_dashes_each_byte_of_a_non_ascii_character() -> None:
    # distcc works on bytes: "é" is two UTF-8 bytes, so two dashes after the "-".
    assert distcc_subtype_label("arm-é", "1") == "_arm-----1"


def test_distcc_subtype_longer_than_a_dns_label_is_refused() -> None:
    machine = "m" * 30
    assert len(distcc_subtype_label(machine, "v" * 30)) == 63  # "_" + 30 + "--" + 30
    with pytest.raises(ZeroconfNameError, match="longer than a DNS label"):
        distcc_subtype_label(machine, "v" * 31)


@given(st.text(max_size=80), st.text(max_size=80))
def test_distcc_subtype_label_only_holds_what_dns_sd_subtypes_allow(
    machine: str, version: str
) -> None:
    try:
        label = distcc_subtype_label(machine, version)
    except ZeroconfNameError:
        return
    assert label.startswith("_")
    assert set(label[1:]) <= set("abcdefghijklmnopqrstuvwxyz0123456789-")
    assert len(label) <= limits.MAX_DNS_LABEL


def test_instance_names() -> None:
    assert p2pcc_instance("alpha", NODE_ID) == "alpha [00010203]"
    assert distcc_instance("alpha") == "distcc@alpha"
    assert p2pcc_instance("bad\nname", NODE_ID) == "bad?name [00010203]"


def test_long_instance_names_are_cut_to_one_label_on_a_character_boundary() -> None:
    name = p2pcc_instance("é" * 40, NODE_ID)
    assert name == "é" * 26 + " [00010203]"  # 52 + 11 bytes: one more "é" would not fit
    assert len(name.encode()) == 63
    assert len(distcc_instance("h" * 100).encode()) == 63


def test_server_name_is_ours_not_the_machines() -> None:
    assert server_name("alpha", NODE_ID) == "alpha-p2pcc-00010203.local."
    assert server_name("Build_Box.example.com", NODE_ID) == "build-box-p2pcc-00010203.local."
    assert server_name("___", NODE_ID) == "host-p2pcc-00010203.local."
    assert len(server_name("x" * 100, NODE_ID).split(".")[0]) == 40 + len("-p2pcc-00010203")


# --- what we publish ---------------------------------------------------------------------


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


# --- what we read -------------------------------------------------------------------------


def test_parse_p2pcc_service() -> None:
    node = parse_p2pcc_service(P2PCC_NAME, P2PCC_TXT, ["10.0.0.1", "fe80::1%eth0"], 7463, 1)
    assert node == DiscoveredNode(NODE_ID, "alpha [00010203]", ("10.0.0.1", "fe80::1%eth0"), 7463)


def test_our_own_p2pcc_record_parses_back() -> None:
    record = p2pcc_record(
        hostname="h", node_id=NODE_ID, node_name="n", addresses=["10.0.0.1"], gossip_port=9, proto=1
    )
    wire = {k.encode(): v.encode() for k, v in record.properties}
    assert (
        parse_p2pcc_service(record.name, wire, record.addresses, record.port, 1).node_id == NODE_ID
    )


def test_parse_stock_distccd_record() -> None:
    server = parse_distcc_service(STOCK_NAME, STOCK_TXT, ["10.213.7.13", "fe80::1"], 3632)
    assert server == StockServer(
        "distcc@gamma", ("10.213.7.13", "fe80::1"), 3632, "x86_64-linux-gnu--12", 2, 6
    )


def test_stock_record_loose_key_keeps_the_major_version_only() -> None:
    txt = STOCK_TXT | {b"cc_version": b"14.0.6", b"cc_machine": b"x86_64-pc-linux-gnu"}
    assert parse_distcc_service(STOCK_NAME, txt, ["10.0.0.1"], 3632).loose_key == (
        "x86_64-pc-linux-gnu--14"
    )


def test_stock_record_without_counts_gets_distccs_defaults() -> None:
    txt = {b"cc_version": b"12", b"cc_machine": b"x86_64-linux-gnu"}
    server = parse_distcc_service(STOCK_NAME, txt, ["10.0.0.1"], 3632)
    assert (server.cpus, server.jobs) == (1, 4)


def test_txt_keys_compare_case_insensitively_and_the_first_wins() -> None:
    txt = {b"CC_Version": b"12", b"cc_version": b"11", b"cc_machine": b"x86_64-linux-gnu"}
    assert (
        parse_distcc_service(STOCK_NAME, txt, ["10.0.0.1"], 1).loose_key == "x86_64-linux-gnu--12"
    )


def test_p2pcc_marker() -> None:
    assert is_p2pcc_instance(STOCK_TXT | {b"p2pcc": NODE_HEX.encode()})
    assert not is_p2pcc_instance(STOCK_TXT)
    assert not is_p2pcc_instance({"p2pcc": "str keys are malformed"})


def _bad(txt: dict[Any, Any] | None = None, **replace: Any) -> dict[str, Any]:
    return {"txt": STOCK_TXT if txt is None else txt} | replace


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        (_bad({**STOCK_TXT, b"jobs": b"0"}), "bad-jobs"),
        (_bad({**STOCK_TXT, b"jobs": b"1025"}), "bad-jobs"),
        (_bad({**STOCK_TXT, b"jobs": b"-3"}), "bad-jobs"),
        (_bad({**STOCK_TXT, b"cpus": b"99999999999"}), "bad-cpus"),
        (_bad({**STOCK_TXT, b"cpus": b"\xff"}), "bad-txt"),
        (_bad({**STOCK_TXT, b"cpus": "2"}), "bad-txt"),
        (_bad({**STOCK_TXT, "cpus": b"2"}), "bad-txt"),
        (_bad({**STOCK_TXT, b"x=y": b"2"}), "bad-txt"),
        (_bad({**STOCK_TXT, b"gnuhost": b"g" * 256}), "oversized"),
        (_bad({**STOCK_TXT, **{f"k{i}".encode(): b"" for i in range(10)}}), "oversized"),
        (_bad({**STOCK_TXT, b"cc_machine": b"x86_64\nlinux"}), "bad-txt"),
        (_bad({**STOCK_TXT, b"cc_machine": b"x" * 200}), "bad-compiler"),
        (_bad({**STOCK_TXT, b"cc_version": None}), "no-compiler"),
        (_bad({b"cpus": b"2"}), "no-compiler"),
        (_bad(["not", "a", "mapping"]), "bad-txt"),
        (_bad(port=0), "bad-port"),
        (_bad(port=65536), "bad-port"),
        (_bad(port=None), "bad-port"),
        (_bad(port=True), "bad-port"),
        (
            _bad(addresses=["127.0.0.1", "224.0.0.251", "::", "ff02::fb", "not-an-ip", 17]),
            "no-address",
        ),
        (_bad(addresses=[]), "no-address"),
        (_bad(name="distcc@x._p2pcc._tcp.local."), "bad-name"),
        (_bad(name="._distcc._tcp.local."), "bad-name"),
        (_bad(name="d" * 64 + "._distcc._tcp.local."), "bad-name"),
        (_bad(name="dist\x07cc._distcc._tcp.local."), "bad-name"),
        (_bad(name=None), "bad-name"),
    ],
)
def test_hostile_stock_records_are_refused_with_a_reason(case: dict[str, Any], reason: str) -> None:
    args = {"name": STOCK_NAME, "addresses": ["10.0.0.1"], "port": 3632} | case
    with pytest.raises(ZeroconfRecordError) as caught:
        parse_distcc_service(args["name"], args["txt"], args["addresses"], args["port"])
    assert caught.value.reason == reason


def test_stock_record_values_at_the_caps_are_accepted() -> None:
    txt = {**STOCK_TXT, b"jobs": b"1024", b"cpus": b"4096", b"gnuhost": b"g" * 255}
    txt |= {f"k{i}".encode(): None for i in range(limits.MAX_TXT_KEYS - len(txt))}
    assert len(txt) == limits.MAX_TXT_KEYS
    server = parse_distcc_service(STOCK_NAME, txt, ["10.0.0.1"], 65535)
    assert (server.jobs, server.cpus, server.port) == (1024, 4096, 65535)
    assert len(instance_of("d" * 63 + "._distcc._tcp.local.", "_distcc._tcp.local.")) == 63


@pytest.mark.parametrize(
    ("txt", "reason"),
    [
        ({**P2PCC_TXT, b"node": b"00" * 15}, "bad-node-id"),
        ({**P2PCC_TXT, b"node": NODE_HEX.upper().encode()}, "bad-node-id"),
        ({b"proto": b"1"}, "bad-node-id"),
        ({**P2PCC_TXT, b"proto": b"2"}, "incompatible"),
        ({**P2PCC_TXT, b"proto": None}, "incompatible"),
    ],
)
def test_hostile_p2pcc_records_are_refused_with_a_reason(
    txt: dict[bytes, Any], reason: str
) -> None:
    with pytest.raises(ZeroconfRecordError) as caught:
        parse_p2pcc_service(P2PCC_NAME, txt, ["10.0.0.1"], 7463, 1)
    assert caught.value.reason == reason


def test_addresses_are_capped_and_filtered() -> None:
    offered = ["127.0.0.1", "10.0.0.1", "x", "10.0.0.2", "fe80::1%eth0", "10.0.0.3", "10.0.0.4"]
    assert usable_addresses(offered) == ("10.0.0.1", "10.0.0.2", "fe80::1%eth0", "10.0.0.3")
    assert len(usable_addresses(["10.0.0.1"] * 100)) == limits.MAX_ADDRESSES


_TXT_BYTES = st.binary(max_size=300)


@given(
    name=st.one_of(st.text(max_size=80), st.just(STOCK_NAME), st.just(P2PCC_NAME)),
    txt=st.dictionaries(
        st.one_of(_TXT_BYTES, st.sampled_from([*STOCK_TXT, b"node", b"proto"])),
        st.one_of(st.none(), _TXT_BYTES, st.integers()),
        max_size=20,
    ),
    addresses=st.lists(st.one_of(st.text(max_size=50), st.ip_addresses().map(str)), max_size=8),
    port=st.one_of(st.none(), st.integers(-5, 70000), st.text(max_size=5)),
)
def test_any_record_parses_or_raises_a_record_error(
    name: str, txt: dict[Any, Any], addresses: list[Any], port: Any
) -> None:
    reasons = []
    for parse in (
        lambda: parse_distcc_service(name, txt, addresses, port),
        lambda: parse_p2pcc_service(name, txt, addresses, port, 1),
    ):
        try:
            record = parse()
        except ZeroconfRecordError as error:
            reasons.append(error.reason)
        else:
            assert 1 <= record.port <= 65535
            assert 1 <= len(record.addresses) <= limits.MAX_ADDRESSES
    assert all(reasons)


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
