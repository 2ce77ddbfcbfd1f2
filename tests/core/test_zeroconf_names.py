"""mDNS names: stock distcc's subtype rule, instance names cut to one label, our host name."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pcc.core import limits
from p2pcc.core.zeroconf_names import (
    ZeroconfNameError,
    distcc_instance,
    distcc_subtype,
    distcc_subtype_label,
    p2pcc_instance,
    server_name,
)

NODE_ID = bytes(range(16))


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
