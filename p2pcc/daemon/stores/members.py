"""Keeping a few members beyond our link in `members` beside the node id, and trying them
as seeds after a restart (`p2pcc.core.remembered` says why and which).

`load_members` reads the file at start-up and screens each address by the pool's rule
(own addresses left out); `Contacts` hands the node its configured seeds plus those
members; `serve_member_store` saves the members beyond our link every `SAVE_INTERVAL`
seconds when they have changed, and at exit, and stops trying the remembered ones as
soon as a member beyond our link is known, or `REMEMBERED_SPAN` after start-up.  Only
members are saved, never an empty list: a pool all on our link writes no file, and a
node that found nobody keeps what it had for its next start.  A damaged file is ignored
(one warning) and replaced at the next save; losing it costs only this fallback.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Sequence
from pathlib import Path

import trio

from p2pcc.core.addresses import AddressPool, Refusal, check_address
from p2pcc.core.gossip_types import Endpoint
from p2pcc.core.node import LocalNode
from p2pcc.core.remembered import (
    MAX_FILE_BYTES,
    REMEMBERED_SPAN,
    contacts,
    decode,
    encode,
    to_remember,
)
from p2pcc.daemon.stores.kept_file import KeptFile, Worker, in_worker_thread
from p2pcc.safe_files import read_regular_file, replace_file

log = logging.getLogger("p2pcc.daemon.members")

FILE_NAME = "members"

#: Seconds between saves of changed members: the pool's membership moves slowly, and a
#: save is a small write.
SAVE_INTERVAL = 30.0

Members = tuple[Endpoint, ...]


def members_file(id_file: Path) -> Path:
    """Where the members of the node whose id lives in `id_file` are kept."""
    return id_file.with_name(FILE_NAME)


def load_members(path: Path, pool: AddressPool, own: Collection[str]) -> Members:
    """The members kept in `path` that the pool's rule still admits; () when there is no
    file or it cannot be used."""
    data = read_regular_file(str(path), MAX_FILE_BYTES + 1)
    if data is None:
        if os.path.lexists(path):
            log.warning("cannot read the remembered members %s; starting without them", path)
        return ()
    try:
        kept = decode(data)
    except ValueError as error:
        log.warning("ignoring the damaged remembered members %s: %s", path, error)
        return ()
    usable = []
    for address, port in kept:
        verdict = check_address(address, pool)
        if not isinstance(verdict, Refusal) and str(verdict) not in own:
            usable.append((str(verdict), port))
    if usable:
        log.info("trying %d member(s) remembered in %s until the pool is known", len(usable), path)
    return tuple(usable)


class Contacts:
    """The node's seeds: the configured ones (`set_seeds`, from the seeds task) and, until
    `forget_remembered`, the members remembered from the last run."""

    def __init__(self, node: LocalNode, remembered: Members) -> None:
        self._node = node
        self._seeds: Members = ()
        self.remembered = remembered

    def set_seeds(self, seeds: Sequence[Endpoint], now: float) -> None:
        self._seeds = tuple(seeds)
        self._node.set_seeds(contacts(self._seeds, self.remembered), now)

    def forget_remembered(self, why: str, now: float) -> None:
        if self.remembered:
            self.remembered = ()
            log.info("no longer trying the remembered members: %s", why)
            self._node.set_seeds(self._seeds, now)


async def serve_member_store(
    path: Path,
    node: LocalNode,
    contacts_: Contacts,
    *,
    on_disk: Members = (),
    interval: float = SAVE_INTERVAL,
    span: float = REMEMBERED_SPAN,
    worker: Worker = in_worker_thread,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Keep `path` holding the members beyond our link; end the remembered ones' trial
    once one of them is known, or `span` seconds on."""
    kept = KeptFile(path, "the remembered members", save_members, on_disk, log, worker=worker)

    def current() -> Members:
        return to_remember(node.beyond_link(), node.peers())

    started_at = trio.current_time()
    task_status.started()
    try:
        while True:
            await trio.sleep(interval)
            now, members = trio.current_time(), current()
            if members:
                contacts_.forget_remembered("the pool beyond our link is known", now)
                await kept.keep(members)
            elif now >= started_at + span:  # the file stays: the next start tries again
                contacts_.forget_remembered(f"none answered in {span:.0f} s", now)
    finally:
        # Cancelled at shutdown: what we know now is what the next start should try.
        with trio.CancelScope(shield=True):
            if members := current():
                await kept.keep(members)


def save_members(path: Path, members: Members) -> None:
    """Write `members` atomically, readable by the daemon's user only; OSError if not."""
    replace_file(path, encode(members), mode=0o600)
