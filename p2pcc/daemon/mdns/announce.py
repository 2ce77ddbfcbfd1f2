"""Keeping our `_distcc._tcp` record, for stock `distcc +zeroconf` clients, in step with
whether distccd serves and how many slots it has."""

from __future__ import annotations

import logging
from dataclasses import replace

from p2pcc.core.errors import P2pccError
from p2pcc.core.node import LocalNode
from p2pcc.core.node_change import Change
from p2pcc.core.zeroconf_names import DistccdAnnouncement
from p2pcc.daemon.changes import ChangeBoard
from p2pcc.daemon.mdns.discovery import Discovery
from p2pcc.daemon.mdns.service import probe_announcement

log = logging.getLogger("p2pcc.discovery")


async def announce_distccd(
    node: LocalNode, board: ChangeBoard, discovery: Discovery, port: int, cpus: int
) -> None:
    """Publish our distccd while it serves, withdraw it while it does not."""
    probed: DistccdAnnouncement | None = None
    published: tuple[bool, int] | None = None
    with board.subscribe(Change.STATUS) as status_changes:
        while True:
            wanted = (node.serving, max(1, node.status.slots))
            if wanted != published:
                if node.serving and probed is None:
                    try:
                        probed = await probe_announcement(port=port, cpus=cpus, jobs=wanted[1])
                    except P2pccError as error:
                        log.warning("not announcing distccd to stock distcc clients: %s", error)
                        return
                if node.serving and probed is not None:
                    discovery.set_distccd(replace(probed, jobs=wanted[1]))
                else:
                    discovery.set_distccd(None)
                published = wanted
            await status_changes.wait()
