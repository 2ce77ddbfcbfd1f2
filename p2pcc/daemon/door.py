"""Keeping distccd's door (p2pcc.core.door) in step with the pool, with `nft`.

`open_door` sets the door's nftables table up before distccd starts and removes it after
everything else has stopped (distccd included, so its drain happens behind a closed
door), also when the daemon fails.  When the table cannot be set up (no `nft`, no
CAP_NET_ADMIN, no nf_tables) the door records why, and the daemon runs without distccd:
it advertises no slots and `status` says why, never a silent open door.

`serve_door` wakes when a peer joins, leaves or changes liveness or addresses
(Change.MEMBERS; a pause or a moving load does not wake it), works out
the member addresses and, when they differ from what the sets hold, applies the
difference in one `nft -f -` transaction.  A failed update is logged once and retried
with a full resync until one succeeds; it never ends the daemon.  Every COUNTER_PERIOD
it reads the refusal counter for `status`.  Each `nft` run is bounded by NFT_TIMEOUT.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

import trio

from p2pcc.config import Config
from p2pcc.config.model import DistccdConfig
from p2pcc.core.distccd_args import default_allow
from p2pcc.core.door import (
    REFUSED_COUNTER,
    DoorPolicy,
    DoorReport,
    IPAddress,
    admitted,
    delete_script,
    failure_with_fix,
    open_networks,
    refused_count,
    resync_script,
    table_script,
    update_script,
)
from p2pcc.core.errors import P2pccError
from p2pcc.core.node import LocalNode
from p2pcc.core.node_change import Change
from p2pcc.daemon.changes import ChangeBoard
from p2pcc.daemon.distccd.supervisor import DistccdState
from p2pcc.daemon.startup import StartFacts

log = logging.getLogger("p2pcc.daemon.door")

#: Seconds one `nft` run may take; it takes milliseconds (benchmarks/door_latency.py).
NFT_TIMEOUT = 5.0
#: Seconds between retries of a failed update.
RETRY_DELAY = 1.0
#: Seconds between readings of the refusal counter for `status`.
COUNTER_PERIOD = 5.0

#: Where nft lives when PATH does not say.
SBIN = "/usr/sbin:/sbin"

#: Runs `nft ARGS` with the script on its standard input; returns its standard output.
Nft = Callable[[Sequence[str], str], Awaitable[str]]


class DoorError(P2pccError):
    """`nft` failed; the message is nft's own."""


async def run_nft(args: Sequence[str], script: str, *, command: Sequence[str] = ()) -> str:
    """`nft ARGS` with `script` on stdin, bounded by NFT_TIMEOUT; DoorError on failure.
    `command` runs nft some other way (the benchmark: in a namespace)."""
    if not command:
        # A daemon started by hand may lack the sbin directories on its PATH.
        found = shutil.which("nft", path=f"{os.environ.get('PATH', os.defpath)}:{SBIN}")
        command = (found or "nft",)
    try:
        with trio.fail_after(NFT_TIMEOUT):
            done = await trio.run_process(
                [*command, *args],
                stdin=script.encode(),
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
    except FileNotFoundError as error:
        raise DoorError(f"{error.filename or 'nft'} is not installed") from error
    except trio.TooSlowError as error:
        raise DoorError(f"nft took more than {NFT_TIMEOUT:g} s") from error
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise DoorError(message[0] if message else f"nft exited with status {done.returncode}")
    return done.stdout.decode(errors="replace")


def door_policy(config: Config, facts: StartFacts) -> DoorPolicy:
    """The door this daemon keeps: distccd's port; the stock clients, and in an unkeyed
    pool every network distccd's `--allow` admits."""
    interface = facts.surroundings.interface.addresses
    allow = config.distccd.allow or default_allow(interface, config.gossip.networks)
    keyed = bool(facts.keyring)
    networks = open_networks(config.distccd.allow_stock_clients, allow, keyed=keyed)
    return DoorPolicy(config.distccd.port, networks, keyed)


class Door:
    """The door's table as this daemon last set it; see the module docstring."""

    def __init__(
        self, policy: DoorPolicy, nft: Nft, on_report: Callable[[DoorReport], None]
    ) -> None:
        self.policy = policy
        self.members: frozenset[IPAddress] = frozenset()
        self.problem: str | None = None  # why the door is not up; None when it is
        self.refused = 0
        self.in_doubt = False  # an update failed: the sets may not hold `members`
        self._nft = nft
        self._on_report = on_report

    @property
    def up(self) -> bool:
        return self.problem is None

    async def set_up(self) -> bool:
        """Create (or replace) the table with no members; False, with `problem` set and
        logged, when that fails."""
        try:
            await self._nft(("-f", "-"), table_script(self.policy, ()))
        except DoorError as error:
            self.problem = failure_with_fix(f"cannot set up distccd's door: {error}")
            log.error("%s; distccd will not serve", self.problem)
        else:
            log.info(
                "distccd's door is up: nftables table inet %s admits loopback, pool members%s",
                self.policy.table,
                "".join(f", {network}" for network in self.policy.open_networks),
            )
            if not self.policy.keyed:
                log.warning(
                    "unkeyed pool: distccd's door is open to everyone in distccd's allow "
                    "networks (without a key, anyone can announce itself a member)"
                )
        self.report()
        return self.up

    async def follow(self, members: frozenset[IPAddress]) -> bool:
        """Make the sets hold `members`; False (logged once until it works) when nft
        fails, and the next call resyncs."""
        if members == self.members and not self.in_doubt:
            return True
        table = self.policy.table
        script = (
            resync_script(table, members)
            if self.in_doubt
            else update_script(table, self.members, members)
        )
        try:
            await self._nft(("-f", "-"), script)
        except DoorError as error:
            if not self.in_doubt:
                log.error("cannot update distccd's door (retrying): %s", error)
            self.in_doubt = True
            return False
        if self.in_doubt:
            log.info("distccd's door is up to date again")
        _log_change(self.members, members)
        self.members, self.in_doubt = members, False
        self.report()
        return True

    async def read_refused(self) -> None:
        """Read the refusal counter (a failure keeps the last figure)."""
        args = ("-j", "list", "counter", "inet", self.policy.table, REFUSED_COUNTER)
        try:
            self.refused = refused_count(await self._nft(args, ""))
        except (DoorError, ValueError) as error:
            log.debug("cannot read the door's refusal counter: %s", error)
            return
        self.report()

    async def tear_down(self) -> None:
        """Remove the table (whatever state it is in); a failure is only logged."""
        try:
            await self._nft(("-f", "-"), delete_script(self.policy.table))
        except DoorError as error:
            log.warning(
                "cannot remove distccd's door (table inet %s): %s", self.policy.table, error
            )

    def report(self) -> None:
        networks = tuple(str(network) for network in self.policy.open_networks)
        self._on_report(
            DoorReport(self.policy.table, len(self.members), self.refused, networks, self.problem)
        )


def _log_change(old: frozenset[IPAddress], new: frozenset[IPAddress]) -> None:
    for address in sorted(new - old, key=str):
        log.info("door: admitting pool member %s", address)
    for address in sorted(old - new, key=str):
        log.info("door: no longer admitting %s (dead or left)", address)


@asynccontextmanager
async def open_door(
    policy: DoorPolicy, on_report: Callable[[DoorReport], None], nft: Nft = run_nft
) -> AsyncIterator[Door]:
    """The door, set up (or with `problem` saying why not) for the `with` block and
    removed when it ends, however it ends."""
    door = Door(policy, nft, on_report)
    await door.set_up()
    try:
        yield door
    finally:
        with trio.CancelScope(shield=True):
            await door.tear_down()


async def serve_door(
    door: Door,
    node: LocalNode,
    board: ChangeBoard,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Keep the door's sets equal to the pool's members, for as long as we run."""
    with board.subscribe(Change.MEMBERS) as changes:
        await door.follow(admitted(node.peers()))
        task_status.started()
        next_count = -math.inf
        while True:
            now = trio.current_time()
            if now >= next_count:
                await door.read_refused()
                next_count = now + COUNTER_PERIOD
            deadline = min(next_count, now + RETRY_DELAY if door.in_doubt else math.inf)
            await changes.wait(deadline)
            await door.follow(admitted(node.peers()))


async def serve_no_distccd(
    config: DistccdConfig,
    *,
    listen: str,
    on_serving: Callable[[bool], None],
    task_status: trio.TaskStatus[DistccdState] = trio.TASK_STATUS_IGNORED,
    **_supervisor_arguments: object,
) -> None:
    """Stand in for `serve_distccd` while the door is not up: distccd is neither started
    nor watched, and the node is told it does not serve (so it offers no slots)."""
    state = DistccdState(ipaddress.ip_address(listen), config.port, on_serving)
    state.report(False)
    task_status.started(state)
    await trio.sleep_forever()
