"""`-march=native` and friends: keys, rewriting, and the expansions read from real gcc."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from p2pcc.compilers.probe import lookup
from p2pcc.daemon import compilers
from p2pcc.daemon.compilers import native_expansions
from p2pcc.wrapper import native

VECTOR_CODE = """
void saxpy(float *restrict y, const float *restrict x, float a, int n)
{ for (int i = 0; i < n; i++) y[i] += a * x[i]; }
double dot(const double *a, const double *b, int n)
{ double s = 0; for (int i = 0; i < n; i++) s += a[i] * b[i]; return s; }
unsigned popcount(unsigned long v) { return __builtin_popcountl(v); }
"""


@pytest.mark.parametrize(
    ("args", "key"),
    [
        (["-O2", "-c", "x.c"], None),
        (["-march=native", "-c", "x.c"], "-march=native"),
        (["-march=native", "-mtune=native"], "-march=native,-mtune=native"),
        (["-march=native", "-mtune=generic"], "-march=native,-mtune=*"),
        (["-mtune=generic", "-march=native"], "-mtune=*,-march=native"),
        (["-march=haswell", "-march=native"], "-march=native"),  # the last one wins
        (["-march=native", "-march=haswell"], ""),  # nothing left to expand
        (["-mtune=native", "-mtune=intel", "-march=native"], "-mtune=*,-march=native"),
        (["-mcpu=native"], "-mcpu=native"),
        (["-Wa,-march=native", "-c", "x.c"], None),  # the assembler's, passed as is
    ],
)
def test_keys_follow_the_flags_that_survive_the_driver(args: list[str], key: str | None) -> None:
    assert native.native_key(args) == key


def test_rewrite_puts_the_expansion_first_and_drops_what_it_overrides() -> None:
    args = ["-march=haswell", "-mno-avx2", "-march=native", "-mtune=generic", "-c", "x.c"]
    assert native.rewrite(args, ("-march=znver3", "-mavx2")) == [
        "-march=znver3",
        "-mavx2",
        "-mno-avx2",
        "-mtune=generic",
        "-c",
        "x.c",
    ]
    assert native.rewrite(["-march=native", "-march=haswell"], ()) == ["-march=haswell"]


def test_flags_that_store_the_command_line_in_the_object_keep_native_local() -> None:
    assert "records the option text" in native.local_reason(["-flto=auto"])
    assert native.local_reason(["-frecord-gcc-switches"])
    assert native.local_reason(["-O2", "-g"]) == ""


@pytest.mark.parametrize(
    ("line", "words"),
    [
        (' /usr/lib/cc1 -quiet "-march=znver3" --param "l1-cache-size=32"', None),
        (' cc1 "a \\"quoted\\" word" plain', ["cc1", 'a "quoted" word', "plain"]),
        (' cc1 "" x', ["cc1", "", "x"]),
    ],
)
def test_driver_lines_are_split_like_the_driver_quotes_them(
    line: str, words: list[str] | None
) -> None:
    expected = words or ["/usr/lib/cc1", "-quiet", "-march=znver3", "--param", "l1-cache-size=32"]
    assert native.split_command(line) == expected


def test_every_key_is_distinct_and_parsable() -> None:
    keys = [native.key_of(list(flags)) for flags in native.all_keys()]
    assert len(keys) == len(set(keys)) == 21
    assert all(native.native_key(key.replace("*", "x86-64").split(",")) == key for key in keys)


def test_a_probe_that_fails_or_is_not_gcc_gives_no_expansion() -> None:
    assert native.expansions(lambda flags: None, "/tmp") == {}
    clang_like = ' "/usr/lib/llvm/bin/clang" "-cc1" "-target-cpu" "znver3"\n'
    assert native.expansions(lambda flags: clang_like, "/tmp") == {}


def test_a_driver_whose_rewrite_differs_gets_no_expansion() -> None:
    # A made-up driver that passes native flags through to cc1 unexpanded: no explicit
    # flags reproduce "-march=native", so no expansion may be recorded.
    def probe(flags: list[str]) -> str:
        return " /x/cc1 /dev/null " + " ".join(flags) + " -mtune=generic\n"

    assert native.expansions(probe, "/tmp") == {}


needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")


@needs_gcc
def test_real_gcc_expansions_are_explicit_flags() -> None:
    expansions = dict(native_expansions(lookup("gcc", os.environ), dict(os.environ)))
    arch = expansions["-march=native"]
    assert arch[0].startswith("-march=")
    assert arch[0] != "-march=native"
    assert any(flag.startswith("-mtune=") for flag in arch)
    assert not any(flag.endswith("=native") for flag in arch)
    assert "-mtune=" not in " ".join(expansions["-march=native,-mtune=*"])
    assert {"-march=native", "-mtune=native", "-march=native,-mtune=native"} <= set(expansions)
    assert all(native.refused_flag(flags) is None for flags in expansions.values())


#: What an expansion may never bring into a command line (each loads or runs something).
HOSTILE_FLAGS = [
    "-wrapper",
    "/bin/sh,-c,touch /tmp/owned",
    "-B/tmp/evil",
    "-B",
    "@/tmp/more-flags",
    "-fplugin=/tmp/evil.so",
    "-specs=/tmp/evil.specs",
    "-march=../../tmp/x",
    "-m",
    "-m-wrapper",
    "-mé",
    "-march=znver3\t-wrapper",
    "--param=max-inline-insns-single=1",
    "--param=l1-cache-size=32k",
    "--param=l1-cache-size==32",
    "-Xassembler",
    "-o/etc/passwd",
    "",
]


@pytest.mark.parametrize("flag", HOSTILE_FLAGS)
def test_an_expansion_holds_only_m_options_and_cache_params(flag: str) -> None:
    good = ["-march=znver3", "-mno-avx512f", "--param=l2-cache-size=512", "-mcpu=neoverse-n1+crc"]
    assert native.refused_flag(good) is None
    assert native.refused_flag([*good, flag]) == flag
    assert native.refused_flag([flag, *good]) == flag


@needs_gcc
def test_the_daemon_records_no_expansion_holding_anything_else(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    found = {
        "-march=native": ("-march=znver3", "-wrapper", "/bin/sh,-c,id"),
        "-mtune=native": ("-B/tmp/evil", "-mtune=znver3"),
        "-mcpu=native": ("@/tmp/flags",),
        "-march=native,-mtune=native": ("-march=znver3", "-mtune=znver3"),
    }
    monkeypatch.setattr(native, "expansions", lambda probe, tempdir: found)
    monkeypatch.setattr(compilers, "_native_by_id", {})
    gcc = lookup("gcc", os.environ)
    with caplog.at_level(logging.WARNING, "p2pcc.compilers"):
        kept = native_expansions(gcc, dict(os.environ))
    assert kept == (("-march=native,-mtune=native", ("-march=znver3", "-mtune=znver3")),)
    assert [record.getMessage() for record in caplog.records] == [
        f"not recording {gcc.command}'s expansion of -march=native: it holds '-wrapper', "
        "not an -m option",
        f"not recording {gcc.command}'s expansion of -mcpu=native: it holds '@/tmp/flags', "
        "not an -m option",
        f"not recording {gcc.command}'s expansion of -mtune=native: it holds '-B/tmp/evil', "
        "not an -m option",
    ]


@needs_gcc
def test_clang_has_no_expansion() -> None:
    if shutil.which("clang") is None:
        pytest.skip("needs clang")
    assert native_expansions(lookup("clang", os.environ), dict(os.environ)) == ()


@needs_gcc
@pytest.mark.parametrize(
    "flags",
    [
        ["-O3", "-march=native"],
        ["-O2", "-mtune=native"],
        ["-O3", "-march=native", "-mtune=generic"],
        ["-O3", "-mno-avx2", "-march=native", "-mtune=native"],
    ],
)
def test_the_rewritten_command_builds_the_very_same_object(flags: list[str]) -> None:
    expansions = dict(native_expansions(lookup("gcc", os.environ), dict(os.environ)))
    key = native.native_key(flags)
    assert key in expansions
    rewritten = native.rewrite(flags, expansions[key])
    with tempfile.TemporaryDirectory() as work:
        source = Path(work, "v.c")
        source.write_text(VECTOR_CODE)
        objects = []
        for name, command in (("native.o", flags), ("explicit.o", rewritten)):
            subprocess.run(["gcc", *command, "-c", str(source), "-o", f"{work}/{name}"], check=True)
            objects.append(Path(work, name).read_bytes())
        generic = Path(work, "generic.o")
        subprocess.run(["gcc", "-O3", "-c", str(source), "-o", str(generic)], check=True)
        generic_code = generic.read_bytes()
    assert objects[0] == objects[1]
    if "-march=native" in flags:  # the flags did change the code: the test can fail
        assert generic_code != objects[0]
