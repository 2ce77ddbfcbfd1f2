"""The state file: how the daemon tells the per-compile wrapper where to send jobs.

The daemon rewrites it atomically (temp file + rename) on every material change and at
least every few seconds; the wrapper reads it on every compiler call.  That call path
must stay nearly free, so this module imports only `os` and uses plain tuples and dicts:
no dataclasses, typing, json or enum (each costs milliseconds at import).

Format (UTF-8 text, tab-separated, one record per line):

    p2pcc-state 1
    written <unix seconds, float>
    hosts <fingerprint> <recommended -j> <DISTCC_HOSTS line>
    compiler <path> <dev:inode:size:mtime_ns> <fingerprint> <remote name>
    ...

`compiler` records let the wrapper name its compiler's fingerprint with one `stat`: the
path is as found on PATH (symlinks kept: clang and clang++ are one file but two
compilers), the stamp is that of the file it resolves to, as `compilers.cache` keeps it.

Unknown record types are ignored so a newer daemon can add records.  A file that does
not start with the exact header line is not a state file: the reader returns None and
the wrapper compiles locally.
"""

import os

HEADER = "p2pcc-state 1"
FILE_NAME = "state"
MAX_BYTES = 1 << 20  # a state file is a few KiB; refuse to read anything absurd


def render(
    written_at: float,
    hosts: dict[str, tuple[int, str]],
    compilers: dict[str, tuple[str, str, str]] | None = None,
) -> str:
    """The file's text for `hosts` (fingerprint -> (recommended -j, DISTCC_HOSTS line))
    and `compilers` (path -> (stamp, fingerprint, remote name))."""
    lines = [HEADER, f"written\t{written_at!r}"]
    for fingerprint, (jobs, line) in sorted(hosts.items()):
        lines.append(_record("hosts", fingerprint, str(jobs), line))
    for path, (stamp, fingerprint, remote_name) in sorted((compilers or {}).items()):
        lines.append(_record("compiler", path, stamp, fingerprint, remote_name))
    return "\n".join(lines) + "\n"


def _record(*fields: str) -> str:
    for field in fields:
        if "\t" in field or "\n" in field:
            raise ValueError(f"{fields[0]} record field {field!r} contains a tab or newline")
    return "\t".join(fields)


def parse(
    text: str,
) -> tuple[float, dict[str, tuple[int, str]], dict[str, tuple[str, str, str]]] | None:
    """(written_at, hosts, compilers) from a state file's text, or None when it is not one."""
    lines = text.split("\n")
    if lines[0] != HEADER:
        return None
    written_at = None
    hosts: dict[str, tuple[int, str]] = {}
    compilers: dict[str, tuple[str, str, str]] = {}
    for line in lines[1:]:
        fields = line.split("\t")
        try:
            if fields[0] == "written" and len(fields) == 2:
                written_at = float(fields[1])
            elif fields[0] == "hosts" and len(fields) == 4:
                hosts[fields[1]] = (int(fields[2]), fields[3])
            elif fields[0] == "compiler" and len(fields) == 5:
                compilers[fields[1]] = (fields[2], fields[3], fields[4])
        except ValueError:
            return None
    # Comparisons are False for NaN, so this also rejects "nan" and "inf".
    if written_at is None or not -1e18 < written_at < 1e18:
        return None
    return written_at, hosts, compilers


def read(
    path: str,
) -> tuple[float, dict[str, tuple[int, str]], dict[str, tuple[str, str, str]]] | None:
    """Parse the state file at `path`; None when missing, unreadable, oversized or corrupt."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError:
        return None
    if len(data) > MAX_BYTES:
        return None
    try:
        return parse(data.decode("utf-8"))
    except UnicodeDecodeError:
        return None


def write_atomic(path: str, text: str) -> None:
    """Replace `path` with `text` so a concurrent reader sees the old or the new file, whole."""
    directory = os.path.dirname(path) or "."
    temporary = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        data = memoryview(text.encode("utf-8"))
        while data:
            data = data[os.write(fd, data) :]
    finally:
        os.close(fd)
    os.replace(temporary, path)
