"""Reading received mDNS records: stock distccd's and p2pcc's, and hostile input."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pcc.core import limits
from p2pcc.core.zeroconf_names import DiscoveredNode, StockServer
from p2pcc.core.zeroconf_parse import (
    ZeroconfRecordError,
    instance_of,
    is_p2pcc_instance,
    parse_distcc_service,
    parse_p2pcc_service,
    usable_addresses,
)

NODE_ID = bytes(range(16))
NODE_HEX = "000102030405060708090a0b0c0d0e0f"
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


def test_parse_p2pcc_service() -> None:
    node = parse_p2pcc_service(P2PCC_NAME, P2PCC_TXT, ["10.0.0.1", "fe80::1%eth0"], 7463, 1)
    assert node == DiscoveredNode(NODE_ID, "alpha [00010203]", ("10.0.0.1", "fe80::1%eth0"), 7463)


def test_parse_stock_distccd_record() -> None:
    addresses = ["10.213.7.13", "fe80::1%eth0", "fe80::1"]  # an unscoped link-local: no
    server = parse_distcc_service(STOCK_NAME, STOCK_TXT, addresses, 3632)
    assert server == StockServer(
        "distcc@gamma", ("10.213.7.13", "fe80::1%eth0"), 3632, "x86_64-linux-gnu--12", 2, 6
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
