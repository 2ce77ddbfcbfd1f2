"""Which dead peers to check for jobs of ours left hanging: the decision half of cutting
distcc loose from a machine that vanished.

A distcc client whose server vanishes mid-job (power cut, cable pulled, kernel panic)
gets no error: nothing closes the TCP connection, and distcc waits `DISTCC_IO_TIMEOUT`
(300 s by default) before it gives up and compiles locally.  The daemon knows much
sooner, when the peer turns DEAD.  Silence alone is not proof, so the daemon then tries
the peer's distccd port; only when that does not answer either does it abort this
machine's connections to it, and distcc falls back to a local compile at once.

`VanishWatch.due` says which peers to check: each DEAD peer once per death.  A peer
heard again (or forgotten) is cleared, so its next death is checked anew.  A peer that
said LEAVE is never checked: its distccd finishes what it has before it stops.  Nor is a
dead peer that shares an address with a peer still heard: that machine is there (a
restart under a new id, or a forged node in an unkeyed pool claiming its address).
`connections_held` says whether any job is at stake with it, from the socket table
alone, so that a flood of dead forged peers (an unkeyed pool) costs no probe and no
subprocess.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from p2pcc.core.addresses import unmapped, unscoped_addresses
from p2pcc.core.peers import Liveness, Peer
from p2pcc.core.procfs import TCP_ESTABLISHED, TcpSocket


@dataclass(frozen=True, slots=True)
class VanishCheck:
    """A dead peer whose distccd is to be tried: where, and how to name it in the log."""

    node_id: bytes
    name: str
    addresses: tuple[str, ...]
    port: int
    silent_since: float  # when it was last heard, on the daemon's clock


class VanishWatch:
    """Remembers which dead peers were already checked; see the module docstring."""

    def __init__(self) -> None:
        self._checked: set[bytes] = set()

    def due(self, peers: Iterable[Peer]) -> list[VanishCheck]:
        """The peers of `peers` (the table now) that died since the last call."""
        peers = list(peers)
        dead = [peer for peer in peers if peer.liveness is Liveness.DEAD]
        heard = {
            address
            for peer in peers
            if peer.liveness is not Liveness.DEAD
            for address in peer.status.addresses
        }
        self._checked.intersection_update(peer.node_id for peer in dead)
        checks = [
            VanishCheck(
                peer.node_id,
                peer.status.name,
                peer.status.addresses,
                peer.status.distccd_port,
                peer.last_heard,
            )
            for peer in dead
            if peer.node_id not in self._checked
            and peer.status.addresses
            and heard.isdisjoint(peer.status.addresses)
        ]
        self._checked.update(check.node_id for check in checks)
        return checks


def connections_held(sockets: Iterable[TcpSocket], check: VanishCheck, own_port: int) -> int:
    """Established connections with the peer of `check`: ours to its distccd port, and
    its to our distccd on `own_port`."""
    addresses = set(unscoped_addresses(check.addresses))
    return sum(
        1
        for sock in sockets
        if sock.state == TCP_ESTABLISHED
        and sock.remote_address is not None
        and unmapped(sock.remote_address) in addresses
        and (sock.remote_port == check.port or sock.port == own_port)
    )
