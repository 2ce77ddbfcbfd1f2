"""Probing a compiler command into a `Fingerprint`, reusing the on-disk cache when it can.

`lookup` is the full lookup the CLI and the daemon use: resolve the command on PATH,
take the cached probe facts if the compiler and every hashed binary still have the
stamps recorded, else `probe_facts` (run the compiler, hash its binaries) and store
the result.  Language and remote name are re-derived on every lookup from names and
symlinks alone, which costs no process.

Every process runs without a shell, with `LC_ALL=C`, a timeout and capped output, so a
hanging or babbling "compiler" costs bounded time and memory and ends in a
FingerprintError that names the command and says what to do.
"""

from __future__ import annotations

import hashlib
import os
import selectors
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass

from p2pcc.compilers import cache
from p2pcc.core import limits
from p2pcc.core.errors import FingerprintError
from p2pcc.core.fingerprint import (
    Fingerprint,
    HashedBinary,
    ProbeFacts,
    RemoteNameCheck,
    build_fingerprint,
    excerpt,
    language_from_names,
    parse_banner,
    parse_triple,
    parse_version,
    remote_name_candidates,
    remote_name_problem,
)
from p2pcc.statefile import stamp_of

#: Seconds one probe command may take; a real compiler answers in milliseconds.
PROBE_TIMEOUT = 10.0

#: What `p2pcc fingerprint` shows when no compiler is named (those found on PATH).
DEFAULT_COMPILERS = ("cc", "gcc", "g++", "c++", "clang", "clang++")

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

#: Linux gives up on a symlink chain after 40 hops (ELOOP); so do we.
MAX_SYMLINK_HOPS = 40

_CHUNK = 65536


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
    return [name for name in DEFAULT_COMPILERS if shutil.which(name, path=_path(env))]


def resolve_command(command: str, env: Mapping[str, str]) -> str:
    """The absolute invoked path of `command`, symlinks kept; FingerprintError if missing."""
    if "/" in command:
        path = os.path.abspath(command)
        if not os.path.exists(path):
            raise FingerprintError(f"compiler {path} does not exist; check the path")
        return path
    found = shutil.which(command, path=_path(env))
    if found is None:
        raise FingerprintError(
            f"compiler {command!r} was not found on PATH; install it or give its full path"
        )
    return os.path.abspath(found)


def symlink_names(path: str) -> list[str]:
    """The basenames `path` goes through to reach its file: c++, c++, g++, g++-12, ..."""
    names = [os.path.basename(path)]
    current = path
    for _ in range(MAX_SYMLINK_HOPS):
        try:
            target = os.readlink(current)
        except OSError:  # not a symlink (any more): the chain ends here
            break
        current = os.path.join(os.path.dirname(current), target)
        names.append(os.path.basename(target))
    return names


def derive(facts: ProbeFacts, invoked: str, env: Mapping[str, str]) -> Fingerprint:
    """The fingerprint of `facts` reached through `invoked`: language, remote name, id."""
    real = os.path.realpath(invoked)
    language = language_from_names(symlink_names(invoked))
    checks = check_remote_names(facts, invoked, real, language, env)
    try:
        return build_fingerprint(facts, invoked, real, language, checks)
    except FingerprintError as error:
        raise FingerprintError(f"{invoked}: {error}") from None


def check_remote_names(
    facts: ProbeFacts, invoked: str, real: str, language: str, env: Mapping[str, str]
) -> tuple[RemoteNameCheck, ...]:
    """Candidate remote names checked in order, up to and including the first that fits."""
    names = remote_name_candidates(
        facts.family,
        language,
        facts.triple,
        facts.version,
        real_basename=os.path.basename(real),
        invoked=os.path.basename(invoked),
    )
    checks: list[RemoteNameCheck] = []
    for name in names:
        checks.append(_check_remote_name(name, real, language, env))
        if checks[-1].accepted:
            break
    return tuple(checks)


def _check_remote_name(
    name: str, real: str, language: str, env: Mapping[str, str]
) -> RemoteNameCheck:
    problem = remote_name_problem(name)
    if problem:
        return RemoteNameCheck(name, False, problem)
    rejections: list[str] = []
    locations = [shutil.which(name, path=_path(env)), os.path.join(os.path.dirname(real), name)]
    for location in dict.fromkeys(loc for loc in locations if loc and os.path.isfile(loc)):
        if os.path.realpath(location) != real:
            rejections.append(f"{location} is another binary")
        elif language_from_names(symlink_names(location)) != language:
            rejections.append(f"{location} does not mean {language.upper()}")
        else:
            return RemoteNameCheck(name, True, location)
    return RemoteNameCheck(name, False, "; ".join(rejections) or "not found")


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
        family, banner_version = parse_banner(_ask(invoked, "--version", run_env))
        triple = parse_triple(_ask(invoked, "-dumpmachine", run_env))
        if family == "gcc":
            version = parse_version(_ask(invoked, "-dumpfullversion", run_env))
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
        path = _ask(invoked, f"-print-prog-name={name}", env).strip()
        if os.path.isabs(path) and os.path.isfile(path):  # a bare name means "not installed"
            programs.append((name, os.path.realpath(path)))
    if not programs:
        raise FingerprintError(
            f"{invoked} cannot locate its compiler proper (cc1 or cc1plus); "
            "its installation is incomplete, reinstall it"
        )
    assembler = _ask(invoked, "-print-prog-name=as", env).strip()
    # A bare answer means gcc will look the assembler up on PATH, so we do the same.
    found = assembler if os.path.isabs(assembler) else shutil.which(assembler, path=_path(env))
    if not found or not os.path.isfile(found):
        raise FingerprintError(
            f"{invoked} needs the assembler {assembler!r}, which is not installed; install binutils"
        )
    return [*programs, ("as", os.path.realpath(found))]


def _codegen_libraries(
    programs: list[tuple[str, str]], env: dict[str, str]
) -> list[tuple[str, str]]:
    """(role "lib:<soname>", real path) of each CODEGEN_LIBRARIES library the programs load."""
    ldd = shutil.which("ldd", path=_path(env)) or shutil.which("ldd", path="/usr/bin:/bin")
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


def _ask(compiler: str, flag: str, env: dict[str, str]) -> str:
    """The standard output of `compiler flag`, which must succeed."""
    returncode, output, errors = run_capped([compiler, flag], env)
    if returncode != 0:
        raise FingerprintError(
            f"'{os.path.basename(compiler)} {flag}' failed with status {returncode} "
            f"and said {excerpt(errors or output)}"
        )
    return output


def run_capped(
    argv: list[str],
    env: Mapping[str, str],
    timeout: float = PROBE_TIMEOUT,
    cap: int = limits.MAX_PROBE_OUTPUT,
) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of `argv`, killed past `timeout` s or `cap` bytes."""
    try:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env),
            process_group=0,  # so a timeout kills whatever it spawned too
        )
    except OSError as error:
        raise FingerprintError(
            f"cannot run {argv[0]} ({error.strerror}); give the path of a gcc or clang compiler"
        ) from None
    shown = " ".join([os.path.basename(argv[0]), *argv[1:]])
    deadline = time.monotonic() + timeout
    with process:
        try:
            stdout, stderr = _read_capped(process, deadline, cap, shown)
            returncode = process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise _timed_out(shown, timeout) from None
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
    return returncode, stdout.decode("utf-8", "replace"), stderr.decode("utf-8", "replace")


def _read_capped(
    process: subprocess.Popen[bytes], deadline: float, cap: int, shown: str
) -> tuple[bytes, bytes]:
    if process.stdout is None or process.stderr is None:
        raise RuntimeError("run_capped opens both pipes")
    out, err = process.stdout.fileno(), process.stderr.fileno()
    buffers = {out: bytearray(), err: bytearray()}
    with selectors.DefaultSelector() as selector:
        for fd in buffers:
            selector.register(fd, selectors.EVENT_READ)
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise subprocess.TimeoutExpired(shown, remaining)
            for key, _ in selector.select(remaining):
                chunk = os.read(key.fd, _CHUNK)
                if not chunk:
                    selector.unregister(key.fd)
                    continue
                buffers[key.fd] += chunk
                if len(buffers[key.fd]) > cap:
                    raise FingerprintError(
                        f"'{shown}' printed more than {cap} bytes; "
                        "check that it is a working compiler"
                    )
    return bytes(buffers[out]), bytes(buffers[err])


def _timed_out(shown: str, timeout: float) -> FingerprintError:
    return FingerprintError(
        f"'{shown}' did not finish within {timeout:g} s; check that it is a working compiler"
    )


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


def compiler_search_path(env: Mapping[str, str]) -> str:
    """PATH without p2pcc's link directories: a compiler name means the real compiler,
    never our own masquerade link in front of it."""
    from p2pcc.wrapper.lookup import path_dirs, without_link_dirs

    return os.pathsep.join(without_link_dirs(path_dirs(env.get("PATH", os.defpath))))


def _path(env: Mapping[str, str]) -> str:
    return compiler_search_path(env)
