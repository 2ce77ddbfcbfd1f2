"""Each bed workstation's own load average (tests/integration/own_load.py)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from tests.integration.netbed import TestBed
from tests.integration.own_load import LINE_BYTES, damped, loadavg_text, own_load
from tests.integration.pool import wait_until

#: Spins for at most a minute, whatever happens to the test.
BUSY = "import time\nend = time.monotonic() + 60\nwhile time.monotonic() < end: pass\n"


def test_one_runnable_task_for_a_minute_gives_the_kernels_figures() -> None:
    loads = (0.0, 0.0, 0.0)
    for _ in range(60):
        loads = damped(loads, 1, 1.0)
    assert loads[0] == pytest.approx(1 - math.exp(-1))
    assert loads[1] == pytest.approx(1 - math.exp(-60 / 300))
    assert loads[2] == pytest.approx(1 - math.exp(-60 / 900))
    assert damped(loads, 0, 0.0) == loads


def test_the_file_always_has_one_length_and_parses() -> None:
    for loads, tasks in (((0.0, 0.0, 0.0), 0), ((12.34, 5.6, 0.01), 17), ((999.99,) * 3, 999)):
        text = loadavg_text(loads, tasks)
        assert len(text.encode()) == LINE_BYTES
        assert float(text.split()[0]) == pytest.approx(loads[0], abs=0.005)


@pytest.mark.integration
@pytest.mark.netns
def test_a_busy_workstation_loads_itself_and_not_its_neighbour(
    bed: TestBed, shared_tmp: Path
) -> None:
    busy, idle = bed.add_workstation("busy"), bed.add_workstation("idle")
    with own_load([busy, idle], shared_tmp) as keeper:
        spinner = busy.start([sys.executable, "-c", BUSY])
        try:
            wait_until(lambda: keeper.load(busy) >= 0.2, 40, "busy's load to rise")
            seen = {ws.name: ws.run(["cat", "/proc/loadavg"]).stdout for ws in (busy, idle)}
        finally:
            spinner.kill()
            spinner.wait(timeout=10)
    print(f"\n/proc/loadavg as each workstation sees it: {seen}")
    assert float(seen["busy"].split()[0]) >= 0.2
    assert float(seen["idle"].split()[0]) == 0.0  # nothing runs there
