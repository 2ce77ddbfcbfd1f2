"""Replacing a file so that a reader sees the old content or the new, whole, never a part.

Every file p2pcc writes for another process or a later run goes through
`replace_file`: the state file the wrapper reads on each compile, the fingerprint and
calibration caches, the node id and incarnation, the kept pause, the replay memory,
the link directory's entry script.  The data is written under a name unique to this
process and call (so concurrent writers never share a temporary file and the last
rename wins), then renamed over the target, which POSIX makes atomic.  A failure
leaves the target as it was and no temporary file behind.

The wrapper may write the fingerprint cache on a compile, so this imports only `os`.
"""

from __future__ import annotations

import os


def replace_file(
    path: str | os.PathLike[str], data: bytes, *, mode: int = 0o644, durable: bool = False
) -> None:
    """Make `path` hold exactly `data` with permissions `mode` (the umask does not apply);
    `durable` also flushes it to disk before the rename.  OSError if that fails."""
    target = os.fspath(path)
    directory, name = os.path.split(target)
    temporary = os.path.join(directory, f".{name}.{os.getpid()}.{os.urandom(6).hex()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, target)
    except BaseException:
        try:  # noqa: SIM105 - contextlib is one import more on the wrapper's path
            os.unlink(temporary)
        except OSError:
            pass
        raise
