"""A real control socket served in-process, for CLI tests of commands that talk to it
(the configuration fixtures they use are in conftest.py).

The daemon side is the real `serve_control` with a test handler; the CLI runs in a
worker thread so the server keeps running in the test's trio loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import trio

from p2pcc.cli import main
from p2pcc.daemon.control import ControlHandler, serve_control


class UnexpectedHandler:
    """A control handler for which every request is unexpected: a command's test
    overrides the requests it sends, so any other one fails the test."""

    def status(self) -> dict[str, Any]:
        raise AssertionError("not expected")

    def pause(
        self, seconds: float | None, reason: str, uid: int, *, hand_back: bool = False
    ) -> dict[str, Any]:
        raise AssertionError("not expected")

    def resume(self, uid: int) -> dict[str, Any]:
        raise AssertionError("not expected")

    def hosts(self, fingerprint: str) -> dict[str, Any]:
        raise AssertionError("not expected")

    def remeasure(self, peers: tuple[str, ...], uid: int) -> dict[str, Any]:
        raise AssertionError("not expected")


@asynccontextmanager
async def daemon(runtime_dir: Path, handler: ControlHandler) -> AsyncIterator[None]:
    """A control socket answering with `handler` for the duration of the block."""
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_control, runtime_dir / "control", handler)
        yield
        nursery.cancel_scope.cancel()


async def run_cli(*argv: str) -> int:
    """The CLI in a worker thread, so the server keeps running in this trio loop."""
    status: int = await trio.to_thread.run_sync(partial(main, list(argv)))
    return status
