"""Moving gossip datagrams between the network and the node: sockets only.

Two UDP sockets on the gossip port: one bound to the multicast group (so it receives
only the group's traffic) and one bound to the interface's own address, which receives
unicast and sends everything.  Sending from the unicast socket gives every datagram the
gossip port as its source, so a peer can answer a unicast sender at the address it came
from.  The interface is always named explicitly (IP_MULTICAST_IF, the membership's
interface index): on a multi-homed machine or in a namespace with no default route,
letting the kernel choose would send multicast nowhere.

Nothing a destination or the network does ends the task: a send that fails for one
destination (a vanished route, an address the kernel refuses) is counted by reason,
logged once per destination and reason, and skipped, and the other destinations still
get the datagram; a failed receive is counted, logged once per socket and reason, and
followed by a short pause, so a persistent error cannot spin the CPU.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import math
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

import trio

from p2pcc.core import limits
from p2pcc.core.gossip_types import Endpoint, LogOnce, Outgoing, RefusedAddress, Transport
from p2pcc.core.node import LocalNode
from p2pcc.core.node_change import Change
from p2pcc.core.peers import PeerJoined, PeerLeft
from p2pcc.core.reports import Reports
from p2pcc.daemon.changes import ChangeBoard, Subscription

log = logging.getLogger("p2pcc.gossip")

#: Datagrams are capped at MAX_DATAGRAM; reading one byte more detects an oversized one
#: (the decoder rejects it) instead of silently truncating it into something parseable.
RECEIVE_BUFFER = limits.MAX_DATAGRAM + 1

#: A LEAVE is sent this many times: one lost datagram should not leave peers waiting
#: for the dead timeout.
LEAVE_COPIES = 2

#: Peers joining or leaving logged one line each per minute.  Past that they are counted
#: and summed up in one line: in an unkeyed pool anyone can make up thousands of nodes,
#: and each would otherwise cost a line in the journal.
MEMBERSHIP_LINES_PER_MINUTE = 30

#: Seconds a receive loop waits after a failed receive: a socket that fails at once,
#: every time, must not spin the CPU, and one that recovers loses little.
RECEIVE_ERROR_PAUSE = 0.1

#: What `sendto` raises for one destination: the kernel's refusals (any OSError, the
#: resolver's gaierror included) and a malformed address tuple's.
SEND_ERRORS = (OSError, ValueError, TypeError, OverflowError)

_RESOLVER_ERRORS = {getattr(socket, name): name for name in dir(socket) if name.startswith("EAI_")}


def error_reason(error: BaseException) -> str:
    """A short, stable token for a socket error: `EACCES`, `EAI_NONAME`, `ValueError`."""
    code = error.errno if isinstance(error, OSError) else None
    if isinstance(error, socket.gaierror):
        return _RESOLVER_ERRORS.get(code, "gaierror")
    if code is not None and code in errno.errorcode:
        return errno.errorcode[code]
    return type(error).__name__


def log_refused_address(refused: RefusedAddress) -> None:
    """One line for an address the node refused (the engine calls this once per
    address and reason)."""
    log.warning(
        "refused address %s of node %s (via %s): %s",
        refused.address,
        refused.node_id.hex(),
        refused.via,
        refused.reason,
    )


class MembershipLog:
    """Logs peers joining and leaving, one line each up to a budget per window."""

    def __init__(self, budget: int = MEMBERSHIP_LINES_PER_MINUTE, window: float = 60.0) -> None:
        self.budget = budget
        self.window = window
        self._window_start = -math.inf
        self._lines = 0
        self._unlogged = 0

    def note(self, now: float, message: str, *args: object) -> None:
        """Log `message % args` at `now` unless this window's budget is spent."""
        if now >= self._window_start + self.window:
            if self._unlogged:
                log.info(
                    "%d more peers joined or left in %.0f s (not logged one by one)",
                    self._unlogged,
                    self.window,
                )
            self._window_start, self._lines, self._unlogged = now, 0, 0
        if self._lines < self.budget:
            self._lines += 1
            log.info(message, *args)
        else:
            self._unlogged += 1


@dataclass(frozen=True, slots=True)
class GossipEndpoint:
    """Where gossip happens: group, port, TTL and the interface (index and address)."""

    group: ipaddress.IPv4Address | ipaddress.IPv6Address
    port: int
    ttl: int
    interface_index: int
    interface_address: str  # the address unicast binds to and peers dial

    @property
    def family(self) -> socket.AddressFamily:
        return socket.AF_INET6 if self.group.version == 6 else socket.AF_INET

    def group_address(self) -> tuple[str, int] | tuple[str, int, int, int]:
        if self.group.version == 6:
            return (str(self.group), self.port, 0, self.interface_index)
        return (str(self.group), self.port)

    def unicast_address(self, endpoint: Endpoint) -> tuple[str, int] | tuple[str, int, int, int]:
        if self.group.version == 6:
            return (endpoint[0], endpoint[1], 0, self.interface_index)
        return endpoint


@dataclass
class GossipSockets:
    multicast: trio.socket.SocketType
    unicast: trio.socket.SocketType


class SocketTrouble:
    """Failed sends and receives: counted by reason in the node's reports, each
    (destination or socket, reason) logged once, in a bounded memory like the engine's."""

    def __init__(self, reports: Reports, now: float) -> None:
        self._reports = reports
        self._log_once = LogOnce(now)

    def send_failed(self, destination: str, error: Exception, now: float) -> None:
        reason = error_reason(error)
        self._reports.count_send_error(reason)
        if self._log_once.first((destination, reason), now):
            log.warning(
                "cannot send gossip to %s (%s: %s); skipping it", destination, reason, error
            )

    def receive_failed(self, transport: Transport, error: OSError, now: float) -> None:
        reason = error_reason(error)
        self._reports.count_receive_error(reason)
        if self._log_once.first((f"{transport.value} socket", reason), now):
            log.warning(
                "receiving %s gossip failed (%s: %s); going on", transport.value, reason, error
            )


@asynccontextmanager
async def open_gossip_sockets(endpoint: GossipEndpoint) -> AsyncIterator[GossipSockets]:
    """Both gossip sockets, joined and configured; closed on exit."""
    family = endpoint.family
    multicast = trio.socket.socket(family, socket.SOCK_DGRAM)
    unicast = trio.socket.socket(family, socket.SOCK_DGRAM)
    with multicast, unicast:
        for sock in (multicast, unicast):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            await _configure_ipv6(multicast, unicast, endpoint)
        else:
            await _configure_ipv4(multicast, unicast, endpoint)
        yield GossipSockets(multicast, unicast)


async def _configure_ipv4(
    multicast: trio.socket.SocketType, unicast: trio.socket.SocketType, ep: GossipEndpoint
) -> None:
    group = socket.inet_aton(str(ep.group))
    local = socket.inet_aton(ep.interface_address)
    multicast.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    await _bind(multicast, (str(ep.group), ep.port))
    mreqn = struct.pack("4s4si", group, local, ep.interface_index)
    multicast.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)
    await _bind(unicast, (ep.interface_address, ep.port))
    unicast.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, local)
    unicast.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ep.ttl)
    unicast.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)


async def _configure_ipv6(
    multicast: trio.socket.SocketType, unicast: trio.socket.SocketType, ep: GossipEndpoint
) -> None:
    multicast.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    multicast.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    await _bind(multicast, (str(ep.group), ep.port, 0, ep.interface_index))
    mreq = struct.pack("16sI", ep.group.packed, ep.interface_index)
    multicast.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
    scope = ep.interface_index if ipaddress.ip_address(ep.interface_address).is_link_local else 0
    await _bind(unicast, (ep.interface_address, ep.port, 0, scope))
    unicast.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ep.interface_index)
    unicast.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, ep.ttl)
    unicast.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 1)


async def _bind(
    sock: trio.socket.SocketType, address: tuple[str, int] | tuple[str, int, int, int]
) -> None:
    try:
        await sock.bind(address)
    except OSError as error:
        raise OSError(
            error.errno,
            f"cannot bind gossip socket to {address[0]} port {address[1]}: {error.strerror}",
        ) from None


async def serve_gossip(
    node: LocalNode,
    endpoint: GossipEndpoint,
    board: ChangeBoard,
    *,
    open_sockets: Callable[
        [GossipEndpoint], AbstractAsyncContextManager[GossipSockets]
    ] = open_gossip_sockets,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Send our state when the node says it is due, merge what arrives; LEAVE on the way
    out.  (`open_sockets` is for tests that wrap the sockets.)"""
    async with open_sockets(endpoint) as sockets, trio.open_nursery() as nursery:
        membership = MembershipLog()
        trouble = SocketTrouble(node.reports, trio.current_time())
        for sock, transport in (
            (sockets.multicast, Transport.MULTICAST),
            (sockets.unicast, Transport.UNICAST),
        ):
            nursery.start_soon(_receive_loop, node, sock, transport, membership, trouble)
        sender = _Sender(sockets.unicast, endpoint, trouble)
        try:
            with board.subscribe(Change.SEND) as sooner:
                task_status.started()
                await _send_loop(node, sender, sooner)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(2):
                await _send_leave(node, sender)
            nursery.cancel_scope.cancel()


async def _send_loop(node: LocalNode, sender: _Sender, sooner: Subscription) -> None:
    while True:
        for outgoing in node.datagrams_to_send(trio.current_time(), time.time()):
            await sender.send(outgoing)
        await sooner.wait(node.next_send)


async def _send_leave(node: LocalNode, sender: _Sender) -> None:
    for _ in range(LEAVE_COPIES):
        await sender.send(node.leave_datagram(trio.current_time(), time.time()))
    log.info("sent leave to the pool")


@dataclass
class _Sender:
    """Sends a datagram to the group and each unicast target, whatever each one does."""

    sock: trio.socket.SocketType
    endpoint: GossipEndpoint
    trouble: SocketTrouble

    async def send(self, outgoing: Outgoing) -> None:
        destinations = [self.endpoint.group_address()] if outgoing.multicast else []
        destinations += [self.endpoint.unicast_address(target) for target in outgoing.unicast]
        for destination in destinations:
            try:
                await self.sock.sendto(outgoing.data, destination)
            except SEND_ERRORS as error:
                # The next interval tries again, and peers' liveness timers tell the
                # real story; the other destinations must not wait for this one.
                self.trouble.send_failed(destination[0], error, trio.current_time())


async def _receive_loop(
    node: LocalNode,
    sock: trio.socket.SocketType,
    transport: Transport,
    membership: MembershipLog,
    trouble: SocketTrouble,
) -> None:
    while True:
        try:
            data, address = await sock.recvfrom(RECEIVE_BUFFER)
        except OSError as error:
            trouble.receive_failed(transport, error, trio.current_time())
            await trio.sleep(RECEIVE_ERROR_PAUSE)
            continue
        sender: Endpoint = (address[0], address[1])
        now = trio.current_time()
        received = node.receive(data, sender, transport, now)
        if received.dropped is not None:
            if received.log:
                log.warning(
                    "dropped datagram from %s: %s %s", sender[0], received.dropped, received.detail
                )
            continue
        for event in received.events:
            if isinstance(event, PeerJoined):
                membership.note(now, "peer %s joined (%s)", event.peer.status.name, sender[0])
            elif isinstance(event, PeerLeft):
                membership.note(now, "peer %s left", event.peer.status.name)
