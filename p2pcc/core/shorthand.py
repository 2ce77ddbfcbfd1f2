"""Short STATEs (protocol 1.2): a member's compilers by reference, not by value.

A state datagram is mostly its compiler offers (four offers are some 250 of its 400
bytes), and they change about never, while the state goes to every member beyond our
link once an interval: in a pool of a thousand that is most of the 10 KB/s a daemon may
spend on gossip.  So the turn copies of our state (core/state_turns.py) to members that
speak 1.2 carry the offers' digest (`ccd`, `wire_status.compilers_digest`) instead.

The receiver puts back the offers of the node's record in its table when their digest
is the one sent.  When it has no record, or one with other offers (it missed the news
of a change), it keeps its table as it was and asks the node for its whole state: its
own full STATE to the node with `again` set, at most once per `ASK_GAP` per node.  The
node answers with its full STATE by unicast, within the budget of answers every node
keeps (core/pool_exchange.py), and only to a member at the address it announces.

Everything else stays whole: the multicast state (a 1.0 link mate reads it), answers,
news entries (their receivers may never have heard the node) and sync transfers.
"""

from __future__ import annotations

import math
from dataclasses import replace

from p2pcc.core import limits
from p2pcc.core.model import Message
from p2pcc.core.peers import Peer
from p2pcc.core.wire_status import compilers_digest

#: The protocol minor version from which a node reads short STATEs.
SHORTHAND_MINOR = 2

#: Seconds between two requests for one node's whole state.
ASK_GAP = 5.0


class Shorthand:
    """Resolves short STATEs against the table, and paces the requests for whole ones."""

    def __init__(self) -> None:
        self._asked: dict[bytes, float] = {}

    def resolve(self, message: Message, known: Peer | None) -> Message | None:
        """`message` with its offers put back from `known` (the node's record), or None
        when the record lacks them; a whole STATE is returned as it is."""
        if not message.compilers_digest or message.body is None:
            return message
        if known is None or compilers_digest(known.status.compilers) != message.compilers_digest:
            return None
        body = replace(message.body, compilers=known.status.compilers)
        return replace(message, body=body, compilers_digest=b"")

    def may_ask(self, node_id: bytes, now: float) -> bool:
        """Whether to ask `node_id` for its whole state now (then noted as asked)."""
        if now < self._asked.get(node_id, -math.inf) + ASK_GAP:
            return False
        if len(self._asked) >= limits.MAX_PEERS:  # forget requests long answered
            self._asked = {n: at for n, at in self._asked.items() if now < at + ASK_GAP}
            if len(self._asked) >= limits.MAX_PEERS:
                return False
        self._asked[node_id] = now
        return True
