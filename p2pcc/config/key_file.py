"""Reading the cluster key named by `gossip.key_file`, and refusing an unsafe one.

Shared by the daemon (at start and on SIGHUP), `p2pcc config --check` and `p2pcc
doctor`, which must refuse exactly what the daemon would refuse: a check that says "ok"
to a key file the daemon cannot use would send people looking in the wrong place.

A pool is keyed unless the configuration says `gossip.insecure = true`; a missing key
is an error that names both ways out.  The key file must be a regular file (never
followed through a link), owned by root or the user reading it, with no group or
other permission bits: a key others can read makes them pool members, and the message
gives the exact `chmod` or `chown` to run.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from p2pcc.config.model import Config
from p2pcc.core.auth import Keyring, parse_key_file
from p2pcc.core.errors import ConfigError
from p2pcc.safe_files import is_regular

KEY = "gossip.key_file"
#: Far above any valid key file (8 keys of a few dozen bytes plus comments).
MAX_KEY_FILE_BYTES = 64 * 1024

#: What running unkeyed costs, said wherever `gossip.insecure` is offered as a way out.
INSECURE_COST = (
    "any machine on the network can then join the pool, receive your preprocessed "
    "sources and send back object files your builds link"
)


def no_key_remedy() -> str:
    """The two ways out of a pool without a key, as one sentence."""
    return (
        "make the pool's key with `p2pcc keygen` on one machine and install it on "
        "the others by piping the token it prints into `p2pcc join`; or, to run an "
        f"unauthenticated pool, set gossip.insecure = true ({INSECURE_COST})"
    )


def load_keyring(config: Config) -> Keyring:
    """The cluster keyring; an empty one only when `gossip.insecure` asks for it.

    ConfigError when there is no key, or the key file is missing, unsafe or invalid.
    """
    gossip = config.gossip
    if gossip.insecure:
        return Keyring()
    source = str(config.source) if config.source else "defaults"
    if gossip.key_file is None:
        raise ConfigError(source, KEY, f'"" (no key) refuses to start; {no_key_remedy()}')
    return read_key_file(gossip.key_file, trusted_uids())


def trusted_uids() -> tuple[int, ...]:
    """Who may own the key file: root, and the user reading it (the daemon's user)."""
    return tuple(sorted({0, os.geteuid()}))


def read_key_file(path: Path, uids: tuple[int, ...]) -> Keyring:
    """The keyring in `path`, checked as the module docstring says."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise ConfigError(str(path), KEY, f"no such file; {no_key_remedy()}") from None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise ConfigError(
                str(path),
                KEY,
                "is a symbolic link, which is never followed for the key; "
                "put the key file itself there",
            ) from None
        raise ConfigError(str(path), KEY, f"cannot read: {error.strerror}") from None
    try:
        check_key_file_status(path, os.fstat(fd), uids)
        data = os.read(fd, MAX_KEY_FILE_BYTES + 1)
    except OSError as error:
        raise ConfigError(str(path), KEY, f"cannot read: {error.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_KEY_FILE_BYTES:
        raise ConfigError(str(path), KEY, f"larger than {MAX_KEY_FILE_BYTES} bytes: not a key file")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise ConfigError(
            str(path), "key", "not a text key file; `p2pcc keygen` makes one"
        ) from None
    return parse_key_file(text, str(path))


def check_key_file_status(path: Path, status: os.stat_result, uids: tuple[int, ...]) -> None:
    """ConfigError unless `status` is a regular file owned by one of `uids`, mode 0600 or
    tighter."""
    if not is_regular(status.st_mode):
        raise ConfigError(str(path), KEY, "is not a regular file; put the key file itself there")
    if status.st_uid not in uids:
        owners = " or ".join(_user_name(uid) for uid in uids)
        raise ConfigError(
            str(path),
            KEY,
            f"owned by {_user_name(status.st_uid)}, not {owners}: whoever owns it can change "
            f"the pool's key; run `chown {_user_name(uids[-1])} {path}`",
        )
    mode = stat.S_IMODE(status.st_mode)
    if mode & 0o077:
        raise ConfigError(
            str(path),
            KEY,
            f"has mode {mode:04o}: other users can read the cluster key and join the pool; "
            f"run `chmod 600 {path}`",
        )


def _user_name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)
