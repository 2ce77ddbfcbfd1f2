"""What changed in a local node: the flags each daemon task waits for, and what peer-table
events amount to.

The node (`p2pcc.core.node.LocalNode`) announces every change as a `Change`; a task
subscribes to the flags it acts on (`p2pcc.daemon.changes`), so a datagram that only
repeats what a peer said wakes nobody, and one that moves a load wakes only what ranks.
A peer's update is PEERS when it changes whether and where the peer takes jobs (what
`NodeStatus.material_key` holds: state, slots, compilers, addresses, port) and LOAD
when it only moves figures the score reads (load, jobs, power, memory, CPUs) or only
people read (name, pause reason): in a large pool the second kind arrives many times
a second, and the state file follows it at a bounded rate (`p2pcc.daemon.state_writer`).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

from p2pcc.core.peers import LivenessChanged, PeerEvent, PeerJoined, PeerUpdated


class Change(enum.Flag):
    """What changed in the node; each task waits for the flags it acts on."""

    NOTHING = 0
    # Which peers may get jobs and where, or how they rank: a peer joined, left, turned
    # alive/suspect/dead or changed materially; the policy or delivered factors changed.
    PEERS = enum.auto()
    STATUS = enum.auto()  # our advertised status, or whether distccd serves
    PAUSE = enum.auto()  # a pause began, ended or was replaced
    COMPILERS = enum.auto()  # our compilers (names, stamps, native expansions)
    LIVENESS = enum.auto()  # a peer turned alive, suspect or dead (with PEERS)
    SEND = enum.auto()  # a gossip datagram fell due sooner than `next_send` said
    TIMER = enum.auto()  # `next_deadline` may have moved earlier
    IDENTITY = enum.auto()  # another node uses our id (`shared_id`), or we took a new one
    LOAD = enum.auto()  # a peer's load, jobs, power, memory… moved, nothing material
    # Who may connect to our distccd or be connected to: a peer joined, left, was
    # forgotten, changed liveness, addresses or distccd port (with PEERS).  A pause is
    # not one: the door and the job watch need not look at a thousand peers for it.
    MEMBERS = enum.auto()
    RANKING = PEERS | LOAD | STATUS | COMPILERS  # what hosts lines and the state file follow


def table_change(events: Sequence[PeerEvent]) -> Change:
    """What table events change: ranking inputs (material or load), liveness, and the
    timer when a peer joined."""
    change = Change.NOTHING
    for event in events:
        if isinstance(event, PeerUpdated):
            change |= _update_change(event)
            continue
        change |= Change.PEERS | Change.MEMBERS
        if isinstance(event, PeerJoined):
            change |= Change.TIMER
        elif isinstance(event, LivenessChanged):
            change |= Change.LIVENESS
    return change


def _update_change(event: PeerUpdated) -> Change:
    """PEERS for a material change of the peer's status, LOAD for any other."""
    if not event.changed:
        return Change.NOTHING
    now, before = event.peer.status, event.previous
    if (now.addresses, now.distccd_port) != (before.addresses, before.distccd_port):
        return Change.PEERS | Change.MEMBERS
    if now.material_key() != before.material_key():
        return Change.PEERS
    return Change.LOAD
