"""Saying, again and again, that the pool runs without a key; and once, at start, what
`gossip.networks` widens.

An unkeyed pool is only ever run because the configuration asked for it
(`gossip.insecure = true`), but a line at start-up scrolls away and the setting
outlives the reason it was set.  So the warning repeats every hour for as long as the
pool is unkeyed (a SIGHUP can add or drop the key), and `p2pcc status` and `p2pcc
doctor` say it too.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import trio

from p2pcc.config.key_file import INSECURE_COST
from p2pcc.config.values import IPNetwork
from p2pcc.core.node import LocalNode

log = logging.getLogger("p2pcc.daemon")

#: Seconds between two warnings while the pool is unkeyed.
INSECURE_WARNING_PERIOD = 3600.0

INSECURE_WARNING = (
    f"unauthenticated pool (gossip.insecure = true): {INSECURE_COST}. "
    "Give the pool a key: `p2pcc keygen` on one machine, `p2pcc join` on the others"
)


def warn_insecure() -> None:
    """Log the warning once (at start, every hour, and when a reload drops the key)."""
    log.warning(INSECURE_WARNING)


async def serve_insecure_warnings(
    node: LocalNode,
    *,
    period: float = INSECURE_WARNING_PERIOD,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Warn now and every `period` seconds while `node`'s pool has no key."""
    task_status.started()
    while True:
        if not node.statistics(trio.current_time()).authenticated:
            warn_insecure()
        await trio.sleep(period)


def warn_wider_pool(
    networks: Sequence[IPNetwork], allow: Sequence[IPNetwork], *, keyed: bool
) -> None:
    """Say what `gossip.networks` widens (trust is never widened silently), and which of
    them an explicit `distccd.allow` leaves out."""
    if not networks:
        return
    log.warning(
        "gossip.networks widens the pool beyond the gossip interface: peers announcing "
        "addresses in %s are accepted as members, and distccd's default allow list takes "
        "those networks in; %s",
        ", ".join(map(str, networks)),
        "the door admits only live members"
        if keyed
        else "without a key, anyone who can reach this machine from there can join and send jobs",
    )
    left_out = [n for n in networks if allow and not any(_within(n, a) for a in allow)]
    if left_out:
        log.warning(
            "distccd.allow leaves out gossip.networks %s: members there cannot send jobs "
            "here (add them to distccd.allow, or set it to [] to follow the pool)",
            ", ".join(map(str, left_out)),
        )


def _within(network: IPNetwork, outer: IPNetwork) -> bool:
    return network.version == outer.version and network.subnet_of(outer)  # type: ignore[arg-type]
