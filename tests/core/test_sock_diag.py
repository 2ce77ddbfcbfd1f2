"""The sock_diag request and answer as bytes: the layout of linux/inet_diag.h, records of
both families, a dump spread over datagrams, the kernel's error, and broken answers.

(The daemon's reader is checked against the kernel itself in tests/daemon/test_turnaround.py.)
"""

from __future__ import annotations

import ipaddress
import socket
import struct

import pytest

from p2pcc.core import sock_diag
from p2pcc.core.procfs import TCP_ESTABLISHED, TCP_LISTEN, TcpSocket

HEADER = struct.Struct("=IHHII")


def record(family: int, local: tuple[str, int], remote: tuple[str, int], inode: int = 3) -> bytes:
    """One SOCK_DIAG_BY_FAMILY message as the kernel writes it (inet_diag_msg)."""

    def padded(text: str) -> bytes:
        return ipaddress.ip_address(text).packed.ljust(16, b"\0")

    body = struct.pack("=BBBB", family, TCP_ESTABLISHED, 0, 0)
    body += local[1].to_bytes(2, "big") + remote[1].to_bytes(2, "big")
    body += padded(local[0]) + padded(remote[0]) + struct.pack("=I", 0) + bytes(8)
    body += struct.pack("=IIIII", 0, 0, 0, 1000, inode)
    return HEADER.pack(HEADER.size + len(body), 20, 2, 1, 0) + body


DONE = HEADER.pack(HEADER.size + 4, 3, 2, 1, 0) + struct.pack("=i", 0)


def test_the_request_asks_for_a_tcp_dump_of_the_states_given() -> None:
    request = sock_diag.dump_request(6, sock_diag.states_mask(TCP_ESTABLISHED), sequence=7)
    length, kind, flags, sequence, port = HEADER.unpack_from(request)
    assert (length, kind, flags, sequence, port) == (len(request), 20, 0x301, 7, 0)
    assert len(request) == 16 + 56  # nlmsghdr + inet_diag_req_v2
    family, protocol, ext, pad, states = struct.unpack_from("=BBBBI", request, 16)
    assert (family, protocol, ext, pad) == (socket.AF_INET6, socket.IPPROTO_TCP, 0, 0)
    assert states == 1 << TCP_ESTABLISHED == 0b10
    assert request[24:] == bytes(48)  # any socket id
    assert sock_diag.states_mask(TCP_ESTABLISHED, TCP_LISTEN) == 0b10000000010


def test_records_of_both_families_become_sockets() -> None:
    data = record(socket.AF_INET, ("10.0.0.1", 40000), ("10.0.0.2", 3632), 555)
    data += record(socket.AF_INET6, ("fe80::1", 40001), ("::ffff:10.0.0.3", 3632), 556)
    part = sock_diag.parse_dump(data)
    assert not part.done
    assert part.sockets == [
        TcpSocket(
            ipaddress.ip_address("10.0.0.1"), 40000, 1, 555, ipaddress.ip_address("10.0.0.2"), 3632
        ),
        TcpSocket(
            ipaddress.ip_address("fe80::1"),
            40001,
            1,
            556,
            ipaddress.ip_address("::ffff:10.0.0.3"),
            3632,
        ),
    ]


def test_a_dump_ends_at_its_done_message() -> None:
    first = sock_diag.parse_dump(record(socket.AF_INET, ("10.0.0.1", 1), ("10.0.0.2", 2), 3))
    last = sock_diag.parse_dump(record(socket.AF_INET, ("10.0.0.1", 4), ("10.0.0.2", 5), 6) + DONE)
    assert (len(first.sockets), first.done) == (1, False)
    assert (len(last.sockets), last.done) == (1, True)
    assert sock_diag.parse_dump(DONE) == sock_diag.DumpPart([], done=True)


def test_the_kernels_error_is_a_value_error_naming_it() -> None:
    error = HEADER.pack(HEADER.size + 4 + 16, 2, 0, 1, 0) + struct.pack("=i", -13) + bytes(16)
    with pytest.raises(ValueError, match="error 13"):
        sock_diag.parse_dump(error)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (record(socket.AF_INET, ("10.0.0.1", 1), ("10.0.0.2", 2), 3)[:-8], "does not fit"),
        (HEADER.pack(8, 20, 0, 1, 0), "does not fit"),
        (HEADER.pack(HEADER.size + 20, 20, 0, 1, 0) + bytes(20), "too short"),
        (record(socket.AF_UNIX, ("10.0.0.1", 1), ("10.0.0.2", 2), 3), "address family 1"),
    ],
)
def test_a_broken_answer_is_a_value_error(data: bytes, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        sock_diag.parse_dump(data)


def test_messages_of_other_types_are_skipped() -> None:
    noop = HEADER.pack(HEADER.size, 1, 0, 1, 0)  # NLMSG_NOOP
    part = sock_diag.parse_dump(noop + record(socket.AF_INET, ("10.0.0.1", 1), ("10.0.0.2", 2), 3))
    assert [sock.port for sock in part.sockets] == [1]
