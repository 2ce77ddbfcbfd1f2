"""A file the daemon keeps equal to a value across restarts (the pause, the replay memory).

Each owner decides when to save; `KeptFile.keep` writes only a value that differs from
what the file holds, and treats a failed write (disk full, directory gone) as a state,
not an event: logged once when it starts and once when it ends, retried at each save.
The write runs in a worker thread: an fsync, or a slow disk, must not stall the event
loop (gossip, the control socket) while it lasts.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Generic, TypeVar

import trio

Value = TypeVar("Value")

#: Runs a blocking call and returns when it has: `in_worker_thread`, or for tests under
#: trio's autojump clock (which jumps while a thread works) a call in place.
Worker = Callable[[Callable[[], None]], Awaitable[None]]


async def in_worker_thread(work: Callable[[], None]) -> None:
    """`work()` in one of trio's worker threads."""
    await trio.to_thread.run_sync(work)


class KeptFile(Generic[Value]):
    """`path`, holding `what` (for the log), written by `save` through `worker`;
    `on_disk` at start."""

    def __init__(
        self,
        path: Path,
        what: str,
        save: Callable[[Path, Value], None],
        on_disk: Value,
        log: logging.Logger,
        *,
        worker: Worker = in_worker_thread,
    ) -> None:
        self.path = path
        self.what = what
        self.save = save
        self.on_disk = on_disk
        self.log = log
        self.worker = worker
        self.failing = False

    async def keep(self, value: Value) -> None:
        """Make the file hold `value`, unless it does already."""
        if value == self.on_disk:
            return
        try:
            await self.worker(partial(self.save, self.path, value))
        except OSError as error:
            if not self.failing:
                self.log.error(
                    "cannot keep %s in %s: %s", self.what, self.path, error.strerror or error
                )
            self.failing = True
            return
        if self.failing:
            self.log.info("%s is kept in %s again", self.what, self.path)
        self.on_disk, self.failing = value, False
