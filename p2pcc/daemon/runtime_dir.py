"""The daemon's runtime directory (`runtime_dir`, /run/p2pcc for root), made or checked
before anything goes into it.

Every user's compiles read the state file there, and a root daemon hands the directory
`distccd` in it to distccd's user, so whoever may write the runtime directory could
steer every build on the machine (a state file of theirs) or have root change a file
of their choice (a link in place of `distccd`).  Hence it must be a real directory, not
a link to one, owned by the daemon's user and writable by no one else.  One made by
another user (before the daemon's first start, say, in a shared parent) is refused,
not repaired: its maker may have left anything inside it.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from p2pcc.core.errors import P2pccError
from p2pcc.safe_files import trusted_by


def prepare_runtime_dir(path: Path) -> None:
    """Create `path` (mode 0755, and its parents), or accept it as it is when it is a
    directory of the daemon's user that no one else may write; P2pccError saying what
    to fix otherwise."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        created = _make(path)
    except OSError as error:
        raise P2pccError(f"cannot create the runtime directory {path}: {error}") from None
    fd = open_directory(path, "the runtime directory")
    try:
        if created:
            os.fchmod(fd, 0o755)  # exactly, whatever the umask: the wrapper reads it
        info = os.fstat(fd)
    finally:
        os.close(fd)
    uid = os.geteuid()
    if info.st_uid != uid:
        raise P2pccError(
            f"the runtime directory {path} belongs to {_user(info.st_uid)}, not to the "
            f"daemon's user {_user(uid)}: whoever made it could steer this machine's "
            "builds; remove it (the daemon makes its own) or set runtime_dir to a "
            "directory of the daemon's user"
        )
    if not trusted_by(info, (uid,)):
        raise P2pccError(
            f"the runtime directory {path} is writable by group or others "
            f"(mode {info.st_mode & 0o7777:04o}), who could steer this machine's builds: "
            f"`chmod go-w {path}`, or remove it (the daemon makes its own)"
        )


def _make(path: Path) -> bool:
    """Make the directory `path`, private until it is known to be ours; False if
    something is there already."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        return False
    return True


def open_directory(path: Path, what: str) -> int:
    """A descriptor of the directory at `path`, opened without following a link (to
    change it with fchmod/fchown, never through a link planted in its place);
    P2pccError naming `what` and what is there instead."""
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as error:
        if os.path.islink(path):
            problem = "is a symbolic link, which the daemon does not follow"
        elif os.path.lexists(path):
            problem = "is not a directory"
        else:
            raise P2pccError(f"cannot open {what} {path}: {error.strerror or error}") from None
        raise P2pccError(f"{what} {path} {problem}: remove it (the daemon makes one)") from None


def _user(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"
