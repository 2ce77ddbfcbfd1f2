"""Compiler fingerprints: which exact compiler a command runs, as a short stable id.

The probe (`p2pcc.compilers.probe`) runs the compiler and hashes its binaries; this
module turns those facts into a `Fingerprint`.  The id is the first 8 bytes of a SHA-256
over a length-prefixed encoding of family, language, target triple, full version and
the content hash of every code-generating binary keyed by its *role* ("driver", "cc1",
"as", "lib:libLLVM-14.so.1"), never by its path, so the same compiler installed under
another prefix gets the same id.  Language comes from the names the compiler was
invoked by (clang and clang++ are one file).  Rules on names and caps live here so the
daemon and the CLI agree; nothing here touches the filesystem.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from p2pcc.core import limits
from p2pcc.core.errors import FingerprintError
from p2pcc.core.model import CompilerOffer

FAMILIES = ("gcc", "clang")
LANGUAGES = ("c", "c++")

#: Bumped if the id encoding changes, so old and new ids can never collide by accident.
ID_SCHEME = "p2pcc-fingerprint-1"

_VERSION = re.compile(r"\d+(?:\.\d+){0,3}")
_CLANG_BANNER = re.compile(r"\bclang version (\d+(?:\.\d+){0,3})")
_GCC_BANNER = re.compile(r"\) (\d+(?:\.\d+){0,3})(?:\s|$)")
#: From the copyright notice every GCC driver prints; other GNU tools word it differently.
_GCC_NOTICE = "This is free software; see the source for copying conditions."
_TRIPLE = re.compile(r"[A-Za-z0-9_.]+(?:-[A-Za-z0-9_.]+){1,4}")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_ROLE = re.compile(r"[A-Za-z0-9_.:+-]{1,64}")
#: Characters a remote compiler name may hold: distcc passes it as argv[0] to distccd.
_REMOTE_NAME = re.compile(r"[A-Za-z0-9_.+-]+")


@dataclass(frozen=True, slots=True)
class HashedBinary:
    """One file whose bytes decide the object code, and what it does in the pipeline."""

    role: str  # "driver", "cc1", "cc1plus", "as" or "lib:<soname>"
    path: str
    sha256: str  # 64 lowercase hex digits


@dataclass(frozen=True, slots=True)
class ProbeFacts:
    """What running and hashing a compiler revealed; independent of the name it was run by."""

    family: str
    triple: str
    version: str
    binaries: tuple[HashedBinary, ...]


@dataclass(frozen=True, slots=True)
class RemoteNameCheck:
    """One candidate remote name and why it was taken or passed over."""

    name: str
    accepted: bool
    detail: str  # where it was found, or why it does not qualify


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """An exact compiler: its id, what it is, and how a peer's distccd names it."""

    id: str  # 16 hex characters
    command: str  # the invoked path (PATH-resolved, symlinks kept)
    real_path: str
    family: str
    language: str
    triple: str
    version: str
    loose_key: str
    remote_name: str
    binaries: tuple[HashedBinary, ...]
    remote_name_checks: tuple[RemoteNameCheck, ...] = ()

    @property
    def major(self) -> str:
        """The major version, e.g. "12"."""
        return major_of(self.version)

    def to_offer(self) -> CompilerOffer:
        """The gossip record announcing this compiler to peers."""
        return CompilerOffer(self.id, self.loose_key, self.remote_name)


def parse_banner(text: str) -> tuple[str, str]:
    """Family and version from `--version` output; FingerprintError if neither gcc nor clang."""
    clang = _CLANG_BANNER.search(text)
    if clang:
        return "clang", clang.group(1)
    first_line = text.split("\n", 1)[0]
    gcc = _GCC_BANNER.search(first_line)
    if gcc and _GCC_NOTICE in text:
        return "gcc", gcc.group(1)
    raise FingerprintError(f"its --version output does not name gcc or clang: {excerpt(text)}")


def parse_version(text: str) -> str:
    """A dotted version from `-dumpfullversion`/`-dumpversion`; FingerprintError otherwise."""
    version = text.strip()
    if not _VERSION.fullmatch(version):
        raise FingerprintError(f"it printed {excerpt(text)} instead of a version number")
    return version


def parse_triple(text: str) -> str:
    """The target triple from `-dumpmachine`; FingerprintError otherwise."""
    triple = text.strip()
    if not _TRIPLE.fullmatch(triple):
        raise FingerprintError(f"-dumpmachine printed {excerpt(text)} instead of a target triple")
    return triple


def major_of(version: str) -> str:
    """The first component of a dotted version."""
    return version.split(".", 1)[0]


def loose_key(triple: str, version: str) -> str:
    """`"<triple>--<major>"`, the compiler key of stock distcc's zeroconf mode."""
    key = f"{triple}--{major_of(version)}"
    if len(key) > limits.MAX_LOOSE_KEY:
        raise FingerprintError(
            f"the loose key {key!r} is longer than {limits.MAX_LOOSE_KEY} characters, "
            "so this compiler cannot be announced to peers"
        )
    return key


def language_from_names(names: Iterable[str]) -> str:
    """ "c++" if any name the compiler was reached through contains "++", else "c"."""
    return "c++" if any("++" in name for name in names) else "c"


def driver_name(family: str, language: str) -> str:
    """The conventional driver name: gcc, g++, clang or clang++."""
    if family == "gcc":
        return "g++" if language == "c++" else "gcc"
    return "clang++" if language == "c++" else "clang"


def remote_name_candidates(
    family: str, language: str, triple: str, version: str, *, real_basename: str, invoked: str
) -> list[str]:
    """Remote names to try, most specific first, without duplicates.

    `<triple>-<driver>-<major>`, `<driver>-<major>`, the real binary's basename, and
    last the invoked basename (the only candidate left when, say, clang++ is a symlink
    to plain `clang` and no `clang++-<major>` exists).
    """
    driver = driver_name(family, language)
    major = major_of(version)
    names = [f"{triple}-{driver}-{major}", f"{driver}-{major}", real_basename, invoked]
    return list(dict.fromkeys(names))


def remote_name_problem(name: str) -> str | None:
    """Why `name` cannot be announced as a remote name, or None if it can."""
    if len(name) > limits.MAX_REMOTE_NAME:
        return f"longer than {limits.MAX_REMOTE_NAME} characters"
    if not _REMOTE_NAME.fullmatch(name):
        return "holds characters other than letters, digits and . _ + -"
    return None


def choose_remote_name(checks: Iterable[RemoteNameCheck]) -> str:
    """The first accepted candidate; FingerprintError naming every rejection if none is."""
    checks = tuple(checks)
    for check in checks:
        if check.accepted:
            return check.name
    tried = "; ".join(f"{check.name}: {check.detail}" for check in checks)
    raise FingerprintError(
        f"no name reaches this exact compiler unambiguously ({tried}); "
        "install a versioned name such as gcc-12 or clang-14"
    )


def fingerprint_id(
    family: str, language: str, triple: str, version: str, hashes: Mapping[str, str]
) -> str:
    """16 hex characters: the truncated SHA-256 of the canonical encoding of these facts.

    `hashes` maps role -> SHA-256 hex.  Every field is length-prefixed (netstring
    style), so no choice of values can make two different fact sets encode alike.
    """
    _check_facts(family, language, hashes)
    fields = [ID_SCHEME, family, language, triple, version]
    for role in sorted(hashes):
        fields += [role, hashes[role]]
    encoded = b"".join(b"%d:%s," % (len(data), data) for data in (f.encode() for f in fields))
    return hashlib.sha256(encoded).digest()[: limits.FINGERPRINT_BYTES].hex()


def _check_facts(family: str, language: str, hashes: Mapping[str, str]) -> None:
    if family not in FAMILIES:
        raise ValueError(f"unknown compiler family {family!r}")
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}")
    for role, digest in hashes.items():
        if not _ROLE.fullmatch(role) or not _SHA256_HEX.fullmatch(digest):
            raise ValueError(f"bad binary hash {role!r}: {digest!r}")


def build_fingerprint(
    facts: ProbeFacts,
    command: str,
    real_path: str,
    language: str,
    checks: Iterable[RemoteNameCheck],
) -> Fingerprint:
    """Derive the full fingerprint of `facts` reached as `command` in `language`."""
    checks = tuple(checks)
    hashes = {binary.role: binary.sha256 for binary in facts.binaries}
    return Fingerprint(
        id=fingerprint_id(facts.family, language, facts.triple, facts.version, hashes),
        command=command,
        real_path=real_path,
        family=facts.family,
        language=language,
        triple=facts.triple,
        version=facts.version,
        loose_key=loose_key(facts.triple, facts.version),
        remote_name=choose_remote_name(checks),
        binaries=facts.binaries,
        remote_name_checks=checks,
    )


def excerpt(text: str, limit: int = 60) -> str:
    """`text` quoted and shortened for an error message (compiler output can be anything)."""
    flat = " ".join(text.split())
    if not flat:
        return "nothing"
    return repr(flat if len(flat) <= limit else flat[: limit - 1] + "…")
