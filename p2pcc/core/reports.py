"""What the daemon's tasks tell the node that only people read: the stock distccd
servers mDNS lists, the mDNS records it ignored, the gossip sends and receives that
failed, the distcc connections it cut loose from vanished peers and the peers' jobs a
pause handed back, and why it cannot cut connections here if it cannot; distccd's door
(p2pcc.core.door); where each `gossip.seeds` entry resolved (p2pcc.core.seeds); and
how long our jobs take on each peer (p2pcc.core.turnaround) with the verdicts drawn
from it (p2pcc.core.verdicts); the proof compiles sent to peers (p2pcc.core.proof_book).

None of it changes what we gossip or rank, so none of it is announced as a change;
`p2pcc status` and `p2pcc doctor` read it from the status document.  Ranking does not
read the turnaround book either: it reads the coarse delivered factors the turnaround
task derives from it (`LocalNode.set_delivered`), so the book's every job does not
re-rank; nor does it read the proofs, only the peers they disproved
(`LocalNode.set_disproven`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection

from p2pcc.core import limits
from p2pcc.core.door import DoorReport
from p2pcc.core.guard_refusals import GuardRefusals
from p2pcc.core.proof_book import ProofBook
from p2pcc.core.seeds import SeedState
from p2pcc.core.turnaround import TurnaroundBook
from p2pcc.core.verdicts import Verdicts
from p2pcc.core.zeroconf_names import StockServer


class Reports:
    """The reports above, each kept bounded."""

    def __init__(self) -> None:
        self._stock_servers: dict[str, StockServer] = {}
        self._mdns_drops: Counter[str] = Counter()
        self._send_errors: Counter[str] = Counter()
        self._receive_errors: Counter[str] = Counter()
        self._aborted_connections = 0
        self._taken_back = 0
        self._handed_back = 0
        self._cutoff_problem: str | None = "not checked yet"
        self._door: DoorReport | None = None
        self._seeds: tuple[SeedState, ...] = ()
        #: The job guard: refusals of peers' jobs, or why it is not in place.
        self.guard = GuardRefusals()
        #: How long this machine's distcc jobs took on each peer.
        self.turnaround = TurnaroundBook()
        #: What the turnaround task judged from it (kept here so `remeasure` reaches it).
        self.verdicts = Verdicts()
        #: The proofs of peers by a real compile, and when each is due again.
        self.proofs = ProofBook()

    def forget_measurements(self, node_ids: Collection[bytes] | None) -> None:
        """Forget what our jobs measured of `node_ids` (None: of every peer), and the
        verdicts on them."""
        if node_ids is None:
            self.turnaround.keep_only(())
        else:
            self.turnaround.forget(node_ids)
        self.verdicts.forget(node_ids)

    def add_stock_server(self, server: StockServer) -> None:
        """mDNS found a stock distccd (at most MAX_PEERS are listed)."""
        if server.instance in self._stock_servers or len(self._stock_servers) < limits.MAX_PEERS:
            self._stock_servers[server.instance] = server

    def remove_stock_server(self, server: StockServer) -> None:
        self._stock_servers.pop(server.instance, None)

    def stock_servers(self) -> list[StockServer]:
        """The stock distccd servers mDNS lists, by instance name."""
        return sorted(self._stock_servers.values(), key=lambda server: server.instance)

    def count_mdns_drop(self, reason: str) -> None:
        """An mDNS record was ignored for `reason`."""
        self._mdns_drops[reason] += 1

    def mdns_drops(self) -> dict[str, int]:
        return dict(self._mdns_drops)

    def count_send_error(self, reason: str) -> None:
        """Sending a gossip datagram to one destination failed for `reason`."""
        self._send_errors[reason] += 1

    def send_errors(self) -> dict[str, int]:
        return dict(sorted(self._send_errors.items()))

    def count_receive_error(self, reason: str) -> None:
        """Reading from a gossip socket failed for `reason`."""
        self._receive_errors[reason] += 1

    def receive_errors(self) -> dict[str, int]:
        return dict(sorted(self._receive_errors.items()))

    def count_aborted(self, connections: int) -> None:
        """Distcc connections with a vanished peer were cut loose."""
        self._aborted_connections += connections

    @property
    def aborted_connections(self) -> int:
        return self._aborted_connections

    def count_taken_back(self, jobs: int) -> None:
        """Jobs of ours on a straggler were aborted, to compile here instead."""
        self._taken_back += jobs

    @property
    def taken_back(self) -> int:
        return self._taken_back

    def count_handed_back(self, jobs: int) -> None:
        """Jobs distccd ran here for peers were stopped by a pause, for their clients to
        compile."""
        self._handed_back += jobs

    @property
    def handed_back(self) -> int:
        return self._handed_back

    def set_cutoff_problem(self, problem: str | None) -> None:
        """Why connections to vanished peers cannot be cut loose (None: they can)."""
        self._cutoff_problem = problem

    @property
    def cutoff_problem(self) -> str | None:
        return self._cutoff_problem

    def set_door(self, door: DoorReport) -> None:
        """distccd's door as it is now (members admitted, refusals, or why it is not up)."""
        self._door = door

    @property
    def door(self) -> DoorReport | None:
        return self._door

    def set_seeds(self, seeds: tuple[SeedState, ...]) -> None:
        """Each seed's endpoints in use and why its last lookup failed, if it did."""
        self._seeds = seeds

    @property
    def seeds(self) -> tuple[SeedState, ...]:
        return self._seeds
