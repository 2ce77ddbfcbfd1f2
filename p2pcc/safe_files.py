"""Reading and replacing the files p2pcc shares between processes, safely.

A path names whatever is there when it is opened.  The daemon rewrites the state file
while every compile reads it; the daemon and the CLI refresh the fingerprint cache the
wrapper reads; the daemon keeps its pause and replay memory across restarts.  These
files live in directories that other processes, and people, can write (a user's
runtime and cache directories, /run/p2pcc for root), so a reader may find a file being
replaced, or something that is no file at all, in its place:

- `open_regular` (and `read_regular_file`, `read_regular_tail` on it) opens
  non-blocking, without following a symbolic link, and checks the file type with fstat
  before anything is read: a FIFO in the file's place would otherwise block the reader
  until someone writes to it (every compile of a build would hang, or the daemon's
  event loop), a device such as /dev/zero would be read without end, and a link would
  lead the reader to a file its planter chose;
- `trusted_by` says whether a file and its directory belong to a user we trust (root,
  or the caller) and are not writable by anyone else: a state file another user can
  write would let them steer our compiles;
- `replace_file` writes under a temporary name unique to this process and call, then
  renames it over the target, which POSIX makes atomic: a reader sees the old content
  or the new, whole, never a part, and concurrent writers never share a temporary file
  (the last rename wins).  `durable` also flushes the file and its directory, so the
  rename survives a power cut.  Every file p2pcc writes for another process or a later
  run goes through it.

The wrapper reads through this module on every compile, and tests file types with
`is_regular`/`is_directory` on every PATH search, so it imports only `posix`, which the
interpreter has loaded before any import (`os` costs ~2 ms under `-I -S`, `stat`
~0.1 ms), and not even `__future__`: hence the quoted annotation.
"""

import posix

TYPE_CHECKING = False
if TYPE_CHECKING:
    import os

#: `stat.S_IFMT`, `stat.S_IFREG` and `stat.S_IFDIR`: the file-type bits of `st_mode`.
_FILE_TYPE = 0o170000
_REGULAR = 0o100000
_DIRECTORY = 0o040000


def is_regular(mode: int) -> bool:
    """`stat.S_ISREG`: whether `mode` (an `st_mode`) is that of a regular file."""
    return mode & _FILE_TYPE == _REGULAR


def is_directory(mode: int) -> bool:
    """`stat.S_ISDIR`: whether `mode` (an `st_mode`) is that of a directory."""
    return mode & _FILE_TYPE == _DIRECTORY


def open_regular(path: str) -> int | None:
    """A read-only descriptor of the regular file at `path`, opened non-blocking and
    without following a link; None if there is none (a link, a FIFO, a device, a
    directory, nothing).  The caller closes it."""
    flags = posix.O_RDONLY | posix.O_NONBLOCK | posix.O_CLOEXEC | posix.O_NOFOLLOW
    try:
        fd = posix.open(path, flags)
    except (OSError, ValueError):  # ValueError: a NUL byte in the path
        return None
    try:
        if is_regular(posix.fstat(fd).st_mode):
            return fd
    except OSError:
        pass
    posix.close(fd)
    return None


def read_regular_file(path: str, limit: int) -> bytes | None:
    """At most `limit` bytes of the regular file at `path` (see `open_regular`); None if
    it cannot be read or is not a regular file."""
    fd = open_regular(path)
    if fd is None:
        return None
    try:
        chunks = []
        size = 0
        while size < limit and (chunk := posix.read(fd, limit - size)):
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        posix.close(fd)


def read_regular_tail(path: str, size: int) -> bytes | None:
    """The last `size` bytes (fewer if the file is shorter) of the regular file at
    `path` (see `open_regular`); None if it cannot be read or is not a regular file."""
    fd = open_regular(path)
    if fd is None:
        return None
    try:
        return posix.pread(fd, size, max(0, posix.fstat(fd).st_size - size))
    except OSError:
        return None
    finally:
        posix.close(fd)


def trusted_by(status: "os.stat_result", uids: "tuple[int, ...]") -> bool:
    """Whether a file or directory with `status` belongs to one of `uids` and no one
    else may write it (no group or other write bit; a sticky shared directory such as
    /tmp is not trusted either)."""
    return status.st_uid in uids and not status.st_mode & 0o022


def _fsync_directory(directory: str) -> None:
    fd = posix.open(directory or ".", posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
    try:
        posix.fsync(fd)
    finally:
        posix.close(fd)


def replace_file(
    path: "str | os.PathLike[str]", data: bytes, *, mode: int = 0o644, durable: bool = False
) -> None:
    """Make `path` hold exactly `data` with permissions `mode` (the umask does not apply);
    `durable` also flushes it to disk before the rename and the directory after it.
    OSError if that fails, and then the target is as it was (or, when only the last
    flush failed, holds `data`) and no temporary file is left behind."""
    target = posix.fspath(path)
    directory, slash, name = target.rpartition("/")
    unique = f"{posix.getpid()}.{posix.urandom(6).hex()}"
    temporary = f"{directory}{slash}.{name}.{unique}.tmp"
    fd = posix.open(temporary, posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL, 0o600)
    try:
        try:
            posix.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[posix.write(fd, view) :]
            if durable:
                posix.fsync(fd)
        finally:
            posix.close(fd)
        posix.replace(temporary, target)
    except BaseException:
        try:  # noqa: SIM105 - contextlib is one import more on the wrapper's path
            posix.unlink(temporary)
        except OSError:
            pass
        raise
    if durable:
        _fsync_directory(directory if directory or not slash else "/")
