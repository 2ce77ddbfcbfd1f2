"""The /proc parsers: captured `/proc/net/tcp{,6}` tables and `/proc/net/igmp{,6}` groups.

(`/proc/<pid>/stat` parsing is tested with the job counting, in test_metrics.py.)
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

from p2pcc.core.procfs import (
    TCP_LISTEN,
    TcpSocket,
    connections_served,
    listeners,
    parse_proc_net_igmp,
    parse_proc_net_tcp,
)

PROC_NET_TCP = (
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
    "timeout inode\n"
    "   0: 0100007F:9C3F 00000000:0000 0A 00000000:00000000 00:00000000 00000000   102 "
    "       0 52439 1 0000000087936b29 100 0 0 10 0\n"
    "   1: 0100007F:D0A0 0100007F:9C3F 01 00000000:00000000 03:0000152D 00000000     0 "
    "       0 0 3 000000004ef3c363\n"
    "   2: 00000000:0E30 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0 "
    "       0 777 1 0000000087936b29 100 0 0 10 0\n"
    "   3: 0100007F:9C3F 0100007F:D0A0 01 00000000:00000000 00:00000000 00000000   102 "
    "       0 60001 1 0000000087936b29 20 4 30 10 -1\n"
)
PROC_NET_TCP6 = (
    "  sl  local_address                         remote_address                        st\n"
    "   0: 00000000000000000000000001000000:0E30 00000000000000000000000000000000:0000 0A "
    "00000000:00000000 00:00000000 00000000     0        0 888 1 0000000000000000 100 0 0 10 0\n"
    "   1: 000080FE00000000FF23C5DAE5F4A2B1:0E31 00000000000000000000000000000000:0000 0A "
    "00000000:00000000 00:00000000 00000000     0        0 999 1 0000000000000000 100 0 0 10 0\n"
)


def test_parse_proc_net_tcp() -> None:
    loopback = ipaddress.ip_address("127.0.0.1")
    assert parse_proc_net_tcp(PROC_NET_TCP) == [
        TcpSocket(loopback, 39999, TCP_LISTEN, 52439),
        TcpSocket(loopback, 53408, 0x01, 0, loopback, 39999),
        TcpSocket(ipaddress.IPv4Address(0), 3632, TCP_LISTEN, 777),
        TcpSocket(loopback, 39999, 0x01, 60001, loopback, 53408),
    ]
    assert parse_proc_net_tcp(PROC_NET_TCP6) == [
        TcpSocket(ipaddress.ip_address("::1"), 3632, TCP_LISTEN, 888),
        TcpSocket(ipaddress.ip_address("fe80::dac5:23ff:b1a2:f4e5"), 3633, TCP_LISTEN, 999),
    ]


def test_listeners_match_the_address_or_a_wildcard() -> None:
    sockets = parse_proc_net_tcp(PROC_NET_TCP) + parse_proc_net_tcp(PROC_NET_TCP6)
    assert listeners(sockets, ipaddress.ip_address("127.0.0.1"), 39999) == [52439]
    assert listeners(sockets, ipaddress.ip_address("127.0.0.2"), 39999) == []
    assert listeners(sockets, ipaddress.ip_address("192.168.1.7"), 3632) == [777]
    assert listeners(sockets, ipaddress.ip_address("::1"), 3632) == [888]
    dual_stack = [TcpSocket(ipaddress.IPv6Address(0), 3632, TCP_LISTEN, 5)]
    assert listeners(dual_stack, ipaddress.ip_address("10.1.2.3"), 3632) == [5]


def test_connections_served_counts_accepted_connections() -> None:
    sockets = parse_proc_net_tcp(PROC_NET_TCP)
    loopback = ipaddress.ip_address("127.0.0.1")
    assert connections_served(sockets, loopback, 39999) == 1  # not the listener
    assert connections_served(sockets, ipaddress.IPv4Address(0), 39999) == 1
    assert connections_served(sockets, ipaddress.ip_address("127.0.0.2"), 39999) == 0
    assert connections_served(sockets, loopback, 53408) == 0  # a client's end (TIME_WAIT)
    assert connections_served(sockets, loopback, 3632) == 0


def test_a_scoped_link_local_address_matches_the_kernels_unscoped_one() -> None:
    listening = TcpSocket(ipaddress.ip_address("fe80::7"), 3632, TCP_LISTEN, 5)
    served = TcpSocket(
        ipaddress.ip_address("fe80::7"), 3632, 0x01, 6, ipaddress.ip_address("fe80::9"), 40000
    )
    scoped = ipaddress.ip_address("fe80::7%eth0")
    assert listeners([listening, served], scoped, 3632) == [5]
    assert connections_served([listening, served], scoped, 3632) == 1


IGMP = """Idx\tDevice    : Count Querier\tGroup    Users Timer\tReporter
1\tlo        :     1      V3
\t\t\t\t010000E0     1 0:00000000\t\t0
4\teth0      :     2      V3
\t\t\t\t464AC0EF     1 0:00000000\t\t0
\t\t\t\t010000E0     1 0:00000000\t\t0
"""
IGMP6 = """1    lo              ff020000000000000000000000000001     1 0000000C 0
4    eth0            ff020000000000000000000000007063     1 00000004 0
"""


def test_joined_groups_are_read_per_interface() -> None:
    all_hosts = ipaddress.ip_address("224.0.0.1")
    assert parse_proc_net_igmp(IGMP, IGMP6) == {
        "lo": {all_hosts, ipaddress.ip_address("ff02::1")},
        "eth0": {
            ipaddress.ip_address("239.192.74.70"),
            all_hosts,
            ipaddress.ip_address("ff02::7063"),
        },
    }


def test_a_group_joined_by_a_real_socket_is_seen() -> None:
    group = ipaddress.ip_address("239.192.74.99")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = group.packed + ipaddress.ip_address("127.0.0.1").packed
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, request)
        joined = parse_proc_net_igmp(Path("/proc/net/igmp").read_text(), "")
    assert group in joined["lo"]
    after = parse_proc_net_igmp(Path("/proc/net/igmp").read_text(), "")
    assert group not in after.get("lo", set())
