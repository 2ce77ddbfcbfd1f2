"""A file the daemon keeps equal to a value across restarts (the pause, the replay memory).

Each owner decides when to save; `KeptFile.keep` writes only a value that differs from
what the file holds, and treats a failed write (disk full, directory gone) as a state,
not an event: logged once when it starts and once when it ends, retried at each save.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

Value = TypeVar("Value")


class KeptFile(Generic[Value]):
    """`path`, holding `what` (for the log), written by `save`; `on_disk` at start."""

    def __init__(
        self,
        path: Path,
        what: str,
        save: Callable[[Path, Value], None],
        on_disk: Value,
        log: logging.Logger,
    ) -> None:
        self.path = path
        self.what = what
        self.save = save
        self.on_disk = on_disk
        self.log = log
        self.failing = False

    def keep(self, value: Value) -> None:
        """Make the file hold `value`, unless it does already."""
        if value == self.on_disk:
            return
        try:
            self.save(self.path, value)
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
