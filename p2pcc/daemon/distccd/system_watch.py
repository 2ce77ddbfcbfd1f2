"""Watching a distccd p2pcc does not run (`distccd.manage = false`): whether something
listens on its port, checked every few seconds."""

from __future__ import annotations

import ipaddress
import logging
from typing import TYPE_CHECKING

import trio

from p2pcc.core.procfs import listeners
from p2pcc.daemon.distccd.system import tcp_sockets

if TYPE_CHECKING:
    from p2pcc.daemon.distccd.supervisor import DistccdState, SupervisorTiming

log = logging.getLogger("p2pcc.daemon.distccd")


async def watch_system_distccd(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
    port: int,
    state: DistccdState,
    timing: SupervisorTiming,
    task_status: trio.TaskStatus[DistccdState],
) -> None:
    announced = False
    while True:
        serving = bool(listeners(tcp_sockets(), address, port))
        if serving != state.serving:
            if serving:
                log.info("a distccd listens on %s:%d: serving", address, port)
            else:
                log.warning(
                    "nothing listens on %s:%d: not serving (distccd.manage is false, so "
                    "distccd must be started outside p2pcc)",
                    address,
                    port,
                )
        state.report(serving)
        if not announced:
            announced = True
            task_status.started(state)
        await trio.sleep(timing.check_interval)
