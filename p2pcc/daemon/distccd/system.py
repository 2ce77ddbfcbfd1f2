"""What the distccd supervisor reads from and does to the machine, outside trio.

/proc (processes, sessions, TCP sockets), the compiler whitelist, the interface's
addresses, distccd's binary, user, environment and directory.  Each function is a
thin read or act; the decisions are in `p2pcc.core.distccd_args`, the /proc formats in
`p2pcc.core.procfs`.  distccd's user may
run hostile compile jobs, so nothing here follows a link that user could have planted
in distccd's directory.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import pwd
import shutil
import signal
import stat
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from p2pcc.core import limits
from p2pcc.core.distccd_args import (
    WHITELIST_DIR,
    IPInterface,
    WhitelistProblem,
    server_path,
    whitelist_problems,
)
from p2pcc.core.errors import P2pccError
from p2pcc.core.procfs import TCP_LISTEN, TcpSocket, parse_proc_net_tcp, session_members
from p2pcc.daemon.distccd.processes import read_processes
from p2pcc.netinfo import InterfaceError, gossip_interface

log = logging.getLogger("p2pcc.daemon.distccd")

#: Compiler names whose entry in a PATH directory tells a distcc masquerade.
_MASQUERADE_NAMES = ("cc", "gcc", "c++", "g++")


def interface_addresses(name: str) -> tuple[IPInterface, ...]:
    """The addresses (with prefix lengths) of interface `name` ("" means the default
    route's, as for gossip); () when it is missing, down or has none."""
    try:
        return gossip_interface(name).addresses
    except InterfaceError as error:
        log.warning("no networks to allow distccd jobs from: %s", error)
        return ()


def read_whitelist(directory: str = WHITELIST_DIR) -> set[str]:
    """The compiler names distccd may run: entries of `directory` that lead to an executable."""
    try:
        names = os.listdir(directory)
    except OSError:
        return set()
    return {name for name in names if os.access(os.path.join(directory, name), os.X_OK)}


def check_whitelist(
    remote_names: Iterable[str], directory: str = WHITELIST_DIR
) -> list[WhitelistProblem]:
    """The offered remote names distccd would refuse, each with the command that fixes it."""
    distcc = shutil.which("distcc") or "/usr/bin/distcc"
    target = os.path.relpath(os.path.realpath(distcc), directory)
    return whitelist_problems(
        remote_names, read_whitelist(directory), directory=directory, link_target=target
    )


def kill_session(session: int) -> None:
    """SIGKILL every live process of a session (a process that is gone is fine)."""
    for member in session_members(read_processes(), session):
        with contextlib.suppress(ProcessLookupError):
            os.kill(member.pid, signal.SIGKILL)


def tcp_sockets() -> list[TcpSocket]:
    """The TCP sockets of this network namespace, IPv4 and IPv6."""
    sockets = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):  # tcp6 is missing when IPv6 is disabled
            sockets += parse_proc_net_tcp(Path(table).read_text())
    return sockets


def listening_on(port: int) -> list[int]:
    """Inodes of the sockets listening on `port`, any address."""
    return [s.inode for s in tcp_sockets() if s.port == port and s.state == TCP_LISTEN]


def cmdline(pid: int) -> str:
    """The command line of process `pid`, arguments joined by spaces ("" when it is gone)."""
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def log_tail(log_file: Path, size: int = 8192) -> str:
    """The last `size` bytes of distccd's log ("" when unreadable or a link)."""
    try:
        fd = os.open(log_file, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return ""
    with os.fdopen(fd, "rb") as file:
        file.seek(max(0, file.seek(0, os.SEEK_END) - size))
        return file.read(size).decode(errors="replace")


def parse_listen(listen: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The listen address; P2pccError when it is not an IP address."""
    try:
        return ipaddress.ip_address(listen)
    except ValueError:
        raise P2pccError(f"distccd listen address {listen!r} is not an IP address") from None


def find_binary(binary: str, env: Mapping[str, str]) -> str:
    """The path of distccd; P2pccError saying what to install when it is missing."""
    found = shutil.which(binary, path=env.get("PATH", os.defpath))
    if not found:
        raise P2pccError(
            f"{binary} was not found on PATH: install distcc (Debian: apt install distcc), "
            "or set distccd.manage = false to use a distccd you run yourself"
        )
    return found


def distccd_user(name: str) -> pwd.struct_passwd | None:
    """The user distccd drops to when we are root; None when we are not (it runs as us)."""
    if os.geteuid() != 0:
        return None
    try:
        user = pwd.getpwnam(name)
    except KeyError:
        raise P2pccError(
            f"user {name!r} (distccd.user) does not exist: install Debian's distcc package, "
            "which creates the user distccd, or create a system user for distccd"
        ) from None
    if user.pw_uid == 0:
        raise P2pccError(f"distccd.user {name!r} is root: distccd must run unprivileged")
    return user


def server_env(env: Mapping[str, str], exclude_path_dirs: Sequence[str]) -> dict[str, str]:
    """Our environment, with masquerade directories taken out of PATH."""
    path = env.get("PATH", os.defpath)
    excluded = {*exclude_path_dirs, WHITELIST_DIR, os.path.realpath(WHITELIST_DIR)}
    excluded |= {entry for entry in path.split(":") if _is_masquerade(entry)}
    return {**env, "PATH": server_path(path, excluded)}


def _is_masquerade(directory: str) -> bool:
    for name in _MASQUERADE_NAMES:
        candidate = os.path.join(directory, name)
        if os.path.islink(candidate) and os.path.basename(os.path.realpath(candidate)) == "distcc":
            return True
    return False


def prepare_log_dir(log_file: Path, pid_file: Path, user: pwd.struct_passwd | None) -> None:
    """Create distccd's directory; as root, hand it to distccd's user, who opens the log
    and the pid file only after dropping privileges."""
    directory = log_file.parent
    try:
        directory.mkdir(mode=0o755, parents=True, exist_ok=True)
        if user is None:
            return
        os.chown(directory, user.pw_uid, user.pw_gid, follow_symlinks=False)
        directory.chmod(0o755)
        for path in (log_file, pid_file):
            _hand_over(path, user)
    except OSError as error:
        raise P2pccError(f"cannot prepare distccd's directory {directory}: {error}") from None


def _hand_over(path: Path, user: pwd.struct_passwd) -> None:
    """Give an existing file to `user`; remove it instead when it is a link, which root
    must never chown (a planted link to /etc/shadow would hand that file over)."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
        os.chown(path, user.pw_uid, user.pw_gid, follow_symlinks=False)
    else:
        path.unlink()


def rotate_log(log_file: Path) -> None:
    """Keep one old log when the current one has grown past its cap."""
    with contextlib.suppress(OSError):
        if log_file.stat().st_size > limits.DISTCCD_LOG_ROTATE_BYTES:
            log_file.replace(log_file.with_name(log_file.name + ".1"))


def cpu_count() -> int:
    """CPUs this process may run on."""
    return len(os.sched_getaffinity(0))
