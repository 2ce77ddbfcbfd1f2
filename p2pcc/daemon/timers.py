"""Running the node's timers: peers falling silent, a timed pause running out.

The node says when it next has timed work (`next_deadline`); this task sleeps until
then, or until the node says that moment may have come earlier (a peer joined, a
timed pause began), and hands it the time.
"""

from __future__ import annotations

import trio

from p2pcc.core.node import LocalNode
from p2pcc.core.node_change import Change
from p2pcc.daemon.changes import ChangeBoard


async def serve_timers(
    node: LocalNode,
    board: ChangeBoard,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Call `node.handle_timer` whenever its deadline passes, for as long as we run."""
    with board.subscribe(Change.TIMER) as earlier:
        task_status.started()
        while True:
            node.handle_timer(trio.current_time())
            await earlier.wait(node.next_deadline())
