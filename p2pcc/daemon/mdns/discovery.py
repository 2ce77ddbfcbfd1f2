"""mDNS as the daemon uses it: reports go into the node, and mDNS trouble never stops gossip.

Multicast gossip forms the pool by itself on most networks; mDNS adds the unicast
fallback where multicast is filtered, the stock-distcc listing and our `_distcc._tcp`
announcement.  So a failure to start or run mDNS (port 5353 unusable, a broken
interface) is logged and retried with back-off, and the rest of the daemon goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import trio

from p2pcc.core.errors import P2pccError
from p2pcc.core.node import LocalNode
from p2pcc.core.node_change import Change
from p2pcc.core.zeroconf_names import DiscoveredNode, DistccdAnnouncement
from p2pcc.daemon.changes import ChangeBoard, Subscription
from p2pcc.daemon.mdns.service import MdnsService, serve_mdns

log = logging.getLogger("p2pcc.discovery")

RETRY_FIRST = 5.0
RETRY_MAX = 300.0


@dataclass
class Discovery:
    """The daemon's handle on mDNS: what distccd announcement to publish, whenever it runs."""

    announcement: DistccdAnnouncement | None = None
    service: MdnsService | None = None

    def set_distccd(self, announcement: DistccdAnnouncement | None) -> None:
        """Publish (or withdraw, with None) our distccd for stock distcc clients."""
        self.announcement = announcement
        if self.service is not None:
            try:
                self.service.set_distccd(announcement)
            except P2pccError as error:
                log.warning("cannot announce distccd over mDNS: %s", error)


async def serve_discovery(
    node: LocalNode,
    board: ChangeBoard,
    *,
    addresses: Sequence[str],
    hostname: str,
    gossip_port: int,
    task_status: trio.TaskStatus[Discovery] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run mDNS for the node until cancelled, restarting it after failures, and at once
    under the new id when the node takes one (a cloned machine, p2pcc.core.same_id)."""
    discovery = Discovery()
    task_status.started(discovery)
    delay = RETRY_FIRST
    with board.subscribe(Change.IDENTITY) as identity_changes:
        while True:
            try:
                await _run_once(
                    node,
                    discovery,
                    identity_changes,
                    addresses=addresses,
                    hostname=hostname,
                    gossip_port=gossip_port,
                )
            except (P2pccError, OSError) as error:
                log.warning("mDNS stopped (%s); retrying in %.0f s", error, delay)
            else:
                log.info("publishing the new node id over mDNS")
                delay = RETRY_FIRST
                continue
            finally:
                discovery.service = None
            await trio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)


async def _run_once(
    node: LocalNode,
    discovery: Discovery,
    identity_changes: Subscription,
    *,
    addresses: Sequence[str],
    hostname: str,
    gossip_port: int,
) -> None:
    """mDNS under the node's id; returns when the node has taken another id."""

    def on_node(found: DiscoveredNode) -> None:
        # The node checks the addresses (p2pcc.core.addresses) before it uses any.
        node.discovered(found.node_id, found.addresses, found.port, trio.current_time())

    def on_node_gone(found: DiscoveredNode) -> None:
        node.undiscovered(found.node_id)

    async with trio.open_nursery() as nursery:
        service: MdnsService = await nursery.start(
            partial(
                serve_mdns,
                interface_addresses=list(addresses),
                hostname=hostname,
                node_id=node.node_id,
                node_name=node.status.name,
                gossip_port=gossip_port,
                distccd=discovery.announcement,
                on_node=on_node,
                on_node_gone=on_node_gone,
                on_stock_server=node.reports.add_stock_server,
                on_stock_server_gone=node.reports.remove_stock_server,
                on_drop=node.reports.count_mdns_drop,
            )
        )
        discovery.service = service
        discovery.set_distccd(discovery.announcement)  # what changed while starting
        published = node.node_id
        while node.node_id == published:
            await identity_changes.wait()
        nursery.cancel_scope.cancel()
