"""Measurements: what the node advertises from a metrics sample and the power estimate."""

from __future__ import annotations

from dataclasses import replace

import pytest
import trio
import trio.testing

from p2pcc.core.metrics import GIB, LocalMetrics, PowerEstimate
from p2pcc.daemon.metrics.power import Measurements
from tests.daemon.test_node import make_node

IDLE = LocalMetrics(
    cpus=2, load_raw=0.0, served_load=0.0, foreign_load=0.0, mem_available=8 * GIB, jobs=0, slots=2
)


def serving_measurements() -> Measurements:
    """Measurements of a serving node whose calibration found power 2.0."""
    node = make_node(1)
    node.set_serving(True, trio.current_time())
    measurements = Measurements(node)
    measurements.estimate = PowerEstimate(calibrated=2.0)
    return measurements


async def test_an_unlimited_node_advertises_its_estimate(
    autojump_clock: trio.testing.MockClock,
) -> None:
    measurements = serving_measurements()
    node = measurements.node
    measurements.publish(IDLE)
    status = node.engine.status
    assert (status.cpus, status.slots, status.power, node.local_slots) == (2, 2, 2.0, 2)


async def test_a_cpu_limit_slows_the_advertised_power(
    autojump_clock: trio.testing.MockClock,
) -> None:
    measurements = serving_measurements()
    node = measurements.node
    measurements.publish(replace(IDLE, cpus=1, slots=0, cpu_limit=0.15, slot_speed=0.15))
    status = node.engine.status
    assert (status.cpus, status.slots, node.local_slots) == (1, 0, 1)
    assert status.power == pytest.approx(0.3)
    assert measurements.power(trio.current_time()) == pytest.approx(0.3)
