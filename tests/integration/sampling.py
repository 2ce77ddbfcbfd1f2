"""Watching a pool while a build blocks the test: one thread calling `sample` every
`period` seconds for the duration of a `with` block (`PeriodicSampler`).

Every watcher of the integration tests (the client's hosts lines during a build, its
view of peers under a network fault, the slots busy builders offer) is one of these,
so starting, stopping and joining the thread is written once.
"""

from __future__ import annotations

import threading
from typing import Self


class PeriodicSampler:
    """Calls `sample()` every `period` seconds in a thread while the `with` block runs;
    subclasses say what a sample is."""

    def __init__(self, period: float) -> None:
        self._period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)

    def sample(self) -> None:
        """Take one sample (called in the thread)."""
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.wait(self._period):
            self.sample()

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
