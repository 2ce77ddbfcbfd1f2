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

The file says where compiles go, so the wrapper believes only one that nobody but root
or the caller could have written (`read_trusted`: the file, opened without following a
link, and its directory belong to one of them and are writable by no one else), and
takes from it nothing it has not checked: a `hosts` line is rebuilt word by word from
the parts of the grammar `p2pcc.core.hosts` renders (`parse_hosts_line`), never passed
on as it stands (a `user@host` word would make distcc run ssh, an option word would
change what distcc does).
"""

import posix

from p2pcc.safe_files import is_regular, open_regular, read_regular_file, trusted_by

TYPE_CHECKING = False
if TYPE_CHECKING:
    import os

HEADER = "p2pcc-state 1"
FILE_NAME = "state"
MAX_BYTES = 1 << 20  # a state file is a few KiB; refuse to read anything absurd

#: The largest `/N` of a host: `p2pcc.core.limits.MAX_SLOTS` (a test keeps them equal;
#: this module cannot import the core on the wrapper's budget).
MAX_HOST_SLOTS = 1024


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
    return _parse_bytes(read_regular_file(path, MAX_BYTES + 1), native_key)


def _parse_bytes(data: bytes | None, native_key: str | None) -> Parsed | None:
    if data is None or len(data) > MAX_BYTES:
        return None
    try:
        return parse(data.decode("utf-8"), native_key=native_key)
    except UnicodeDecodeError:
        return None


def read_trusted(
    path: str, uids: tuple[int, ...], *, native_key: str | None = None
) -> tuple[Parsed | None, str]:
    """`read` the state file at `path` if it and its directory belong to one of `uids`
    and no one else may write them (`safe_files.trusted_by`): (parsed, ""); (None, "")
    when there is no file; (None, why not) otherwise.  The file's owner and mode are
    those of the very file read (fstat on the descriptor, opened without following a
    link), so swapping it after the check changes nothing."""
    directory = path.rpartition("/")[0] or ("/" if path.startswith("/") else ".")
    fd = open_regular(path)
    if fd is None:
        return None, _not_regular(path)
    try:
        why = _untrusted("it", posix.fstat(fd), uids)
        if not why:
            why = _untrusted(f"its directory {directory}", posix.stat(directory), uids)
        if why:
            return None, f"not trusting the state file {path}: {why}"
        data = b""
        while len(data) <= MAX_BYTES and (chunk := posix.read(fd, MAX_BYTES + 1 - len(data))):
            data += chunk
    except OSError as error:
        return None, f"cannot read the state file {path}: {error.strerror}"
    finally:
        posix.close(fd)
    parsed = _parse_bytes(data, native_key)
    if parsed is None:
        return None, f"{path} is not a p2pcc state file (corrupt, or another version)"
    return parsed, ""


def _untrusted(what: str, status: "os.stat_result", uids: tuple[int, ...]) -> str:
    """Why `what` with `status` is not `trusted_by(uids)`, or ""."""
    if trusted_by(status, uids):
        return ""
    if status.st_uid not in uids:
        owners = " or ".join(sorted({"root" if uid == 0 else f"uid {uid}" for uid in uids}))
        return f"{what} belongs to uid {status.st_uid}, not to {owners}"
    group, others = status.st_mode & 0o020, status.st_mode & 0o002
    writers = "its group and others" if group and others else "its group" if group else "others"
    return f"{what} is writable by {writers}"


#: What may stand in a state file's place, by the file-type bits of `st_mode`.
_KINDS = {
    0o120000: "a symbolic link",
    0o040000: "a directory",
    0o010000: "a FIFO",
    0o140000: "a socket",
    0o020000: "a device",
    0o060000: "a device",
}


def _not_regular(path: str) -> str:
    """Why what is at `path` cannot be read as a state file; "" when nothing is."""
    try:
        mode = posix.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return ""
    except (OSError, ValueError):  # ValueError: a NUL byte in the path
        return f"cannot read the state file {path}"
    if is_regular(mode):  # there, but not ours to open
        return f"cannot read the state file {path}: permission denied"
    kind = _KINDS.get(mode & 0o170000, "something else")
    return f"not trusting the state file {path}: it is {kind}, not a regular file"


# --- the hosts line -------------------------------------------------------------------
# The grammar of `p2pcc.core.hosts`: words `addr:port/N`, `[v6addr]:port/N` (either with
# `,lzo`) or `localhost/N`, one space apart, numbers without leading zeros, addresses as
# `ipaddress` spells them.  tests/test_statefile.py renders lines with the core and
# checks that they parse back to themselves.

_HEX = "0123456789abcdef"
#: An IPv6 scope id (`fe80::1%eth0`): what the wire decoder accepts.
_SCOPE_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-"


def parse_hosts_line(line: str) -> str | None:
    """`line` rebuilt from its checked parts if it is a DISTCC_HOSTS line the daemon
    writes, else None."""
    specs = []
    for word in line.split(" "):
        spec = _host_spec(word)
        if spec is None:
            return None
        specs.append(spec)
    return " ".join(specs)


def _host_spec(word: str) -> str | None:
    host, slash, rest = word.partition("/")
    limit, comma, option = rest.partition(",")
    slots = _number(limit, MAX_HOST_SLOTS)
    if not slash or slots is None or (comma and option != "lzo"):
        return None
    if host == "localhost":
        return None if comma else f"localhost/{slots}"
    address, colon, port_text = host.rpartition(":")
    port = _number(port_text, 65535)
    if not colon or port is None:
        return None
    bracketed = address[1:-1] if address[:1] == "[" and address[-1:] == "]" else None
    if not (_is_ipv4(address) if bracketed is None else _is_ipv6(bracketed)):
        return None
    return f"{address}:{port}/{slots}" + (",lzo" if comma else "")


def _number(text: str, maximum: int) -> int | None:
    """The value of decimal `text` (no sign, no leading zero) from 1 to `maximum`."""
    if not (0 < len(text) <= 5 and text.isascii() and text.isdigit() and text[0] != "0"):
        return None
    value = int(text)
    return value if value <= maximum else None


def _is_ipv4(text: str) -> bool:
    parts = text.split(".")
    return len(parts) == 4 and all(part == "0" or _number(part, 255) is not None for part in parts)


def _is_ipv6(text: str) -> bool:
    address, percent, scope = text.partition("%")
    if percent and (not scope or scope.strip(_SCOPE_CHARS)):
        return False
    head, gap, tail = address.partition("::")
    groups = [group for half in (head, tail) if half for group in half.split(":")]
    if groups and "." in groups[-1]:  # an IPv4 address as the last 32 bits
        if not (address.endswith(groups[-1]) and _is_ipv4(groups.pop())):
            return False
        groups += ["0", "0"]
    if not all(0 < len(group) <= 4 and not group.strip(_HEX) for group in groups):
        return False
    return len(groups) < 8 if gap else len(groups) == 8
