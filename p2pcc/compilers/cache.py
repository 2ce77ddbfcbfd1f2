"""The on-disk fingerprint cache, read on every compiler call by the per-compile wrapper.

That call path must stay nearly free, so this module imports only `os` (and
`p2pcc.statefile` and `p2pcc.safe_files`, which the wrapper has loaded already) at load
time (no json, dataclasses or typing: each costs milliseconds) and `lookup_cached` costs
one `os.stat` of the compiler plus one read of a small file.

Format (UTF-8 text with surrogateescape for odd path bytes; one entry per line; fields
separated by tabs; described with examples in docs/fingerprints.md):

    p2pcc-fingerprints 1
    <command> <stamp> <id> <family> <language> <loose key> <remote name> <triple> <version>
        then, once per hashed binary: <role> <path> <sha256> <stamp>

`command` is the invoked path (PATH-resolved, symlinks kept: clang and clang++ are one
file but two fingerprints) and `stamp` is "dev:inode:size:mtime_ns" of the file it
resolves to.  An entry whose command stamp differs is stale.  A file that does not start
with the exact header, or is larger than MAX_BYTES, is ignored as a whole; a line that
does not parse is ignored alone.  Either way the next full lookup rewrites the file.
Writers replace the whole file atomically (temp file + rename), so readers never see a
half-written file and concurrent writers cost at most an entry, never a crash.
"""

from __future__ import annotations

import os

from p2pcc.safe_files import read_regular_file, replace_file  # posix only; the wrapper has it
from p2pcc.statefile import stamp_of  # the wrapper has it too

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from p2pcc.core.fingerprint import Fingerprint, ProbeFacts

HEADER = "p2pcc-fingerprints 1"
FILE_NAME = "fingerprints"

#: An entry is ~1 KiB (clang with its libraries); refuse to read anything absurd.
MAX_BYTES = 1 << 20

#: Entries kept, newest last.  A workstation has a handful of compilers; the cap only
#: stops a stream of distinct paths (say, a build system's temporary toolchains) from
#: growing the file past MAX_BYTES, at which point everything would be ignored.
MAX_ENTRIES = 128

_HEAD_FIELDS = 9  # command .. version; binaries follow as (role, path, sha256, stamp)
_HEX = frozenset("0123456789abcdef")
_ENCODING = ("utf-8", "surrogateescape")


class CacheHit:
    """What the per-compile wrapper needs about one compiler, straight from the cache."""

    __slots__ = ("family", "fingerprint", "language", "loose_key", "remote_name")

    def __init__(self, fields: list[str]) -> None:
        self.fingerprint = fields[2]
        self.family = fields[3]
        self.language = fields[4]
        self.loose_key = fields[5]
        self.remote_name = fields[6]


def cache_file(env: Mapping[str, str]) -> str:
    """The cache file's path: `P2PCC_CACHE_DIR`, else the user cache dir, + FILE_NAME."""
    # Imported here: p2pcc.paths pulls in pathlib, which the hot path must not pay for.
    from p2pcc.paths import cache_dir

    return os.path.join(cache_dir(env), FILE_NAME)


def lookup_cached(command: str, cache_path: str) -> CacheHit | None:
    """The cached fingerprint of `command` (an invoked path) if still current, else None.

    Trusts the stamp of `command` alone; helper binaries (cc1, as) are re-checked only
    by the full lookup the CLI and the daemon run.
    """
    try:
        stamp = stamp_of(os.stat(command))
    except (OSError, ValueError):
        return None
    prefix = command + "\t"
    for line in read_lines(cache_path):
        if line.startswith(prefix):
            fields = line.split("\t")
            if well_formed(fields) and fields[1] == stamp:
                return CacheHit(fields)
            return None
    return None


def read_lines(cache_path: str) -> list[str]:
    """The entry lines of the cache file; [] if it is missing, unreadable or not ours."""
    data = read_regular_file(cache_path, MAX_BYTES + 1)
    if data is None or len(data) > MAX_BYTES:
        return []
    lines = data.decode(*_ENCODING).split("\n")
    if lines[0] != HEADER:
        return []
    return [line for line in lines[1:] if line]


def well_formed(fields: list[str]) -> bool:
    """Whether an entry's fields have the right shape (values are checked by their users)."""
    return (
        len(fields) >= _HEAD_FIELDS + 4
        and (len(fields) - _HEAD_FIELDS) % 4 == 0
        and len(fields[2]) == 16
        and _HEX.issuperset(fields[2])
        and fields[3] in ("gcc", "clang")
        and fields[4] in ("c", "c++")
    )


def encode_entry(fingerprint: Fingerprint, stamp: str, binary_stamps: Mapping[str, str]) -> str:
    """The cache line for `fingerprint`; `binary_stamps` maps each binary's path to its stamp."""
    fields = [
        fingerprint.command,
        stamp,
        fingerprint.id,
        fingerprint.family,
        fingerprint.language,
        fingerprint.loose_key,
        fingerprint.remote_name,
        fingerprint.triple,
        fingerprint.version,
    ]
    for binary in fingerprint.binaries:
        fields += [binary.role, binary.path, binary.sha256, binary_stamps[binary.path]]
    return "\t".join(fields)


def decode_entry(fields: list[str]) -> tuple[ProbeFacts, dict[str, str]] | None:
    """The probe facts of a well-formed entry and its binaries' stamps, None if invalid."""
    # Imported here: dataclasses costs ~10 ms, and the hot path never decodes facts.
    from p2pcc.core.fingerprint import HashedBinary, ProbeFacts

    if not well_formed(fields):
        return None
    binaries = []
    stamps = {}
    for start in range(_HEAD_FIELDS, len(fields), 4):
        role, path, sha256, stamp = fields[start : start + 4]
        if len(sha256) != 64 or not _HEX.issuperset(sha256):
            return None
        binaries.append(HashedBinary(role, path, sha256))
        stamps[path] = stamp
    return ProbeFacts(fields[3], fields[7], fields[8], tuple(binaries)), stamps


def store(cache_path: str, line: str) -> bool:
    """Add or replace the entry in `line` (keyed by its command); False if it could not.

    Never raises for I/O: an unwritable cache only means the next lookup probes again.
    """
    if "\n" in line or "\r" in line:
        return False
    prefix = line.split("\t", 1)[0] + "\t"
    kept = [
        old
        for old in read_lines(cache_path)
        if not old.startswith(prefix) and well_formed(old.split("\t"))
    ]
    kept = [*kept[-(MAX_ENTRIES - 1) :], line]
    try:
        data = "".join(f"{entry}\n" for entry in [HEADER, *kept]).encode(*_ENCODING)
    except UnicodeError:
        return False
    if len(data) > MAX_BYTES:
        return False
    try:
        os.makedirs(os.path.dirname(cache_path) or ".", mode=0o700, exist_ok=True)
        replace_file(cache_path, data, mode=0o600)
    except OSError:
        return False
    return True
