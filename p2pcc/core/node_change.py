"""What changed in a local node: the flags each daemon task waits for, and what peer-table
events amount to.

The node (`p2pcc.core.node.LocalNode`) announces every change as a `Change`; a task
subscribes to the flags it acts on (`p2pcc.daemon.changes`), so a datagram that only
repeats what a peer said wakes nobody, and one that moves a load wakes only what ranks.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

from p2pcc.core.peers import LivenessChanged, PeerEvent, PeerJoined, PeerUpdated


class Change(enum.Flag):
    """What changed in the node; each task waits for the flags it acts on."""

    NOTHING = 0
    PEERS = enum.auto()  # the peer table changed in anything ranking reads
    STATUS = enum.auto()  # our advertised status, or whether distccd serves
    PAUSE = enum.auto()  # a pause began, ended or was replaced
    COMPILERS = enum.auto()  # our compilers (names, stamps, native expansions)
    LIVENESS = enum.auto()  # a peer turned alive, suspect or dead (with PEERS)
    SEND = enum.auto()  # a gossip datagram fell due sooner than `next_send` said
    TIMER = enum.auto()  # `next_deadline` may have moved earlier
    IDENTITY = enum.auto()  # another node uses our id (`shared_id`), or we took a new one
    RANKING = PEERS | STATUS | COMPILERS  # what hosts lines and the state file follow


def table_change(events: Sequence[PeerEvent]) -> Change:
    """What table events change: ranking inputs, liveness, and the timer when a peer
    joined."""
    change = Change.NOTHING
    for event in events:
        if isinstance(event, PeerUpdated) and not event.changed:
            continue
        change |= Change.PEERS
        if isinstance(event, PeerJoined):
            change |= Change.TIMER
        elif isinstance(event, LivenessChanged):
            change |= Change.LIVENESS
    return change
