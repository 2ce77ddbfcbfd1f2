"""At most one warning per build: "compiling locally, because …" once, not once per file.

A build is a process group: make, and every compiler it starts, share the group of the
make that a shell started.  Ninja starts each command in a process group of its own, so
when our group's leader is neither a session leader nor the child of one, the build is
its parent's group (ninja's).  The first wrapper of a build to warn creates a marker file
named after the build (uid, process group, and the start time of the group's leader, so a
recycled group id is a new build) with O_EXCL; the others find it and stay quiet.

Markers live in `$XDG_RUNTIME_DIR/p2pcc-warnings/` (a per-user tmpfs), else in
`/tmp/p2pcc-warnings-<uid>/` (created 0700; not used unless it is ours and not a link).
The first wrapper of each build also removes the markers of builds whose group leader
is gone.  When no marker can be made, the warning is printed anyway: never hide a
problem to save a line.

`p2pcc build` marks its build before it starts the build tool, having said once itself
that the build runs locally.  Imports only `posix` (loaded by the interpreter before any
import), `sys` and `p2pcc.safe_files` (which imports only `posix`).
"""

import posix
import sys
import time  # built in and loaded at interpreter start: free

from p2pcc.safe_files import is_directory

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

_PREFIX = "p2pcc-warnings"

#: How long a marker of a build whose group leader was already gone is kept.
ORPHAN_MARKER_SECONDS = 24 * 3600.0


def warn_once(message: str, env: "Mapping[str, str]") -> bool:
    """Print `message` on stderr unless this build has had its warning; True if printed."""
    if mark_build(env) is False:
        return False
    sys.stderr.write(f"p2pcc: {message}\n")
    sys.stderr.flush()
    return True


def mark_build(env: "Mapping[str, str]") -> bool | None:
    """Record that this build has been warned: True if it had not been, False if it had,
    None when no marker could be made."""
    directory = marker_dir(env)
    if directory is None:
        return None
    try:
        fd = posix.open(
            f"{directory}/{build_key()}",
            posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL | posix.O_NOFOLLOW,
            0o600,
        )
    except FileExistsError:
        return False
    except OSError:
        return None
    posix.close(fd)
    _forget_finished_builds(directory)
    return True


def marker_dir(env: "Mapping[str, str]") -> str | None:
    """The directory of warning markers (created when missing), or None if unusable."""
    uid = posix.getuid()
    runtime = env.get("XDG_RUNTIME_DIR", "")
    if runtime.startswith("/"):
        directory = f"{runtime.rstrip('/')}/{_PREFIX}"
    else:
        directory = f"/tmp/{_PREFIX}-{uid}"  # noqa: S108 (checked: ours, 0700, no link)
    try:
        posix.mkdir(directory, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return None
    try:
        status = posix.lstat(directory)
    except OSError:
        return None
    if not is_directory(status.st_mode) or status.st_uid != uid or status.st_mode & 0o022:
        return None
    return directory


def build_key() -> str:
    """`<uid>.<process group>.<its leader's start time>` of the build this process is in."""
    group = posix.getpgrp()
    leader = process_stat(group)
    if leader is not None and leader[2] != group:  # the leader is no session leader
        parent = process_stat(leader[0])
        if parent is not None and parent[2] != leader[0] and parent[1] != group:
            group, leader = parent[1], process_stat(parent[1])
    started = leader[3] if leader is not None else "0"
    return f"{posix.getuid()}.{group}.{started}"


def process_stat(pid: int) -> tuple[int, int, int, str] | None:
    """(parent, process group, session, start time) of `pid` from /proc, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return None
    fields = text[text.rfind(")") + 2 :].split()
    try:
        return int(fields[1]), int(fields[2]), int(fields[3]), fields[19]
    except (IndexError, ValueError):
        return None


def _forget_finished_builds(directory: str) -> None:
    """Remove markers whose build's group leader is gone (or is another process now)."""
    try:
        names = posix.listdir(directory)
    except OSError:
        return
    uid = str(posix.getuid())
    for name in names:
        parts = name.split(".")
        if len(parts) != 3 or parts[0] != uid or not parts[1].isdigit():
            continue
        if parts[2] == "0":
            # The build's group leader was already gone when it was marked (a build run
            # from a script that exited): nothing tells when that build ends, so the
            # marker is kept for a day rather than dropped at once, which would warn on
            # every compile of the build.
            if _older_than(f"{directory}/{name}", ORPHAN_MARKER_SECONDS):
                _unlink(f"{directory}/{name}")
            continue
        leader = process_stat(int(parts[1]))
        if leader is None or leader[3] != parts[2]:
            _unlink(f"{directory}/{name}")


def _older_than(path: str, seconds: float) -> bool:
    try:
        return posix.stat(path).st_mtime < time.time() - seconds
    except OSError:
        return False


def _unlink(path: str) -> None:
    try:  # noqa: SIM105 - contextlib would be one more import on every compile
        posix.unlink(path)
    except OSError:
        pass  # another wrapper removed it first
