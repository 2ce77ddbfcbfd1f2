"""The core's one place for /proc formats: `/proc/<pid>/stat`, `/proc/net/tcp{,6}` and
`/proc/net/igmp{,6}`.

The daemon's I/O layer (and `p2pcc doctor`) reads the files and hands their text here, so
every part that looks at processes, sockets or multicast groups agrees on what a line
means, and the parsers are tested on captured text without a live /proc.

Processes: the metrics count and time the jobs distccd runs for peers; the distccd
supervisor finds every process of distccd's session to stop it.  The command name sits in
parentheses and may itself hold spaces and parentheses, so it ends at the *last* ")".

Sockets: the supervisor checks that distccd listens and counts the jobs it serves,
`p2pcc doctor` looks for a distccd on the port, and the vanished-peer check counts our
jobs held by a dead peer.  The kernel prints an address in hex, each 32-bit word in host
(little-endian) order.

Multicast groups: `p2pcc doctor` checks that the gossip group is joined on the gossip
interface.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class ProcessEntry:
    """The fields of `/proc/<pid>/stat` p2pcc uses; CPU and start time in clock ticks."""

    pid: int
    comm: str
    state: str  # "R", "S", "D", "Z" (zombie: dead, not yet reaped), ...
    ppid: int
    cpu_ticks: int = 0  # utime + stime + cutime + cstime: itself and its reaped children
    start_ticks: int = 0  # since boot
    session: int = 0


def parse_proc_stat(text: str) -> ProcessEntry:
    """One `/proc/<pid>/stat` line; ValueError if it is not one."""
    open_paren, close_paren = text.find("("), text.rfind(")")
    if open_paren < 1 or close_paren < open_paren:
        raise ValueError(f"not a /proc/PID/stat line: no (comm) in {text[:80]!r}")
    rest = text[close_paren + 1 :].split()
    if len(rest) < 20:  # fields 3..22 of proc(5)
        raise ValueError(f"not a /proc/PID/stat line: too short: {text[:80]!r}")
    utime, stime, cutime, cstime = (int(value) for value in rest[11:15])
    return ProcessEntry(
        pid=int(text[:open_paren]),
        comm=text[open_paren + 1 : close_paren],
        state=rest[0],
        ppid=int(rest[1]),
        cpu_ticks=utime + stime + max(0, cutime) + max(0, cstime),
        start_ticks=int(rest[19]),
        session=int(rest[3]),
    )


def session_members(processes: Iterable[ProcessEntry], session: int) -> list[ProcessEntry]:
    """The live (not zombie) processes of a session."""
    return [entry for entry in processes if entry.session == session and entry.state != "Z"]


# --- sockets -------------------------------------------------------------------------------

#: The kernel's numbers for the TCP ESTABLISHED and LISTEN states in /proc/net/tcp.
TCP_ESTABLISHED = 0x01
TCP_LISTEN = 0x0A


@dataclass(frozen=True, slots=True)
class TcpSocket:
    """A TCP socket from `/proc/net/tcp` or `/proc/net/tcp6`: its two ends and state."""

    address: IPAddress
    port: int
    state: int  # TCP_LISTEN, TCP_ESTABLISHED, ...
    inode: int  # 0 when no process holds it any more (TIME_WAIT)
    remote_address: IPAddress | None = None  # None for a listening socket
    remote_port: int = 0


def parse_proc_net_tcp(text: str) -> list[TcpSocket]:
    """The sockets of a `/proc/net/tcp` or `/proc/net/tcp6` table."""
    sockets = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10:
            continue
        address_hex, _, port_hex = fields[1].partition(":")
        remote_hex, _, remote_port_hex = fields[2].partition(":")
        state = int(fields[3], 16)
        remote = None if state == TCP_LISTEN else _kernel_address(remote_hex)
        sockets.append(
            TcpSocket(
                _kernel_address(address_hex),
                int(port_hex, 16),
                state,
                int(fields[9]),
                remote,
                0 if remote is None else int(remote_port_hex, 16),
            )
        )
    return sockets


def _kernel_address(hex_text: str) -> IPAddress:
    # The kernel prints each 32-bit word of the address in host (little-endian) order.
    raw = bytes.fromhex(hex_text)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return ipaddress.ip_address(words)


def _unscoped(address: IPAddress) -> IPAddress:
    """`address` without its IPv6 scope: the kernel's tables print none, and a scoped
    address never equals an unscoped one."""
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        return ipaddress.IPv6Address(str(address).partition("%")[0])
    return address


def listeners(sockets: Iterable[TcpSocket], address: IPAddress, port: int) -> list[int]:
    """Inodes of the listening sockets that accept connections to `address:port`: bound to
    it, to the wildcard of its family, or to `::` (dual-stack, Linux's default)."""
    address = _unscoped(address)
    return [
        sock.inode
        for sock in sockets
        if sock.state == TCP_LISTEN
        and sock.port == port
        and (
            sock.address == address
            or (sock.address.is_unspecified and sock.address.version in (address.version, 6))
        )
    ]


def connections_served(sockets: Iterable[TcpSocket], address: IPAddress, port: int) -> int:
    """Client connections a server listening on `address:port` has accepted and not closed.

    distccd holds a client's connection from accepting it until the object file is
    sent back, so this counts the jobs it is working on, including ones still
    receiving their source or already sending their result.
    """
    address = _unscoped(address)
    return sum(
        1
        for sock in sockets
        if sock.port == port
        and sock.state != TCP_LISTEN
        and sock.inode  # 0: TIME_WAIT, already closed by distccd
        and (address.is_unspecified or sock.address == address)
    )


# --- multicast groups ----------------------------------------------------------------------


def parse_proc_net_igmp(igmp: str, igmp6: str) -> dict[str, set[IPAddress]]:
    """Groups joined per interface, from the text of /proc/net/igmp and /proc/net/igmp6."""
    groups: dict[str, set[IPAddress]] = {}
    device = ""
    for line in igmp.splitlines()[1:]:
        fields = line.split()
        if not fields:
            continue
        if not line[0].isspace() and len(fields) >= 2:
            device = fields[1].rstrip(":")
        elif device and len(fields[0]) == 8:
            # The kernel prints the group's network-order bytes as a host-order integer.
            raw = int(fields[0], 16).to_bytes(4, "little")
            groups.setdefault(device, set()).add(ipaddress.IPv4Address(raw))
    for line in igmp6.splitlines():
        fields = line.split()
        if len(fields) >= 3 and len(fields[2]) == 32:
            address = ipaddress.IPv6Address(bytes.fromhex(fields[2]))
            groups.setdefault(fields[1], set()).add(address)
    return groups
