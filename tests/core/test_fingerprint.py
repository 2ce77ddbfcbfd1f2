"""The pure fingerprint rules: id derivation, banner parsing, names, keys and caps."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pcc.core import limits
from p2pcc.core.errors import FingerprintError
from p2pcc.core.fingerprint import (
    Fingerprint,
    HashedBinary,
    ProbeFacts,
    RemoteNameCheck,
    build_fingerprint,
    choose_remote_name,
    driver_name,
    excerpt,
    fingerprint_id,
    language_from_names,
    loose_key,
    major_of,
    parse_banner,
    parse_triple,
    parse_version,
    remote_name_candidates,
    remote_name_problem,
)
from p2pcc.core.model import CompilerOffer

A, B, C = "a" * 64, "b" * 64, "c" * 64
GCC_BANNER = (
    "gcc (Debian 12.2.0-14+deb12u1) 12.2.0\n"
    "Copyright (C) 2022 Free Software Foundation, Inc.\n"
    "This is free software; see the source for copying conditions.  There is NO\n"
    "warranty; not even for MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.\n"
)
GCC_NOTICE = "This is free software; see the source for copying conditions.  There is NO\n"


def facts(family: str = "gcc", version: str = "12.2.0") -> ProbeFacts:
    binaries = (
        HashedBinary("driver", "/usr/bin/x86_64-linux-gnu-gcc-12", A),
        HashedBinary("cc1", "/usr/lib/gcc/x86_64-linux-gnu/12/cc1", B),
    )
    return ProbeFacts(family, "x86_64-linux-gnu", version, binaries)


ACCEPTED = RemoteNameCheck("x86_64-linux-gnu-gcc-12", True, "/usr/bin/x86_64-linux-gnu-gcc-12")


# --- the id ---------------------------------------------------------------------------


def test_id_is_pinned_for_known_facts() -> None:
    # A changed value here means every deployed node computes different ids: bump
    # ID_SCHEME on purpose instead.
    hashes = {"driver": A, "cc1": B}
    assert fingerprint_id("gcc", "c", "x86_64-linux-gnu", "12.2.0", hashes) == "02b1a8f972c47a67"


def test_id_is_the_truncated_sha256_of_netstrings_in_role_order() -> None:
    fields = ["p2pcc-fingerprint-1", "clang", "c++", "x86_64-pc-linux-gnu", "14.0.6"]
    fields += ["as", C, "driver", A]
    encoded = b"".join(f"{len(f)}:{f},".encode() for f in fields)
    expected = hashlib.sha256(encoded).hexdigest()[:16]
    hashes = {"driver": A, "as": C}
    assert fingerprint_id("clang", "c++", "x86_64-pc-linux-gnu", "14.0.6", hashes) == expected


def test_id_ignores_role_order_and_paths() -> None:
    first = fingerprint_id("gcc", "c", "x86_64-linux-gnu", "12.2.0", {"driver": A, "cc1": B})
    second = fingerprint_id("gcc", "c", "x86_64-linux-gnu", "12.2.0", {"cc1": B, "driver": A})
    assert first == second


@pytest.mark.parametrize(
    ("family", "language", "triple", "version", "hashes"),
    [
        ("clang", "c", "x86_64-linux-gnu", "12.2.0", {"driver": A, "cc1": B}),
        ("gcc", "c++", "x86_64-linux-gnu", "12.2.0", {"driver": A, "cc1": B}),
        ("gcc", "c", "aarch64-linux-gnu", "12.2.0", {"driver": A, "cc1": B}),
        ("gcc", "c", "x86_64-linux-gnu", "12.3.0", {"driver": A, "cc1": B}),
        ("gcc", "c", "x86_64-linux-gnu", "12.2.0", {"driver": A, "cc1": C}),
        ("gcc", "c", "x86_64-linux-gnu", "12.2.0", {"driver": A, "as": B}),
        ("gcc", "c", "x86_64-linux-gnu", "12.2.0", {"driver": A}),
    ],
)
def test_every_fact_changes_the_id(
    family: str, language: str, triple: str, version: str, hashes: dict[str, str]
) -> None:
    base = fingerprint_id("gcc", "c", "x86_64-linux-gnu", "12.2.0", {"driver": A, "cc1": B})
    assert fingerprint_id(family, language, triple, version, hashes) != base


@given(
    st.tuples(st.text(max_size=8), st.text(max_size=8)),
    st.tuples(st.text(max_size=8), st.text(max_size=8)),
)
def test_field_boundaries_cannot_collide(first: tuple[str, str], second: tuple[str, str]) -> None:
    # With plain concatenation ("x86_64-linux", "-gnu12") and ("x86_64-linux-gnu", "12")
    # would hash alike; length prefixes make every split distinct.
    ids = {
        pair: fingerprint_id("gcc", "c", pair[0], pair[1], {"driver": A})
        for pair in (first, second)
    }
    assert (ids[first] == ids[second]) == (first == second)
    assert all(len(value) == 2 * limits.FINGERPRINT_BYTES for value in ids.values())


@pytest.mark.parametrize(
    ("family", "language", "hashes"),
    [
        ("icc", "c", {"driver": A}),
        ("gcc", "fortran", {"driver": A}),
        ("gcc", "c", {"driver": "A" * 64}),
        ("gcc", "c", {"driver": "a" * 63}),
        ("gcc", "c", {"dri\tver": A}),
    ],
)
def test_bad_facts_are_refused(family: str, language: str, hashes: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=r"unknown|bad binary hash"):
        fingerprint_id(family, language, "x86_64-linux-gnu", "12", hashes)


# --- parsing probe output ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("banner", "expected"),
    [
        (GCC_BANNER, ("gcc", "12.2.0")),
        ("gcc (GCC) 13.2.1 20230801\n" + GCC_NOTICE, ("gcc", "13.2.1")),
        ("g++-11 (Debian 11.3.0-12) 11.3.0\n" + GCC_NOTICE, ("gcc", "11.3.0")),
        ("Debian clang version 14.0.6\nTarget: x86_64-pc-linux-gnu\n", ("clang", "14.0.6")),
        ("Ubuntu clang version 14.0.0-1ubuntu1.1\n", ("clang", "14.0.0")),
        ("Apple clang version 15.0.0 (clang-1500.1.0.2.5)\n", ("clang", "15.0.0")),
        ("clang version 18.1.8 (Fedora 18.1.8-1.fc40)\n", ("clang", "18.1.8")),
    ],
)
def test_banner_gives_family_and_version(banner: str, expected: tuple[str, str]) -> None:
    assert parse_banner(banner) == expected


@pytest.mark.parametrize(
    "banner",
    [
        "",
        "hello world\n",
        # coreutils has the same banner shape and copyright holder as gcc
        "true (GNU coreutils) 9.1\nCopyright (C) 2022 Free Software Foundation, Inc.\n"
        "This is free software: you are free to change and redistribute it.\n",
        "icc (ICC) 2021.10.0 20230609\n",
        GCC_NOTICE + "gcc (GCC) 13.2.1\n",  # the version must be on the first line
    ],
)
def test_banner_of_something_else_is_refused(banner: str) -> None:
    with pytest.raises(FingerprintError, match="does not name gcc or clang"):
        parse_banner(banner)


@pytest.mark.parametrize(("text", "expected"), [("12.2.0\n", "12.2.0"), ("12\n", "12")])
def test_dumped_versions_parse(text: str, expected: str) -> None:
    assert parse_version(text) == expected


@pytest.mark.parametrize("text", ["", "hello\n", "12.2.0 extra\n", "1.2.3.4.5\n", "v12\n"])
def test_bogus_versions_are_refused(text: str) -> None:
    with pytest.raises(FingerprintError, match="instead of a version number"):
        parse_version(text)


@pytest.mark.parametrize(
    "triple",
    ["x86_64-linux-gnu", "x86_64-pc-linux-gnu", "aarch64-unknown-linux-gnu", "arm-none-eabi"],
)
def test_triples_parse(triple: str) -> None:
    assert parse_triple(triple + "\n") == triple


@pytest.mark.parametrize("text", ["", "x86_64\n", "x86 64-linux\n", "a-b-c-d-e-f-g\n", "-linux\n"])
def test_bogus_triples_are_refused(text: str) -> None:
    with pytest.raises(FingerprintError, match="instead of a target triple"):
        parse_triple(text)


# --- names, keys and caps ---------------------------------------------------------------


def test_loose_key_is_triple_and_major() -> None:
    assert loose_key("x86_64-linux-gnu", "12.2.0") == "x86_64-linux-gnu--12"
    assert loose_key("x86_64-pc-linux-gnu", "14.0.6") == "x86_64-pc-linux-gnu--14"
    assert major_of("11") == "11"


def test_loose_key_over_the_cap_is_refused() -> None:
    triple = "x86_64-" + "v" * limits.MAX_LOOSE_KEY
    with pytest.raises(FingerprintError, match=f"longer than {limits.MAX_LOOSE_KEY}"):
        loose_key(triple, "12.2.0")


@pytest.mark.parametrize(
    ("names", "language"),
    [
        (["gcc", "gcc-12", "x86_64-linux-gnu-gcc-12"], "c"),
        (["c++", "c++", "g++", "g++-12", "x86_64-linux-gnu-g++-12"], "c++"),
        (["clang++", "clang++", "clang"], "c++"),
        (["cc", "cc", "gcc", "gcc-12"], "c"),
        (["clang-cpp"], "c"),
    ],
)
def test_language_comes_from_any_name_in_the_chain(names: list[str], language: str) -> None:
    assert language_from_names(names) == language


def test_driver_names() -> None:
    assert [driver_name(f, lang) for f in ("gcc", "clang") for lang in ("c", "c++")] == [
        "gcc",
        "g++",
        "clang",
        "clang++",
    ]


def test_remote_name_candidates_most_specific_first_without_duplicates() -> None:
    gcc = remote_name_candidates(
        "gcc",
        "c",
        "x86_64-linux-gnu",
        "12.2.0",
        real_basename="x86_64-linux-gnu-gcc-12",
        invoked="gcc",
    )
    assert gcc == ["x86_64-linux-gnu-gcc-12", "gcc-12", "gcc"]
    clang = remote_name_candidates(
        "clang", "c++", "x86_64-pc-linux-gnu", "14.0.6", real_basename="clang", invoked="clang++"
    )
    assert clang == ["x86_64-pc-linux-gnu-clang++-14", "clang++-14", "clang", "clang++"]


def test_remote_name_problems() -> None:
    assert remote_name_problem("x86_64-linux-gnu-g++-12") is None
    assert remote_name_problem("x" * (limits.MAX_REMOTE_NAME + 1)) == (
        f"longer than {limits.MAX_REMOTE_NAME} characters"
    )
    assert remote_name_problem("my gcc") is not None
    assert remote_name_problem("") is not None


def test_first_accepted_remote_name_wins() -> None:
    checks = [
        RemoteNameCheck("x86_64-pc-linux-gnu-clang-14", False, "not found"),
        RemoteNameCheck("clang-14", True, "/usr/bin/clang-14"),
        RemoteNameCheck("clang", True, "/usr/bin/clang"),
    ]
    assert choose_remote_name(checks) == "clang-14"


def test_no_acceptable_remote_name_explains_every_candidate() -> None:
    checks = [
        RemoteNameCheck("clang++-14", False, "not found"),
        RemoteNameCheck("clang", False, "/usr/bin/clang does not mean C++"),
    ]
    with pytest.raises(FingerprintError) as raised:
        choose_remote_name(checks)
    assert "clang++-14: not found; clang: /usr/bin/clang does not mean C++" in str(raised.value)


# --- the record -------------------------------------------------------------------------


def test_build_fingerprint_derives_id_keys_and_offer() -> None:
    built = build_fingerprint(facts(), "/usr/bin/gcc", "/r/gcc", "c", [ACCEPTED])
    hashes = {"driver": A, "cc1": B}
    assert built == Fingerprint(
        id=fingerprint_id("gcc", "c", "x86_64-linux-gnu", "12.2.0", hashes),
        command="/usr/bin/gcc",
        real_path="/r/gcc",
        family="gcc",
        language="c",
        triple="x86_64-linux-gnu",
        version="12.2.0",
        loose_key="x86_64-linux-gnu--12",
        remote_name="x86_64-linux-gnu-gcc-12",
        binaries=facts().binaries,
        remote_name_checks=(ACCEPTED,),
    )
    assert built.major == "12"
    assert built.to_offer() == CompilerOffer(
        built.id, "x86_64-linux-gnu--12", "x86_64-linux-gnu-gcc-12"
    )


def test_language_is_part_of_the_id() -> None:
    as_c = build_fingerprint(facts(), "/usr/bin/gcc", "/r/gcc", "c", [ACCEPTED])
    as_cxx = build_fingerprint(facts(), "/usr/bin/g++", "/r/gcc", "c++", [ACCEPTED])
    assert as_c.id != as_cxx.id


def test_excerpt_flattens_and_shortens_output() -> None:
    assert excerpt("") == "nothing"
    assert excerpt("a\n  b\tc") == "'a b c'"
    shown = excerpt("x" * 500, limit=20)
    assert shown == repr("x" * 19 + "…")
