"""What the distccd supervisor reads from and does to the machine, outside trio.

/proc (processes, sessions, TCP sockets), the compiler whitelist, the interface's
addresses, distccd's binary, user, environment and directory.  Each function is a
thin read or act; the decisions are in `p2pcc.core.distccd_args`, the /proc formats in
`p2pcc.core.procfs`.

distccd's user may run hostile compile jobs, and it owns distccd's directory, so
whatever is in there may be a link, a FIFO or a hard link to someone else's file by
the time we look.  Nothing here follows a link there or opens a file there but through
`safe_files.open_regular` (non-blocking, regular files only); the directory itself is
changed through a descriptor opened without following a link.  The supervisor runs
these functions in a worker thread (see `_Supervisor.in_directory`), so even a file
operation that hangs there does not stop the daemon.
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
from p2pcc.daemon.runtime_dir import open_directory
from p2pcc.netinfo import InterfaceError, gossip_interface
from p2pcc.safe_files import is_regular, open_regular, read_regular_file, read_regular_tail

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
    """The last `size` bytes of distccd's log ("" unless it is a regular file)."""
    data = read_regular_tail(str(log_file), size)
    return "" if data is None else data.decode(errors="replace")


def pid_file_session(pid_file: Path) -> int | None:
    """The pid distccd wrote to `pid_file` (its session: it leads one of its own); None
    when there is no such regular file or it holds no number."""
    data = read_regular_file(str(pid_file), 64)
    try:
        return int(data.split()[0]) if data else None
    except (ValueError, IndexError):
        return None


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


#: Variables of ours distccd must not inherit: the job guard sets the first two itself,
#: and DISTCC_CMDLIST_NUMWORDS would change how distccd matches compiler names to it.
_GUARD_VARIABLES = ("DISTCC_CMDLIST", "TMPDIR", "DISTCC_CMDLIST_NUMWORDS")


def server_env(env: Mapping[str, str], exclude_path_dirs: Sequence[str]) -> dict[str, str]:
    """Our environment, with masquerade directories taken out of PATH and without the
    job guard's variables (see `guard_files.prepare_guard`)."""
    path = env.get("PATH", os.defpath)
    excluded = {*exclude_path_dirs, WHITELIST_DIR, os.path.realpath(WHITELIST_DIR)}
    excluded |= {entry for entry in path.split(":") if _is_masquerade(entry)}
    kept = {name: value for name, value in env.items() if name not in _GUARD_VARIABLES}
    return {**kept, "PATH": server_path(path, excluded)}


def _is_masquerade(directory: str) -> bool:
    for name in _MASQUERADE_NAMES:
        candidate = os.path.join(directory, name)
        if os.path.islink(candidate) and os.path.basename(os.path.realpath(candidate)) == "distcc":
            return True
    return False


def prepare_log_dir(log_file: Path, pid_file: Path, user: pwd.struct_passwd | None) -> None:
    """Create distccd's directory; as root, hand it to distccd's user, who opens the log
    and the pid file only after dropping privileges.  P2pccError when that fails, or
    when a link or a file is in the directory's place."""
    directory = log_file.parent
    try:
        directory.mkdir(mode=0o755)
    except FileExistsError:
        pass
    except OSError as error:
        raise P2pccError(f"cannot create distccd's directory {directory}: {error}") from None
    fd = open_directory(directory, "distccd's directory")
    try:
        if user is None:
            return
        # Through the descriptor: a chown or chmod by name would follow a link put in
        # the directory's place between our check and the change.
        os.fchown(fd, user.pw_uid, user.pw_gid)
        os.fchmod(fd, 0o755)
        for path in (log_file, pid_file):
            _hand_over(path, user)
    except OSError as error:
        raise P2pccError(f"cannot prepare distccd's directory {directory}: {error}") from None
    finally:
        os.close(fd)


def _hand_over(path: Path, user: pwd.struct_passwd) -> None:
    """Give an existing file to `user`, through a descriptor of that very file; remove
    it instead when it is anything but a regular file with one link: root must never
    chown through a planted link (one to /etc/shadow would hand that file over)."""
    fd = open_regular(str(path))
    if fd is not None:
        try:
            if os.fstat(fd).st_nlink == 1:
                os.fchown(fd, user.pw_uid, user.pw_gid)
                return
        finally:
            os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def clear_for_start(log_file: Path, pid_file: Path) -> None:
    """Make room for a new distccd's log and pid file: remove whatever is in their place
    but a regular file (distccd, which opens them as its user, would block on a FIFO
    and write through a link), and keep one old log when the current one has grown
    past its cap."""
    for path in (log_file, pid_file):
        try:
            info = os.lstat(path)
        except OSError:
            continue
        if not is_regular(info.st_mode):
            kind = stat.filemode(info.st_mode)
            log.warning("removing %s (%s): distccd's user put it in place of a file", path, kind)
            with contextlib.suppress(OSError):
                path.unlink()
        elif path == log_file and info.st_size > limits.DISTCCD_LOG_ROTATE_BYTES:
            with contextlib.suppress(OSError):
                path.replace(path.with_name(path.name + ".1"))


def cpu_count() -> int:
    """CPUs this process may run on."""
    return len(os.sched_getaffinity(0))
