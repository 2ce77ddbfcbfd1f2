"""The state file: how the daemon tells the per-compile wrapper where to send jobs.

The daemon rewrites it atomically (temp file + rename) on every material change and at
least every few seconds; the wrapper reads it on every compiler call.  That call path
must stay nearly free, so this module imports only `p2pcc.safe_files` (which imports
only `posix`: not even `os`, which the wrapper's `-I -S` interpreter has not loaded) and
uses plain tuples and dicts: no dataclasses, typing, json or enum (each costs
milliseconds at import).

Format (UTF-8 text, tab-separated, one record per line):

    p2pcc-state 1
    written <unix seconds, float>
    hosts <fingerprint> <recommended -j> <DISTCC_HOSTS line>
    compiler <path> <dev:inode:size:mtime_ns> <fingerprint> <remote name>
    native <fingerprint> <key> <flag> <flag> ...
    ...

`compiler` records let the wrapper name its compiler's fingerprint with one `stat`: the
path is as found on PATH (symlinks kept: clang and clang++ are one file but two
compilers), the stamp is that of the file it resolves to, as `compilers.cache` keeps it.

`native` records give, per compiler and per combination of `-march=native`-style flags
(the key, `p2pcc.wrapper.native.native_key`), the explicit flags they mean on this
machine, so the wrapper can send such compiles to peers (docs/wrapper.md).  A key with
no record means "compile it here".

Unknown record types are ignored so a newer daemon can add records.  A file that does
not start with the exact header line is not a state file: the reader returns None and
the wrapper compiles locally.
"""

from p2pcc.safe_files import read_regular_file

TYPE_CHECKING = False
if TYPE_CHECKING:
    import os

HEADER = "p2pcc-state 1"
FILE_NAME = "state"
MAX_BYTES = 1 << 20  # a state file is a few KiB; refuse to read anything absurd


def stamp_of(status: "os.stat_result") -> str:
    """A file's stamp as `compiler` records and the fingerprint cache key it,
    "dev:inode:size:mtime_ns": it changes whenever the file is replaced or rewritten."""
    return f"{status.st_dev}:{status.st_ino}:{status.st_size}:{status.st_mtime_ns}"


def render(
    written_at: float,
    hosts: dict[str, tuple[int, str]],
    compilers: dict[str, tuple[str, str, str]] | None = None,
    natives: dict[str, dict[str, tuple[str, ...]]] | None = None,
) -> str:
    """The file's text for `hosts` (fingerprint -> (recommended -j, DISTCC_HOSTS line)),
    `compilers` (path -> (stamp, fingerprint, remote name)) and `natives` (fingerprint
    -> key -> explicit flags)."""
    lines = [HEADER, f"written\t{written_at!r}"]
    for fingerprint, (jobs, line) in sorted(hosts.items()):
        lines.append(_record("hosts", fingerprint, str(jobs), line))
    for path, (stamp, fingerprint, remote_name) in sorted((compilers or {}).items()):
        lines.append(_record("compiler", path, stamp, fingerprint, remote_name))
    for fingerprint, by_key in sorted((natives or {}).items()):
        for key, flags in sorted(by_key.items()):
            lines.append(_record("native", fingerprint, key, *flags))
    return "\n".join(lines) + "\n"


def _record(*fields: str) -> str:
    for field in fields:
        if "\t" in field or "\n" in field:
            raise ValueError(f"{fields[0]} record field {field!r} contains a tab or newline")
    return "\t".join(fields)


#: What `parse` and `read` return: written_at, hosts, compilers, natives.
Parsed = tuple[
    float,
    dict[str, tuple[int, str]],
    dict[str, tuple[str, str, str]],
    dict[str, dict[str, tuple[str, ...]]],
]


def parse(text: str, *, native_key: str | None = None) -> Parsed | None:
    """(written_at, hosts, compilers, natives) from a state file's text, or None.

    Of the `native` records (many long lines a command without `-march=native` has no
    use for) only those of `native_key` are kept, none when it is None.
    """
    lines = text.split("\n")
    if lines[0] != HEADER:
        return None
    written_at = None
    hosts: dict[str, tuple[int, str]] = {}
    compilers: dict[str, tuple[str, str, str]] = {}
    expansions: dict[str, dict[str, tuple[str, ...]]] = {}
    for line in lines[1:]:
        if line.startswith("native\t") and not _has_key(line, native_key):
            continue
        fields = line.split("\t")
        try:
            if fields[0] == "written" and len(fields) == 2:
                written_at = float(fields[1])
            elif fields[0] == "hosts" and len(fields) == 4:
                hosts[fields[1]] = (int(fields[2]), fields[3])
            elif fields[0] == "compiler" and len(fields) == 5:
                compilers[fields[1]] = (fields[2], fields[3], fields[4])
            elif fields[0] == "native" and len(fields) >= 3:
                expansions.setdefault(fields[1], {})[fields[2]] = tuple(fields[3:])
        except ValueError:
            return None
    # Comparisons are False for NaN, so this also rejects "nan" and "inf".
    if written_at is None or not -1e18 < written_at < 1e18:
        return None
    return written_at, hosts, compilers, expansions


def _has_key(native_line: str, native_key: str | None) -> bool:
    if native_key is None:
        return False
    fields = native_line.split("\t", 3)  # the flags, the bulk of the line, stay unsplit
    return len(fields) > 2 and fields[2] == native_key


def read(path: str, *, native_key: str | None = None) -> Parsed | None:
    """`parse` the state file at `path`; None when missing, unreadable, oversized, corrupt
    or not a regular file."""
    data = read_regular_file(path, MAX_BYTES + 1)
    if data is None or len(data) > MAX_BYTES:
        return None
    try:
        return parse(data.decode("utf-8"), native_key=native_key)
    except UnicodeDecodeError:
        return None
