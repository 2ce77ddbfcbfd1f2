"""Every address a node announces, checked before anything uses it, and counted when not.

A node's addresses arrive in its own STATE, in news relayed by others, and in mDNS
records; each passes the pool's address rule (p2pcc.core.addresses) first.  A refused
one is left out of the stored status, counted by reason for `status`, and handed to
`on_refused` once per (address, reason) within the log-once memory, so a node whose
every address is refused stays in the table but is never dialled.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace

from p2pcc.core.addresses import AddressPool, screen_addresses
from p2pcc.core.gossip_types import LogOnce, RefusedAddress
from p2pcc.core.model import Message


class AddressScreening:
    """The pool's address rule applied to what nodes announce, with its counters."""

    def __init__(
        self,
        pool: AddressPool | None,
        on_refused: Callable[[RefusedAddress], None],
        log_once: LogOnce,
    ) -> None:
        """`pool` None: no networks known (tests of a bare engine)."""
        self.pool = pool
        self.on_refused = on_refused
        self.refused: Counter[str] = Counter()
        self._log_once = log_once

    def screen(
        self, addresses: Sequence[str], node_id: bytes, via: str, now: float
    ) -> tuple[str, ...]:
        """The addresses that pass the pool's rule; the others counted and reported."""
        screened = screen_addresses(addresses, self.pool)
        for address, refusal in screened.refused:
            self.refused[refusal.value] += 1
            if self._log_once.first((address, refusal.value), now):
                self.on_refused(RefusedAddress(address, refusal.value, node_id, via))
        return screened.accepted

    def message(self, message: Message, via: str, now: float) -> Message:
        """`message` with only the addresses its node may be dialled at."""
        status = message.body
        if status is None:
            return message
        accepted = self.screen(status.addresses, message.node_id, via, now)
        if accepted == status.addresses:
            return message
        return replace(message, body=replace(status, addresses=accepted))
