"""The kernel's socket-diagnostics netlink dump (`sock_diag(7)`), as bytes in and out.

Why not `/proc/net/tcp`: that file is text the kernel formats for every socket of the
namespace, TIME_WAIT ones included, and a build leaves hundreds of those behind (one per
distcc job, each kept for a minute), which the daemon then read and parsed four times a
second.  A dump asks the kernel for the sockets in given states only and answers in
fixed-size binary records, so only the connections that matter cross into Python
(measured: about 1.4 ms of CPU per dump against 3.4 ms for the file with 600 TIME_WAIT
sockets, before Python's parsing of it).

This module builds the request and reads the answer; the daemon owns the socket
(`daemon/turnaround.py`).  Records are read defensively (lengths checked, a short or odd
message is a ValueError), though only the kernel writes them.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from p2pcc.core.procfs import TcpSocket

#: Netlink protocol and message type of an INET socket dump (linux/sock_diag.h).
NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20

_NLM_F_REQUEST = 0x01
_NLM_F_DUMP = 0x300  # NLM_F_ROOT | NLM_F_MATCH
_NLMSG_ERROR = 2
_NLMSG_DONE = 3

#: struct nlmsghdr: length, type, flags, sequence, port id.
_HEADER = struct.Struct("=IHHII")
#: struct inet_diag_req_v2 without its socket id: family, protocol, extensions, pad, states.
_REQUEST = struct.Struct("=BBBBI")
_SOCKET_ID_SIZE = 48  # struct inet_diag_sockid
#: struct inet_diag_msg: family, state, timer, retransmits, then the socket id (ports in
#: network order, two 16-byte addresses, interface, cookie), expiry, queues, uid, inode.
_MESSAGE = struct.Struct("=BBBB2s2s16s16sI8sIIIII")

#: Linux's address families by IP version, and its protocol number of TCP (the core
#: imports no socket module: these are the kernel ABI's numbers).
AF_INET, AF_INET6 = 2, 10
FAMILIES = {4: AF_INET, 6: AF_INET6}
_IPPROTO_TCP = 6


def states_mask(*states: int) -> int:
    """The `idiag_states` bit mask of TCP states (the numbers of /proc/net/tcp)."""
    mask = 0
    for state in states:
        mask |= 1 << state
    return mask


def dump_request(version: int, states: int, sequence: int = 1) -> bytes:
    """The netlink message asking for every TCP socket of IP `version` in `states`."""
    body = _REQUEST.pack(FAMILIES[version], _IPPROTO_TCP, 0, 0, states)
    body += bytes(_SOCKET_ID_SIZE)
    flags = _NLM_F_REQUEST | _NLM_F_DUMP
    return _HEADER.pack(_HEADER.size + len(body), SOCK_DIAG_BY_FAMILY, flags, sequence, 0) + body


@dataclass(frozen=True, slots=True)
class DumpPart:
    """What one datagram of a dump's answer held, and whether it was the last."""

    sockets: list[TcpSocket]
    done: bool


def parse_dump(data: bytes) -> DumpPart:
    """The sockets of one datagram of the kernel's answer.  ValueError on an error message
    (the kernel's errno in it) or a malformed one."""
    sockets: list[TcpSocket] = []
    offset = 0
    while offset + _HEADER.size <= len(data):
        length, kind, _, _, _ = _HEADER.unpack_from(data, offset)
        if length < _HEADER.size or offset + length > len(data):
            raise ValueError(f"sock_diag: message length {length} does not fit the datagram")
        body = offset + _HEADER.size
        if kind == _NLMSG_DONE:
            return DumpPart(sockets, done=True)
        if kind == _NLMSG_ERROR:
            code = struct.unpack_from("=i", data, body)[0] if length >= _HEADER.size + 4 else 0
            raise ValueError(f"sock_diag: the kernel answered error {-code}")
        if kind == SOCK_DIAG_BY_FAMILY:
            if length < _HEADER.size + _MESSAGE.size:
                raise ValueError(f"sock_diag: a socket record of {length} bytes is too short")
            sockets.append(_socket(data, body))
        offset += (length + 3) & ~3  # NLMSG_ALIGN
    return DumpPart(sockets, done=False)


def _socket(data: bytes, offset: int) -> TcpSocket:
    family, state, _, _, sport, dport, source, dest, *_, inode = _MESSAGE.unpack_from(data, offset)
    if family == AF_INET:
        local, remote = ipaddress.ip_address(source[:4]), ipaddress.ip_address(dest[:4])
    elif family == AF_INET6:
        local, remote = ipaddress.ip_address(source), ipaddress.ip_address(dest)
    else:
        raise ValueError(f"sock_diag: a socket of address family {family}")
    return TcpSocket(
        local,
        int.from_bytes(sport, "big"),
        state,
        inode,
        remote,
        int.from_bytes(dport, "big"),
    )
