"""Probing a compiler command into a `Fingerprint`, reusing the on-disk cache when it can.

`lookup` is the full lookup the CLI and the daemon use: resolve the command on PATH,
take the cached probe facts if the compiler and every hashed binary still have the
stamps recorded, else `probe_facts` (run the compiler, find the binaries that turn
source into object code, hash them) and store the result.  Language and remote name are
re-derived on every lookup from names and symlinks alone (`p2pcc.compilers.names`),
which costs no process.  Every command runs through `p2pcc.compilers.run_capped`, with
`LC_ALL=C`: bounded in time and output, never through a shell.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass

from p2pcc.compilers import cache
from p2pcc.compilers.names import derive, resolve_command, which
from p2pcc.compilers.run_capped import ask, run_capped
from p2pcc.config.schema import DEFAULT_COMPILERS
from p2pcc.core.errors import FingerprintError
from p2pcc.core.fingerprint import (
    Fingerprint,
    HashedBinary,
    ProbeFacts,
    parse_banner,
    parse_triple,
    parse_version,
)
from p2pcc.statefile import stamp_of

#: Shared libraries that hold code generation (clang's whole compiler lives in libLLVM
#: and libclang-cpp; cc1 folds constants with gmp/mpfr/mpc and optimises loops with
#: isl; `as` encodes and writes objects with libbfd/libopcodes).  The C runtime and
#: incidental libraries (libc, libstdc++, libz, libxml2 ...) are left out: updating
#: them does not change object code, and hashing them would split peers for nothing.
CODEGEN_LIBRARIES = (
    "libLLVM",
    "libclang",
    "libisl",
    "libmpc",
    "libmpfr",
    "libgmp",
    "libbfd",
    "libopcodes",
    "libsframe",
)


@dataclass(frozen=True, slots=True)
class Probed:
    """Fresh probe facts with the stamps that tell later lookups whether they still hold."""

    facts: ProbeFacts
    stamp: str  # of the file the command resolves to
    binary_stamps: dict[str, str]  # path -> stamp, for every hashed binary


def lookup(command: str, env: Mapping[str, str], *, use_cache: bool = True) -> Fingerprint:
    """The fingerprint of `command` (a name on PATH or a path), cached across calls."""
    invoked = resolve_command(command, env)
    cache_path = cache.cache_file(env) if use_cache else None
    cached = _current_cache_entry(invoked, cache_path) if cache_path else None
    if cached is not None:
        facts, stamp, binary_stamps, line = cached
    else:
        probed = probe_facts(invoked, env)
        facts, stamp, binary_stamps, line = (probed.facts, probed.stamp, probed.binary_stamps, "")
    fingerprint = derive(facts, invoked, env)
    if cache_path:
        new_line = cache.encode_entry(fingerprint, stamp, binary_stamps)
        if new_line != line:  # new probe, or language / remote name changed
            cache.store(cache_path, new_line)
    return fingerprint


def probe(command: str, env: Mapping[str, str]) -> Fingerprint:
    """The fingerprint of `command`, probed afresh (no cache read or written)."""
    return lookup(command, env, use_cache=False)


def default_compilers(env: Mapping[str, str]) -> list[str]:
    """The DEFAULT_COMPILERS names that exist on PATH, in that order."""
    return [name for name in DEFAULT_COMPILERS if which(name, env)]


def probe_facts(invoked: str, env: Mapping[str, str]) -> Probed:
    """Run the compiler at `invoked` and hash its code-generating binaries."""
    real = os.path.realpath(invoked)
    if not (os.path.isfile(real) and os.access(real, os.X_OK)):
        raise FingerprintError(
            f"{invoked} is not an executable file; give the path of a gcc or clang compiler"
        )
    stamp = stamp_of(os.stat(real))
    run_env = {**env, "LC_ALL": "C"}
    try:
        family, banner_version = parse_banner(ask(invoked, "--version", run_env))
        triple = parse_triple(ask(invoked, "-dumpmachine", run_env))
        if family == "gcc":
            version = parse_version(ask(invoked, "-dumpfullversion", run_env))
        else:
            version = banner_version
    except FingerprintError as error:
        raise FingerprintError(
            f"{invoked} is not a usable gcc or clang: {error}; "
            "give the path of a gcc or clang compiler"
        ) from None
    programs = [("driver", real)]
    if family == "gcc":
        programs += _gcc_programs(invoked, run_env)
    programs += _codegen_libraries(programs, run_env)
    binaries, stamps = _hash_all(programs)
    return Probed(ProbeFacts(family, triple, version, binaries), stamp, stamps)


def _gcc_programs(invoked: str, env: dict[str, str]) -> list[tuple[str, str]]:
    """cc1 and cc1plus (each if installed) and the assembler gcc will run."""
    programs = []
    for name in ("cc1", "cc1plus"):
        path = ask(invoked, f"-print-prog-name={name}", env).strip()
        if os.path.isabs(path) and os.path.isfile(path):  # a bare name means "not installed"
            programs.append((name, os.path.realpath(path)))
    if not programs:
        raise FingerprintError(
            f"{invoked} cannot locate its compiler proper (cc1 or cc1plus); "
            "its installation is incomplete, reinstall it"
        )
    assembler = ask(invoked, "-print-prog-name=as", env).strip()
    # A bare answer means gcc will look the assembler up on PATH, so we do the same.
    found = assembler if os.path.isabs(assembler) else which(assembler, env)
    if not found or not os.path.isfile(found):
        raise FingerprintError(
            f"{invoked} needs the assembler {assembler!r}, which is not installed; install binutils"
        )
    return [*programs, ("as", os.path.realpath(found))]


def _codegen_libraries(
    programs: list[tuple[str, str]], env: dict[str, str]
) -> list[tuple[str, str]]:
    """(role "lib:<soname>", real path) of each CODEGEN_LIBRARIES library the programs load."""
    ldd = which("ldd", env) or shutil.which("ldd", path="/usr/bin:/bin")
    if ldd is None:
        return []
    libraries: dict[str, str] = {}
    for _, path in programs:
        returncode, output, _ = run_capped([ldd, path], env)
        if returncode != 0:  # static binary or script: "not a dynamic executable"
            continue
        for line in output.splitlines():
            soname, arrow, rest = line.strip().partition(" => ")
            location = rest.split(" (", 1)[0]
            if arrow and soname.startswith(CODEGEN_LIBRARIES) and os.path.isabs(location):
                libraries.setdefault(f"lib:{soname}", os.path.realpath(location))
    return sorted(libraries.items())


def _hash_all(programs: list[tuple[str, str]]) -> tuple[tuple[HashedBinary, ...], dict[str, str]]:
    binaries = []
    stamps = {}
    for role, path in programs:
        digest, stamps[path] = hash_file(path)
        binaries.append(HashedBinary(role, path, digest))
    return tuple(binaries), stamps


#: path -> (stamp, sha256): the daemon re-probes on every change of any file, and
#: clang's libraries are 170 MB, so each version of a file is hashed once per process.
_hashed: dict[str, tuple[str, str]] = {}


def hash_file(path: str) -> tuple[str, str]:
    """SHA-256 (hex) of the file at `path` and its stamp, taken before reading."""
    try:
        with open(path, "rb") as file:
            stamp = stamp_of(os.fstat(file.fileno()))
            known = _hashed.get(path)
            if known and known[0] == stamp:
                return known[1], stamp
            digest = hashlib.file_digest(file, "sha256").hexdigest()
    except OSError as error:
        raise FingerprintError(
            f"cannot read {path} to hash it ({error.strerror}); check its permissions"
        ) from None
    _hashed[path] = (stamp, digest)
    return digest, stamp


def _current_cache_entry(
    invoked: str, cache_path: str
) -> tuple[ProbeFacts, str, dict[str, str], str] | None:
    """Facts, stamps and line of the cache entry of `invoked` if every stamp still holds."""
    try:
        stamp = stamp_of(os.stat(invoked))
    except OSError:
        return None
    prefix = f"{invoked}\t{stamp}\t"
    for line in cache.read_lines(cache_path):
        if not line.startswith(prefix):
            continue
        decoded = cache.decode_entry(line.split("\t"))
        if decoded is None or not _stamps_hold(decoded[1]):
            return None
        return decoded[0], stamp, decoded[1], line
    return None


def _stamps_hold(stamps: Mapping[str, str]) -> bool:
    for path, stamp in stamps.items():
        try:
            if stamp_of(os.stat(path)) != stamp:
                return False
        except OSError:
            return False
    return True
