"""A `kept_file.Worker` for tests under trio's autojump clock, which jumps while a
worker thread runs: the save is made in place, before the clock can move."""

from __future__ import annotations

from collections.abc import Callable


async def in_place(work: Callable[[], None]) -> None:
    """`work()`, on the event loop."""
    work()
