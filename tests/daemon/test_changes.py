"""Each task wakes for the changes it subscribed to, never misses one, and only those."""

from __future__ import annotations

import trio
import trio.testing

from p2pcc.core.node_change import Change
from p2pcc.daemon.changes import ChangeBoard


async def test_a_change_wakes_only_the_subscribers_of_its_flags(
    autojump_clock: trio.testing.MockClock,
) -> None:
    board = ChangeBoard()
    woken: list[tuple[str, float, Change]] = []

    async def waiter(name: str, flags: Change, *, task_status: trio.TaskStatus[None]) -> None:
        with board.subscribe(flags) as subscription:
            task_status.started()
            while True:
                change = await subscription.wait()
                woken.append((name, trio.current_time(), change))

    async with trio.open_nursery() as nursery:
        await nursery.start(waiter, "pause", Change.PAUSE)
        await nursery.start(waiter, "ranking", Change.RANKING)
        await trio.sleep(1)
        board.notify(Change.PEERS | Change.TIMER)
        await trio.sleep(1)
        board.notify(Change.PAUSE | Change.STATUS)
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert sorted(woken, key=lambda wake: (wake[1], wake[0])) == [
        ("ranking", 1.0, Change.PEERS),
        ("pause", 2.0, Change.PAUSE),
        ("ranking", 2.0, Change.STATUS),
    ]


async def test_a_change_while_the_task_is_busy_is_not_lost(
    autojump_clock: trio.testing.MockClock,
) -> None:
    board = ChangeBoard()
    with board.subscribe(Change.SEND) as subscription:
        board.notify(Change.SEND)  # before the task waits
        board.notify(Change.SEND)
        assert await subscription.wait(deadline=100.0) == Change.SEND
        assert trio.current_time() == 0.0
        assert await subscription.wait(deadline=5.0) == Change.NOTHING  # told once, not twice
        assert trio.current_time() == 5.0


async def test_a_finished_subscription_hears_nothing_more() -> None:
    board = ChangeBoard()
    with board.subscribe(Change.PAUSE) as subscription:
        pass
    board.notify(Change.PAUSE)
    assert await subscription.wait(deadline=trio.current_time()) == Change.NOTHING


async def test_a_narrowed_wait_ends_only_for_its_wakers_and_still_returns_the_rest(
    autojump_clock: trio.testing.MockClock,
) -> None:
    board = ChangeBoard()
    with board.subscribe(Change.RANKING) as subscription:
        async with trio.open_nursery() as nursery:

            async def changes() -> None:
                await trio.sleep(1)
                board.notify(Change.LOAD)  # does not end the narrowed wait...
                await trio.sleep(1)
                board.notify(Change.PEERS)  # ...this does

            nursery.start_soon(changes)
            got = await subscription.wait(deadline=10.0, wakers=Change.PEERS)
        assert (trio.current_time(), got) == (2.0, Change.LOAD | Change.PEERS)
        board.notify(Change.LOAD)
        # A pending change that is no waker: the wait runs to its deadline, then says it.
        assert await subscription.wait(deadline=5.0, wakers=Change.PEERS) == Change.LOAD
        assert trio.current_time() == 5.0
        board.notify(Change.LOAD)
        assert await subscription.wait(deadline=9.0) == Change.LOAD  # wide again
        assert trio.current_time() == 5.0
