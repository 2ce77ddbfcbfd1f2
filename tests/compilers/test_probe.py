"""Probing real and fake compilers: ids, keys, remote names, hashed binaries, failures."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from p2pcc.compilers.probe import (
    default_compilers,
    hash_file,
    probe,
)
from p2pcc.config.schema import DEFAULT_COMPILERS
from p2pcc.core.errors import FingerprintError
from p2pcc.core.fingerprint import Fingerprint
from tests.compilers.fake_compiler import FakeCompiler

MakeScript = Callable[[str, str], Path]

REAL_NAMES = (
    "cc",
    "gcc",
    "gcc-12",
    "x86_64-linux-gnu-gcc-12",
    "gcc-11",
    "g++",
    "c++",
    "clang",
    "clang-14",
    "clang++",
    "clang++-14",
)


@pytest.fixture(scope="module")
def real() -> dict[str, Fingerprint]:
    """Each installed compiler probed once for the whole module (no cache)."""
    return {name: probe(name, os.environ) for name in REAL_NAMES}


def sha256_of(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --- real compilers ---------------------------------------------------------------------


def test_names_of_the_same_gcc_share_one_id(real: dict[str, Fingerprint]) -> None:
    names = ("gcc", "gcc-12", "x86_64-linux-gnu-gcc-12", "cc")
    assert {os.path.realpath(shutil.which(name) or "") for name in names} == {
        "/usr/bin/x86_64-linux-gnu-gcc-12"
    }
    assert len({real[name].id for name in names}) == 1
    assert real["cc"].command == "/usr/bin/cc"  # the invoked path, symlinks kept


def test_gcc_versions_differ(real: dict[str, Fingerprint]) -> None:
    assert real["gcc-11"].id != real["gcc-12"].id
    assert (real["gcc-11"].major, real["gcc-12"].major) == ("11", "12")
    assert real["gcc-12"].version.startswith("12.")


def test_c_and_cxx_front_ends_differ(real: dict[str, Fingerprint]) -> None:
    assert real["gcc"].id != real["g++"].id
    assert real["c++"].id == real["g++"].id
    languages = (real["gcc"].language, real["g++"].language, real["c++"].language)
    assert languages == ("c", "c++", "c++")


def test_clang_and_clangxx_share_a_file_but_not_an_id(real: dict[str, Fingerprint]) -> None:
    assert real["clang"].real_path == real["clang++"].real_path
    assert real["clang"].id != real["clang++"].id
    assert real["clang"].id == real["clang-14"].id
    assert real["clang++"].id == real["clang++-14"].id
    assert (real["clang"].language, real["clang++"].language) == ("c", "c++")


def test_loose_keys(real: dict[str, Fingerprint]) -> None:
    assert real["gcc"].loose_key == "x86_64-linux-gnu--12"
    assert real["gcc-11"].loose_key == "x86_64-linux-gnu--11"
    assert real["clang"].loose_key == f"{real['clang'].triple}--14"
    assert real["clang++"].loose_key.endswith("--14")


@pytest.mark.parametrize(
    ("name", "remote"),
    [
        ("gcc", "x86_64-linux-gnu-gcc-12"),
        ("cc", "x86_64-linux-gnu-gcc-12"),
        ("gcc-11", "x86_64-linux-gnu-gcc-11"),
        ("g++", "x86_64-linux-gnu-g++-12"),
        ("c++", "x86_64-linux-gnu-g++-12"),
        ("clang", "clang-14"),
        ("clang++", "clang++-14"),
    ],
)
def test_remote_names(real: dict[str, Fingerprint], name: str, remote: str) -> None:
    fingerprint = real[name]
    assert fingerprint.remote_name == remote
    assert fingerprint.to_offer().remote_name == remote
    accepted = [check for check in fingerprint.remote_name_checks if check.accepted]
    assert [check.name for check in accepted] == [remote]
    assert fingerprint.remote_name_checks[-1] == accepted[0]  # checking stops there


def test_clang_remote_name_checks_explain_the_skipped_triple_name(
    real: dict[str, Fingerprint],
) -> None:
    first = real["clang++"].remote_name_checks[0]
    assert (first.name, first.accepted, first.detail) == (
        f"{real['clang++'].triple}-clang++-14",
        False,
        "not found",
    )


def test_gcc_hashes_driver_compilers_proper_and_assembler(real: dict[str, Fingerprint]) -> None:
    binaries = {binary.role: binary for binary in real["gcc"].binaries}
    assert {"driver", "cc1", "cc1plus", "as"} <= set(binaries)
    assert binaries["driver"].path == "/usr/bin/x86_64-linux-gnu-gcc-12"
    assert binaries["cc1"].path == "/usr/lib/gcc/x86_64-linux-gnu/12/cc1"
    assert binaries["as"].path == os.path.realpath(shutil.which("as") or "")
    assert binaries["cc1"].sha256 == sha256_of(binaries["cc1"].path)
    assert binaries["as"].sha256 == sha256_of(binaries["as"].path)


def test_clang_hashes_its_binary_and_code_generating_libraries(
    real: dict[str, Fingerprint],
) -> None:
    roles = [binary.role for binary in real["clang"].binaries]
    assert roles[0] == "driver"
    assert any(role.startswith("lib:libLLVM") for role in roles)
    assert "as" not in roles  # the integrated assembler
    assert not any("libc.so" in role or "libstdc++" in role for role in roles)


def test_default_compilers_are_those_on_path(fake_gcc: FakeCompiler) -> None:
    assert default_compilers(os.environ) == [n for n in DEFAULT_COMPILERS if shutil.which(n)]
    assert default_compilers(fake_gcc.env) == ["gcc"]


# --- fake and broken compilers ----------------------------------------------------------


def test_fake_gcc_probes_like_gcc(fake_gcc: FakeCompiler) -> None:
    fingerprint = probe("gcc", fake_gcc.env)
    assert (fingerprint.family, fingerprint.version, fingerprint.triple) == (
        "gcc",
        "12.2.0",
        "x86_64-linux-gnu",
    )
    assert {binary.path: binary.sha256 for binary in fingerprint.binaries} == {
        str(fake_gcc.path): sha256_of(str(fake_gcc.path)),
        str(fake_gcc.cc1): sha256_of(str(fake_gcc.cc1)),
        str(fake_gcc.assembler): sha256_of(str(fake_gcc.assembler)),
    }
    assert fingerprint.remote_name == "gcc"
    assert [(c.name, c.accepted) for c in fingerprint.remote_name_checks] == [
        ("x86_64-linux-gnu-gcc-12", False),
        ("gcc-12", False),
        ("gcc", True),
    ]


def test_missing_cc1_is_reported(fake_gcc: FakeCompiler) -> None:
    fake_gcc.cc1.unlink()
    with pytest.raises(FingerprintError, match="cannot locate its compiler proper"):
        probe(str(fake_gcc.path), fake_gcc.env)


def test_bare_assembler_is_looked_up_on_path(make_script: MakeScript) -> None:
    cc1 = make_script("cc1", "exit 0")
    script = make_script(
        "gcc",
        'case "$1" in\n'
        "  --version) echo 'gcc (X) 12.1.0'; "
        "echo 'This is free software; see the source for copying conditions.' ;;\n"
        "  -dumpmachine) echo x86_64-linux-gnu ;;\n"
        "  -dumpfullversion) echo 12.1.0 ;;\n"
        f"  -print-prog-name=cc1) echo {cc1} ;;\n"
        '  -print-prog-name=*) echo "${1#-print-prog-name=}" ;;\n'
        "esac",
    )
    env = {"PATH": str(script.parent)}
    with pytest.raises(FingerprintError, match=r"needs the assembler 'as'.*install binutils"):
        probe(str(script), env)
    assembler = make_script("as", "exit 0")
    binaries = {binary.role: binary.path for binary in probe(str(script), env).binaries}
    assert binaries["as"] == str(assembler)


def test_bogus_compiler_is_refused(make_script: MakeScript) -> None:
    script = make_script("gcc", "echo 'hello, I am definitely a compiler'")
    with pytest.raises(FingerprintError) as raised:
        probe(str(script), os.environ)
    message = str(raised.value)
    assert message.startswith(f"{script} is not a usable gcc or clang")
    assert "'hello, I am definitely a compiler'" in message


def test_gcc_lookalike_with_a_bogus_triple_is_refused(make_script: MakeScript) -> None:
    script = make_script(
        "gcc",
        'if [ "$1" = --version ]; then echo "gcc (X) 12.1.0"; '
        'echo "This is free software; see the source for copying conditions."; '
        "else echo '<<garbage>>'; fi",
    )
    with pytest.raises(FingerprintError, match="instead of a target triple"):
        probe(str(script), os.environ)


def test_a_real_program_that_is_not_a_compiler_is_refused() -> None:
    with pytest.raises(FingerprintError, match=r"^/usr/bin/true is not a usable gcc or clang"):
        probe("/usr/bin/true", os.environ)


def test_missing_compiler_name() -> None:
    with pytest.raises(FingerprintError, match="'no-such-cc' was not found on PATH"):
        probe("no-such-cc", os.environ)


def test_missing_compiler_path(tmp_path: Path) -> None:
    with pytest.raises(FingerprintError, match="does not exist; check the path"):
        probe(str(tmp_path / "gcc"), os.environ)


def test_non_executable_files_are_refused(tmp_path: Path) -> None:
    plain = tmp_path / "gcc"
    plain.write_text("#!/bin/sh\n")
    for path in (plain, tmp_path):
        with pytest.raises(FingerprintError, match="is not an executable file"):
            probe(str(path), os.environ)


def test_unrunnable_file_is_refused(tmp_path: Path) -> None:
    garbage = tmp_path / "gcc"
    garbage.write_bytes(b"\x00\x01\x02 not an executable format")
    garbage.chmod(0o755)
    with pytest.raises(FingerprintError, match=r"cannot run .*Exec format error"):
        probe(str(garbage), os.environ)


# --- hashing ------------------------------------------------------------------------------


def test_hash_file_follows_content(tmp_path: Path) -> None:
    path = tmp_path / "binary"
    path.write_bytes(b"one")
    first, first_stamp = hash_file(str(path))
    path.write_bytes(b"two!")
    second, second_stamp = hash_file(str(path))
    assert first == hashlib.sha256(b"one").hexdigest()
    assert second == hashlib.sha256(b"two!").hexdigest()
    assert first_stamp != second_stamp
