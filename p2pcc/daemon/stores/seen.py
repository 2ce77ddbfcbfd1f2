"""Keeping the peer table's replay memory across restarts, in `seen` beside the node id.

Without it a restarted daemon takes any authentic datagram as new until the node that
sent it is heard again, so a recording of a departed node could make it look alive
(docs/security.md).  `restore_seen_orders` feeds the kept orders back into the table at
start-up; `serve_seen_store` saves the table's orders every `SAVE_INTERVAL` seconds
when they have changed, and once more when the daemon stops.  What can still be
replayed after a crash is what was sent after the last save, each datagram once.

Losing the file costs only that protection, so it is written without fsync and a
damaged file is ignored (one warning) and replaced at the next save.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import trio

from p2pcc.core.node import LocalNode
from p2pcc.core.seen_orders import MAX_FILE_BYTES, decode_seen_orders, encode_seen_orders
from p2pcc.daemon.stores.kept_file import KeptFile, Worker, in_worker_thread
from p2pcc.safe_files import read_regular_file, replace_file

log = logging.getLogger("p2pcc.daemon.seen")

FILE_NAME = "seen"

#: Seconds between saves of a changed memory: a datagram sent within the last
#: interval before a crash can be replayed once to the restarted daemon.
SAVE_INTERVAL = 5.0

Orders = dict[bytes, tuple[int, int]]


def seen_file(id_file: Path) -> Path:
    """Where the replay memory of the node whose id lives in `id_file` is kept."""
    return id_file.with_name(FILE_NAME)


def load_seen_orders(path: Path) -> Orders:
    """The orders kept in `path`; empty when there is none or it cannot be used."""
    data = read_regular_file(str(path), MAX_FILE_BYTES + 1)
    if data is None:
        if os.path.lexists(path):
            log.warning("cannot read the replay memory %s; starting without it", path)
        return {}
    try:
        return decode_seen_orders(data)
    except ValueError as error:
        log.warning("ignoring the damaged replay memory %s: %s", path, error)
        return {}


def restore_seen_orders(node: LocalNode, path: Path) -> Orders:
    """Make `node` refuse what an earlier run of this daemon had seen; returns that."""
    orders = load_seen_orders(path)
    node.remember(orders)
    if orders:
        log.info("remembering the newest datagram of %d node(s) from %s", len(orders), path)
    return orders


async def serve_seen_store(
    path: Path,
    current: Callable[[], Orders],
    *,
    on_disk: Orders | None = None,
    interval: float = SAVE_INTERVAL,
    worker: Worker = in_worker_thread,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Keep `path` close to `current()` (the table's seen orders), and exact at exit.
    Saves run through `worker`; a failed one is logged once, and tried again at each
    later save."""
    kept = KeptFile(path, "the replay memory", save_seen_orders, on_disk or {}, log, worker=worker)
    task_status.started()
    try:
        while True:
            await trio.sleep(interval)
            await kept.keep(current())
    finally:
        # Cancelled at shutdown: the final save (< 240 KiB, no fsync) is waited for.
        with trio.CancelScope(shield=True):
            await kept.keep(current())


def save_seen_orders(path: Path, orders: Orders) -> None:
    """Write `orders` atomically and durably (a power cut must not leave the replay
    memory empty), readable by the daemon's user only; OSError if not."""
    replace_file(path, encode_seen_orders(orders), mode=0o600, durable=True)
