"""Acting on another machine found gossiping under our node id: one log line, and a
new id kept on disk.

The node finds the other machine and decides which of the two takes a new id
(`p2pcc.core.same_id`); this task is the shell around that: it logs each finding once,
and when the new id is ours to take (once the other machine has been answered under the
shared id, so that it learns of it too), draws it, hands it to the node (which gossips it
at once) and keeps it in `node.id_file`, durably and in a worker thread (an fsync must
not stall gossip), so that a restart keeps it too.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

from p2pcc.core import limits
from p2pcc.core.node import LocalNode
from p2pcc.core.node_change import Change
from p2pcc.core.same_id import SharedId
from p2pcc.daemon.changes import ChangeBoard
from p2pcc.daemon.stores.identity import IdentityError, store_node_id

log = logging.getLogger("p2pcc.identity")

#: Least seconds between two new ids.  Cloned machines need one each; a forger in an
#: unkeyed pool who copies each new id could otherwise make this node renew (a durable
#: write, a log line, its peers relearned) at every round of gossip.
RENEWAL_GAP = 60.0

Store = Callable[[Path, bytes], Awaitable[None]]


async def store_in_thread(path: Path, node_id: bytes) -> None:
    """`store_node_id` in a worker thread."""
    await trio.to_thread.run_sync(store_node_id, path, node_id)


async def serve_identity_renewal(
    node: LocalNode,
    board: ChangeBoard,
    id_file: Path,
    *,
    store: Store = store_in_thread,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Log each machine found using our id; take a new id when the node wants one."""
    with board.subscribe(Change.IDENTITY) as changes:
        task_status.started()
        logged: SharedId | None = None
        renewed_at = -RENEWAL_GAP
        while True:
            shared = node.shared_id
            if shared is not None and shared != logged:
                if node.wants_new_id:
                    # At most one new id per RENEWAL_GAP: wait, then look again.
                    await trio.sleep_until(renewed_at + RENEWAL_GAP)
                    if node.shared_id != shared or not node.wants_new_id:
                        continue
                    logged, renewed_at = shared, trio.current_time()
                    await _renew(node, shared, id_file, store)
                elif not shared.new_id_here:
                    logged = shared
                    log.warning(
                        "the machine at %s uses this node's id %s too (cloned from one "
                        "disk image?); it takes a new id",
                        shared.namesake.address,
                        shared.node_id.hex(),
                    )
            await changes.wait()


async def _renew(node: LocalNode, shared: SharedId, id_file: Path, store: Store) -> None:
    node_id = secrets.token_bytes(limits.NODE_ID_BYTES)
    node.renew_identity(node_id, trio.current_time())
    log.warning(
        "the machine at %s uses this node's id %s too (cloned from one disk image?); "
        "this node takes the new id %s",
        shared.namesake.address,
        shared.node_id.hex(),
        node_id.hex(),
    )
    try:
        await store(id_file, node_id)
    except IdentityError as error:
        log.error("%s; the new id lasts until the daemon stops", error)
