"""A running `serve_gossip` survives every socket error on send and receive.

Real gossip tasks on loopback, real sockets; alpha's are wrapped so that sends to one
destination, and receives, raise each errno class the kernel or the resolver can give.
Alpha must go on gossiping with beta, count each error by reason and log each
(destination or socket, reason) once.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import pytest
import trio
import trio.testing

from p2pcc.core.addresses import AddressPool
from p2pcc.core.auth import Keyring
from p2pcc.core.gossip import GossipEngine
from p2pcc.core.local_compilers import LocalCompiler
from p2pcc.core.node import LocalNode
from p2pcc.core.peers import Liveness, PeerTimings
from p2pcc.daemon.changes import ChangeBoard
from p2pcc.daemon.gossip import (
    GossipEndpoint,
    GossipSockets,
    error_reason,
    open_gossip_sockets,
    serve_gossip,
)
from tests.core.local_nodes import fingerprint, status
from tests.core.policies import default_policy
from tests.daemon.test_gossip_transport import GROUP, free_udp_port

LOOPBACK_POOL = AddressPool(4, (ipaddress.ip_network("127.0.0.0/8"),))
ALPHA, BETA, TARGET = "127.0.0.2", "127.0.0.3", "127.0.0.9"
INTERVAL = 0.05


def os_error(code: int) -> OSError:
    return OSError(code, os.strerror(code))  # EACCES gives a PermissionError, and so on


#: Each errno class a send or a receive can meet (issue 11, attack 1).
OS_ERRORS: list[OSError] = [
    *(
        os_error(code)
        for code in (
            errno.EACCES,
            errno.EPERM,
            errno.ENETUNREACH,
            errno.EHOSTUNREACH,
            errno.EADDRNOTAVAIL,
            errno.EINVAL,
            errno.ENOBUFS,
            errno.EMSGSIZE,
        )
    ),
    socket.gaierror(socket.EAI_ADDRFAMILY, "Address family for hostname not supported"),
]
#: ... and what a malformed address tuple gives `sendto`.
SEND_ERRORS: list[Exception] = [
    *OS_ERRORS,
    ValueError("embedded null character"),
    TypeError("str, bytes or bytearray expected, not int"),
    OverflowError("sendto(): port must be 0-65535."),
]
ROUNDS = 2  # each error this many times: the second time is counted, not logged


class FaultySocket(trio.socket.SocketType):
    """A real socket that raises `send_errors` in turn for sends to `victim` and
    `receive_errors` in turn for its first receives (each `ROUNDS` times), then behaves;
    it tells `heard` the sender of each datagram it delivers."""

    def __init__(
        self,
        inner: trio.socket.SocketType,
        *,
        victim: str,
        send_errors: Sequence[Exception] = (),
        receive_errors: Sequence[OSError] = (),
        heard: trio.MemorySendChannel[str],
    ) -> None:
        super().__init__()
        self._inner = inner
        self._victim = victim
        self._send_errors = list(send_errors) * ROUNDS
        self._receive_errors = list(receive_errors) * ROUNDS
        self._heard = heard

    @property
    def faulty(self) -> bool:
        """Whether errors remain to be raised."""
        return bool(self._send_errors or self._receive_errors)

    async def sendto(self, *args: Any) -> int:
        data, address = args
        await trio.lowlevel.checkpoint()
        if address[0] == self._victim and self._send_errors:
            raise self._send_errors.pop(0)
        sent: int = await self._inner.sendto(data, address)
        return sent

    async def recvfrom(self, bufsize: int, flags: int = 0, /) -> tuple[bytes, Any]:
        await trio.lowlevel.checkpoint()
        if self._receive_errors:
            raise self._receive_errors.pop(0)
        data, address = await self._inner.recvfrom(bufsize, flags)
        self._heard.send_nowait(address[0])
        return data, address


def loopback_node(index: int, address: str, board: ChangeBoard) -> LocalNode:
    """A node announcing `address`, gossiping every INTERVAL, in a loopback pool."""
    now = trio.current_time()
    engine = GossipEngine(
        node_id=bytes([index]) * 16,
        incarnation=1,
        keyring=Keyring(),
        status=status(f"ws{index}", address),
        interval=INTERVAL,
        timings=PeerTimings(suspect_after=1.0, dead_after=3.0, forget_after=60.0),
        now=now,
        pool=LOOPBACK_POOL,
    )
    return LocalNode(
        engine=engine,
        compilers=[LocalCompiler(fingerprint(), ("gcc",))],
        policy=default_policy(),
        now=now,
        on_change=board.notify,
    )


def order_of(node: LocalNode, other: LocalNode) -> tuple[int, int]:
    """Where `node` is in `other`'s message order, asserting `other` is alive there."""
    (peer,) = node.peers()
    assert (peer.node_id, peer.liveness) == (other.node_id, Liveness.ALIVE)
    return peer.order


async def hear(heard: trio.MemoryReceiveChannel[str], sender: str, count: int) -> None:
    """Wait until `count` more datagrams from `sender` were delivered."""
    while count:
        if await heard.receive() == sender:
            count -= 1


class Pair:
    """Alpha with faulty sockets and beta with tapped ones, gossiping on one port."""

    def __init__(self) -> None:
        self.port = free_udp_port()
        self.lo = socket.if_nametoindex("lo")
        self.alpha_board, self.beta_board = ChangeBoard(), ChangeBoard()
        self.alpha = loopback_node(1, ALPHA, self.alpha_board)
        self.beta = loopback_node(2, BETA, self.beta_board)
        for node in (self.alpha, self.beta):
            node.set_serving(True, trio.current_time())
        self.to_alpha, self.alpha_heard = trio.open_memory_channel[str](1_000_000)
        self.to_beta, self.beta_heard = trio.open_memory_channel[str](1_000_000)
        self.faulty: list[FaultySocket] = []

    def endpoint(self, address: str) -> GossipEndpoint:
        return GossipEndpoint(GROUP, self.port, 1, self.lo, address)

    async def start(
        self,
        nursery: trio.Nursery,
        victim: str,
        send_errors: Sequence[Exception],
        receive_errors: Sequence[OSError],
    ) -> None:
        """Run both tasks; alpha's sends to `victim` and its receives fail as given."""

        @asynccontextmanager
        async def alpha_sockets(endpoint: GossipEndpoint) -> AsyncIterator[GossipSockets]:
            async with open_gossip_sockets(endpoint) as real:
                wrap = partial(FaultySocket, victim=victim, heard=self.to_alpha)
                multicast = wrap(real.multicast, receive_errors=receive_errors)
                unicast = wrap(real.unicast, send_errors=send_errors, receive_errors=receive_errors)
                self.faulty += [multicast, unicast]
                yield GossipSockets(multicast, unicast)

        @asynccontextmanager
        async def beta_sockets(endpoint: GossipEndpoint) -> AsyncIterator[GossipSockets]:
            async with open_gossip_sockets(endpoint) as real:
                tap = partial(FaultySocket, victim="", heard=self.to_beta)
                yield GossipSockets(tap(real.multicast), tap(real.unicast))

        alpha_task = partial(serve_gossip, open_sockets=alpha_sockets)
        await nursery.start(alpha_task, self.alpha, self.endpoint(ALPHA), self.alpha_board)
        beta_task = partial(serve_gossip, open_sockets=beta_sockets)
        await nursery.start(beta_task, self.beta, self.endpoint(BETA), self.beta_board)

    async def wait_until_faults_are_spent(self) -> None:
        """Let the pair gossip until every injected error was raised."""
        while any(sock.faulty for sock in self.faulty):
            await hear(self.alpha_heard, BETA, 1)


async def test_every_send_and_receive_error_is_survived_and_gossip_goes_on(
    caplog: pytest.LogCaptureFixture, autojump_clock: trio.testing.MockClock
) -> None:
    pair = Pair()
    # An mDNS record that alpha unicasts to: the one destination whose sends fail.
    pair.alpha.discovered(b"\x09" * 16, [TARGET], pair.port, trio.current_time())
    with caplog.at_level(logging.INFO, logger="p2pcc.gossip"), trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await pair.start(nursery, TARGET, SEND_ERRORS, OS_ERRORS)
            await pair.wait_until_faults_are_spent()
            before = (order_of(pair.alpha, pair.beta), order_of(pair.beta, pair.alpha))
            # Alpha still hears beta's state, and beta alpha's (probes come in between).
            while order_of(pair.alpha, pair.beta) == before[0]:
                await hear(pair.alpha_heard, BETA, 1)
            while order_of(pair.beta, pair.alpha) == before[1]:
                await hear(pair.beta_heard, ALPHA, 1)
            nursery.cancel_scope.cancel()

    sent = [error_reason(error) for error in SEND_ERRORS]
    received = [error_reason(error) for error in OS_ERRORS]
    assert pair.alpha.reports.send_errors() == dict.fromkeys(sorted(sent), ROUNDS)
    # Both sockets met every receive error, ROUNDS times each.
    assert pair.alpha.reports.receive_errors() == dict.fromkeys(sorted(received), 2 * ROUNDS)
    lines = [record.getMessage() for record in caplog.records]
    for reason in sent:
        wanted = f"cannot send gossip to {TARGET} ({reason}: "
        assert sum(line.startswith(wanted) for line in lines) == 1, (reason, lines)
    for reason in received:
        for transport in ("multicast", "unicast"):
            wanted = f"receiving {transport} gossip failed ({reason}: "
            assert sum(line.startswith(wanted) for line in lines) == 1, (reason, lines)


async def test_a_failing_group_send_still_reaches_the_unicast_targets(
    autojump_clock: trio.testing.MockClock,
) -> None:
    pair = Pair()
    group = str(GROUP)
    with trio.fail_after(20):
        # A listener where mDNS says a node is: it must get alpha's datagrams while
        # every send to the group (the first destination of each datagram) fails.
        listener = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with listener:
            await listener.bind((TARGET, pair.port))
            pair.alpha.discovered(b"\x09" * 16, [TARGET], pair.port, trio.current_time())
            async with trio.open_nursery() as nursery:
                await pair.start(nursery, group, SEND_ERRORS, ())
                datagrams = 0
                while any(sock.faulty for sock in pair.faulty):
                    _, (source, _) = await listener.recvfrom(65536)
                    datagrams += source == ALPHA
                nursery.cancel_scope.cancel()
    assert datagrams >= len(SEND_ERRORS) * ROUNDS - 1
    reasons = sorted(error_reason(error) for error in SEND_ERRORS)
    assert pair.alpha.reports.send_errors() == dict.fromkeys(reasons, ROUNDS)


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (os_error(errno.EACCES), "EACCES"),
        (os_error(errno.ENOBUFS), "ENOBUFS"),
        (socket.gaierror(socket.EAI_ADDRFAMILY, "..."), "EAI_ADDRFAMILY"),
        (socket.gaierror(12345, "..."), "gaierror"),
        (OSError("no errno"), "OSError"),
        (ValueError("embedded null character"), "ValueError"),
    ],
)
def test_socket_errors_are_counted_under_stable_tokens(error: Exception, reason: str) -> None:
    assert error_reason(error) == reason
