"""mDNS/DNS-SD: publish our gossip endpoint and distccd; find p2pcc nodes and stock distccd.

`serve_mdns` opens python-zeroconf (`p2pcc.daemon.mdns.backend`) and runs an
`MdnsService` on it.  The service registers our `_p2pcc._tcp` instance, publishes our
distccd as stock `distccd --zeroconf` does while `set_distccd` says it serves (updates
paced, a withdrawal at once), and browses both types.  Browse events come from
zeroconf's threads through a `ThreadBridge` (trio's `run_sync_soon` into a bounded
channel) and go to one `Watcher` per type (`p2pcc.daemon.mdns.browse`), which resolves
each appearing name in a worker thread, parses it with `p2pcc.core.zeroconf_parse` and
reports it through the callbacks: p2pcc nodes and stock servers separately, never mixed.
Bad records are dropped, each reported by reason to `on_drop` (the daemon counts them
for `status`) and logged once per instance and reason; tables and in-flight work are
capped.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import trio

from p2pcc.core import limits
from p2pcc.core.wire import MAJOR_VERSION
from p2pcc.core.zeroconf_names import (
    DISTCC_SERVICE_TYPE,
    P2PCC_SERVICE_TYPE,
    DiscoveredNode,
    DistccdAnnouncement,
    ServiceRecord,
    StockServer,
    ZeroconfNameError,
)
from p2pcc.core.zeroconf_parse import is_p2pcc_instance, parse_distcc_service, parse_p2pcc_service
from p2pcc.core.zeroconf_publish import (
    distcc_record,
    first_word,
    p2pcc_record,
    parse_distccd_version,
    publish_delay,
)
from p2pcc.daemon.mdns.backend import (
    BrowseEvent,
    MdnsBackend,
    MdnsError,
    ResolvedService,
    ThreadBridge,
    open_zeroconf_backend,
)
from p2pcc.daemon.mdns.browse import Drops, Watcher

log = logging.getLogger("p2pcc.mdns")

#: Seconds `cc -dumpmachine` and friends may take; they answer in milliseconds.
_PROBE_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class MdnsIdentity:
    """Who we are on the link: names, our addresses and the gossip UDP port."""

    hostname: str
    node_id: bytes
    node_name: str
    addresses: tuple[str, ...]
    gossip_port: int


@dataclass(frozen=True, slots=True)
class MdnsListeners:
    """Where discoveries go.  Called in trio's thread; they must not block."""

    on_node: Callable[[DiscoveredNode], None]
    on_node_gone: Callable[[DiscoveredNode], None]
    on_stock_server: Callable[[StockServer], None]
    on_stock_server_gone: Callable[[StockServer], None]


class MdnsService:
    """Our mDNS presence and discoveries over one backend; the handle `serve_mdns` starts."""

    def __init__(
        self,
        backend: MdnsBackend,
        identity: MdnsIdentity,
        listeners: MdnsListeners,
        distccd: DistccdAnnouncement | None = None,
        on_drop: Callable[[str], None] | None = None,
    ) -> None:
        """`on_drop`, when given, hears the reason of every dropped record: the daemon
        counts them across mDNS restarts for `status`."""
        self._backend = backend
        self._identity = identity
        self._p2pcc_record = p2pcc_record(
            hostname=identity.hostname,
            node_id=identity.node_id,
            node_name=identity.node_name,
            addresses=identity.addresses,
            gossip_port=identity.gossip_port,
            proto=MAJOR_VERSION,
        )
        self._drops = Drops(on_drop)
        self._nodes = Watcher(
            P2PCC_SERVICE_TYPE,
            parse=self._parse_node,
            cap=limits.MAX_MDNS_NODES,
            found=listeners.on_node,
            gone=listeners.on_node_gone,
            drops=self._drops,
        )
        self._stock = Watcher(
            DISTCC_SERVICE_TYPE,
            parse=_parse_stock,
            cap=limits.MAX_STOCK_SERVERS,
            found=listeners.on_stock_server,
            gone=listeners.on_stock_server_gone,
            drops=self._drops,
        )
        self._wanted: ServiceRecord | None = None
        self._applied: ServiceRecord | None = None
        self._wake = trio.Event()
        self.set_distccd(distccd)

    def set_distccd(self, announcement: DistccdAnnouncement | None) -> None:
        """Publish (or update, or with None withdraw) our distccd; applied in the background.

        Raises ZeroconfNameError at once if the announcement cannot be published.
        """
        self._wanted = None
        if announcement is not None:
            self._wanted = distcc_record(
                hostname=self._identity.hostname,
                node_id=self._identity.node_id,
                addresses=self._identity.addresses,
                announcement=announcement,
            )
        self._wake.set()

    async def run(
        self, *, task_status: trio.TaskStatus[MdnsService] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Browse, publish, and report until cancelled; started once both browsers run."""
        send, receive = trio.open_memory_channel[BrowseEvent](limits.MAX_MDNS_EVENTS)
        bridge = ThreadBridge(trio.lowlevel.current_trio_token(), send)
        async with send, receive, trio.open_nursery() as nursery:
            for watcher in (self._nodes, self._stock):
                await self._backend.browse(watcher.service_type, bridge.post)
            nursery.start_soon(self._dispatch, receive, nursery)
            nursery.start_soon(self._publish_p2pcc)
            nursery.start_soon(self._publish_distccd)
            task_status.started(self)

    async def _dispatch(
        self, receive: trio.MemoryReceiveChannel[BrowseEvent], nursery: trio.Nursery
    ) -> None:
        async for event in receive:
            for watcher in (self._nodes, self._stock):
                if event.service_type.lower() == watcher.service_type:
                    watcher.on_event(event, nursery, self._backend)

    def _parse_node(self, resolved: ResolvedService) -> DiscoveredNode | None:
        node = parse_p2pcc_service(
            resolved.name, resolved.properties, resolved.addresses, resolved.port, MAJOR_VERSION
        )
        return None if node.node_id == self._identity.node_id else node

    async def _publish_p2pcc(self) -> None:
        while True:
            try:
                await self._backend.register(self._p2pcc_record)
            except MdnsError as error:
                log.warning("%s; retrying in %.0f s", error, limits.MDNS_MIN_UPDATE_INTERVAL)
                await trio.sleep(limits.MDNS_MIN_UPDATE_INTERVAL)
            else:
                return

    async def _publish_distccd(self) -> None:
        """Bring the published distcc record to the wanted one, paced by `publish_delay`."""
        last_change = -math.inf
        while True:
            if self._wanted == self._applied:
                await self._wake.wait()
                self._wake = trio.Event()
                continue
            delay = publish_delay(
                applied=self._applied,
                wanted=self._wanted,
                last_change=last_change,
                now=trio.current_time(),
                interval=limits.MDNS_MIN_UPDATE_INTERVAL,
            )
            if delay > 0:
                with trio.move_on_after(delay):
                    await self._wake.wait()
                self._wake = trio.Event()
                continue
            try:
                await self._apply(self._wanted)
            except MdnsError as error:
                log.warning("%s; retrying in %.0f s", error, limits.MDNS_MIN_UPDATE_INTERVAL)
                await trio.sleep(limits.MDNS_MIN_UPDATE_INTERVAL)
            else:
                last_change = trio.current_time()

    async def _apply(self, wanted: ServiceRecord | None) -> None:
        applied = self._applied
        if applied is not None and (wanted is None or not applied.same_registration(wanted)):
            await self._backend.unregister(applied)
            self._applied = None
            log.info("stopped announcing our distccd to stock distcc clients")
        if wanted is None:
            return
        if self._applied is None:
            await self._backend.register(wanted)
            log.info("announcing our distccd to stock distcc clients as %s", wanted.type_)
        else:
            await self._backend.update(wanted)
        self._applied = wanted


def _parse_stock(resolved: ResolvedService) -> StockServer | None:
    if is_p2pcc_instance(resolved.properties):
        return None  # a p2pcc node's distccd: we know that node better through gossip
    return parse_distcc_service(
        resolved.name, resolved.properties, resolved.addresses, resolved.port
    )


async def probe_announcement(
    *, port: int, cpus: int, jobs: int, cc: str = "cc", distccd: str = "distccd"
) -> DistccdAnnouncement:
    """What stock `distccd --zeroconf` would announce here: runs `cc` twice, `distccd` once.

    Raises MdnsError if `cc` cannot tell its target and version; a missing `distccd`
    only leaves the optional `distcc` and `gnuhost` keys out.
    """
    machine = first_word(await _output([cc, "-dumpmachine"]))
    version = first_word(await _output([cc, "-dumpversion"]))
    try:
        distcc_version, gnuhost = parse_distccd_version(await _output([distccd, "--version"]))
    except (MdnsError, ZeroconfNameError) as error:
        log.info("announcing distccd without its version: %s", error)
        distcc_version = gnuhost = ""
    return DistccdAnnouncement(port, cpus, jobs, machine, version, distcc_version, gnuhost)


async def _output(argv: list[str]) -> str:
    try:
        with trio.fail_after(_PROBE_TIMEOUT):
            result = await trio.run_process(
                argv, capture_stdout=True, capture_stderr=True, check=False
            )
    except (OSError, trio.TooSlowError) as error:
        raise MdnsError(f"cannot run {argv[0]}: {str(error) or 'timed out'}") from error
    if result.returncode != 0:
        raise MdnsError(f"{' '.join(argv)} exited with status {result.returncode}")
    return result.stdout[: limits.MAX_PROBE_OUTPUT].decode("utf-8", errors="replace")


async def serve_mdns(
    *,
    interface_addresses: Sequence[str],
    hostname: str,
    node_id: bytes,
    node_name: str,
    gossip_port: int,
    distccd: DistccdAnnouncement | None,
    on_node: Callable[[DiscoveredNode], None],
    on_node_gone: Callable[[DiscoveredNode], None],
    on_stock_server: Callable[[StockServer], None],
    on_stock_server_gone: Callable[[StockServer], None],
    on_drop: Callable[[str], None] | None = None,
    task_status: trio.TaskStatus[MdnsService] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run mDNS on these interfaces until cancelled; `task_status` gets the `MdnsService`.

    Raises MdnsError if multicast DNS cannot start, ZeroconfNameError if our own names
    or announcement cannot be published.  On exit everything is withdrawn and closed.
    """
    identity = MdnsIdentity(hostname, node_id, node_name, tuple(interface_addresses), gossip_port)
    listeners = MdnsListeners(on_node, on_node_gone, on_stock_server, on_stock_server_gone)
    async with open_zeroconf_backend(interface_addresses) as backend:
        service = MdnsService(backend, identity, listeners, distccd, on_drop)
        await service.run(task_status=task_status)
