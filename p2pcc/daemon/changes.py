"""Waking each daemon task for the node changes it acts on, and for nothing else.

The node (`p2pcc.core.node.LocalNode`) announces every change as a `Change` flag through
its `on_change` callback; `ChangeBoard.notify` is that callback.  A task subscribes once
to the flags it cares about and then waits on its subscription.  A change that arrives
while the task is busy is kept as pending, so the next wait returns at once: no wake-up
is ever lost between two waits.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import trio

from p2pcc.core.node_change import Change


class Subscription:
    """One task's interest in some flags; see the module docstring."""

    def __init__(self, flags: Change) -> None:
        self.flags = flags
        self._pending = Change.NOTHING
        self._wakers = flags
        self._event = trio.Event()

    def notify(self, change: Change) -> None:
        """Record `change` if it is of interest, and wake the waiter if it waits for it."""
        if change & self.flags:
            self._pending |= change & self.flags
            if change & self._wakers:
                self._event.set()

    async def wait(self, deadline: float = math.inf, wakers: Change | None = None) -> Change:
        """The flags changed since the last wait, waiting until one does or `deadline`
        passes (then an empty flag, or what arrived meanwhile).  `wakers` narrows which
        flags end the wait this time; the others are still returned when it ends.  The
        state writer, having seen one load move, waits out its gap without being woken
        by the next twenty a second of a large pool."""
        self._wakers = self.flags if wakers is None else wakers & self.flags
        if not self._pending & self._wakers:
            with trio.move_on_at(deadline):
                await self._event.wait()
        pending, self._pending = self._pending, Change.NOTHING
        self._event = trio.Event()
        return pending


class ChangeBoard:
    """Hands each change to every subscription interested in it."""

    def __init__(self) -> None:
        self._subscriptions: list[Subscription] = []

    def notify(self, change: Change) -> None:
        for subscription in self._subscriptions:
            subscription.notify(change)

    @contextmanager
    def subscribe(self, flags: Change) -> Iterator[Subscription]:
        """A subscription to `flags` for the duration of the `with` block."""
        subscription = Subscription(flags)
        self._subscriptions.append(subscription)
        try:
            yield subscription
        finally:
            self._subscriptions.remove(subscription)
