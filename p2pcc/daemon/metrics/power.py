"""Feeding measurements into the node: metrics samples, the power index, and what
mDNS tells stock distcc clients about our distccd.

Calibration compiles a few files (seconds on a first start, instant from the cache), so
it runs beside the other tasks: the node advertises power 1.0 until it finishes.  The
advertised power is the estimate times the slot speed a cgroup CPU limit leaves
(`LocalMetrics.slot_speed`): calibration measures CPU time, which a quota does not slow.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import trio

from p2pcc.core.errors import P2pccError
from p2pcc.core.metrics import LocalMetrics, PowerEstimate, limited_power, node_power
from p2pcc.core.zeroconf_names import DistccdAnnouncement
from p2pcc.daemon.mdns.discovery import Discovery
from p2pcc.daemon.mdns.service import probe_announcement
from p2pcc.daemon.metrics.calibrate import calibrate
from p2pcc.daemon.node import LocalCompiler, Node

log = logging.getLogger("p2pcc.metrics")


class Measurements:
    """Turns metrics samples and calibration into the node's advertised numbers."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.estimate = PowerEstimate()
        self.slot_speed = 1.0

    def power(self, now: float) -> float:
        """The power to advertise: the estimate, slowed by our cgroup CPU limit."""
        return limited_power(self.estimate.power(now), self.slot_speed)

    def publish(self, sample: LocalMetrics) -> None:
        """A fresh metrics sample: blend served-job progress into power, update the node."""
        now = trio.current_time()
        self.estimate = self.estimate.observe_progress(sample.job_progress, now)
        self.slot_speed = sample.slot_speed
        self.node.local_slots = max(1, sample.cpus)
        self.node.set_measurements(
            now,
            cpus=sample.cpus,
            load=sample.foreign_load,
            mem_available=sample.mem_available,
            slots=sample.slots,
            jobs=sample.jobs,
            power=self.power(now),
        )

    async def calibrate(self, compilers: Sequence[LocalCompiler], cache_dir: Path) -> None:
        """Measure (or recall) each offered compiler's speed and adopt the node's power."""
        offered = [c.fingerprint for c in compilers if not c.withheld]
        powers = await calibrate(offered, cache_dir)
        self.estimate = self.estimate.recalibrated(node_power(powers.values()))
        now = trio.current_time()
        self.node.set_measurements(now, power=self.power(now))
        log.info(
            "power index %.2f from %d compilers (slot speed %.2f)",
            self.power(now),
            len(powers),
            self.slot_speed,
        )


async def announce_distccd(node: Node, discovery: Discovery, port: int, cpus: int) -> None:
    """Keep our `_distcc._tcp` record in step with whether distccd serves and its slots."""
    probed: DistccdAnnouncement | None = None
    published: tuple[bool, int] | None = None
    while True:
        wanted = (node.serving, max(1, node.engine.status.slots))
        if wanted != published:
            if node.serving and probed is None:
                try:
                    probed = await probe_announcement(port=port, cpus=cpus, jobs=wanted[1])
                except P2pccError as error:
                    log.warning("not announcing distccd to stock distcc clients: %s", error)
                    return
            if node.serving and probed is not None:
                discovery.set_distccd(
                    DistccdAnnouncement(
                        port,
                        cpus,
                        wanted[1],
                        probed.cc_machine,
                        probed.cc_version,
                        probed.distcc_version,
                        probed.gnuhost,
                    )
                )
            else:
                discovery.set_distccd(None)
            published = wanted
        await node.changed.wait_until(trio.current_time() + 60)
