"""The state file is written at start, on change, at least every period, and removed at exit."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import trio
import trio.testing

from p2pcc import statefile
from p2pcc.daemon.state_writer import serve_state_file
from tests.daemon.test_node import FP, make_node


async def test_writes_at_start_on_change_and_every_period(
    autojump_clock: trio.testing.MockClock,
) -> None:
    node = make_node(1)
    writes: list[tuple[float, str]] = []

    async def record(path: Path, text: str) -> None:
        writes.append((trio.current_time(), text))

    async with trio.open_nursery() as nursery:
        await nursery.start(
            partial(serve_state_file, node, Path("unused"), period=3.0, write=record)
        )
        await trio.sleep(10.0)
        node.pause(None, "x", uid=0, now=trio.current_time(), wall=0.0)  # a change at t=10
        await trio.sleep(0.05)
        node.pause(None, "y", uid=0, now=trio.current_time(), wall=0.0)  # a burst: coalesced
        await trio.sleep(3.5)
        nursery.cancel_scope.cancel()
    times = [round(t, 3) for t, _ in writes]
    # Every 3 s; at once on a change; the burst's second change waits for min_gap (0.1 s);
    # then the period runs from the last write.
    assert times == [0.0, 3.0, 6.0, 9.0, 10.0, 10.1, 13.1]
    parsed = statefile.parse(writes[0][1])
    assert parsed is not None
    assert parsed[1] == {FP: (2, "localhost/2")}


async def test_real_file_is_replaced_and_removed_at_exit(tmp_path: Path) -> None:
    path = tmp_path / "state"
    node = make_node(1)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(serve_state_file, node, path, period=0.05))
            first = statefile.read(str(path))
            assert first is not None
            while (current := statefile.read(str(path))) is None or current[0] == first[0]:
                await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    assert not path.exists()  # compiles go local at once when the daemon stops
