"""Ranking a node's peers again after a change, redoing only what the change touched.

A pool of a thousand desks hears some twenty statuses a second, and ranking every peer
from scratch costs about ten milliseconds at that size.  `Ranker` keeps, per local
compiler, the `ranking.Candidate` of each peer (its offer, slots, scores and seeded
position) and works a peer out again only when what it read moved: the peer's snapshot
(a new `Peer` object; an equal status and liveness count as unmoved), its delivered
factor, or the policy or seed (which drop everything).  The result is `rank_peers` +
`measured_out` + `render_hosts` of the same inputs, exactly: the candidates feed the
same `ranking.order`.  Nothing is kept for a fingerprint no local compiler has
(`line`), nor for a peer the table no longer holds.  A peer a proof compile found
emitting other code for a compiler (`RankInputs.disproven`, core/proof_book.py) keeps
its candidate but is no host of that compiler's line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from p2pcc.core.hosts import HostsLine, Ranking, render_hosts
from p2pcc.core.model import NodeStatus
from p2pcc.core.peers import Peer
from p2pcc.core.ranking import (
    Candidate,
    RankedPeer,
    RankingPolicy,
    candidate,
    check_seed,
    inherent_speed,
    order,
)


@dataclass(frozen=True, slots=True)
class RankInputs:
    """What a ranking reads besides the peers: the policy, the seed of the tier shuffle
    (our node id), the delivered factors (`verdicts.delivered_factors`), localhost's
    status and slots, and the peers disproven for each fingerprint."""

    policy: RankingPolicy
    seed: bytes
    delivered: Mapping[bytes, float]
    local: NodeStatus
    local_slots: int
    disproven: Mapping[str, frozenset[bytes]] = field(default_factory=dict)

    @property
    def local_speed(self) -> float:
        """Localhost's inherent speed, a host the straggler rule counts."""
        return inherent_speed(self.local, self.local_slots, self.policy)


class Ranker:
    """One node's rankings, remembered per peer between changes; see the module docstring."""

    def __init__(self) -> None:
        self._policy: RankingPolicy | None = None
        self._seed = b""
        # What each peer's candidates were worked out from: its snapshot and factor.
        self._read: dict[bytes, tuple[Peer, float]] = {}
        self._candidates: dict[str, dict[bytes, Candidate]] = {}

    def ranking(
        self, fingerprints: Iterable[str], peers: Sequence[Peer], inputs: RankInputs
    ) -> Ranking:
        """The ranked peers and hosts line of every one of `fingerprints` (the local
        compilers'), remembering what they took for the next call."""
        self._adopt(inputs)
        self._follow_compilers(tuple(fingerprints))
        self._refresh(peers, inputs)
        found_by_fp = {fp: _proven(found, inputs, fp) for fp, found in self._candidates.items()}
        ranked = {fp: self._order(found.values(), inputs) for fp, found in found_by_fp.items()}
        hosts = {fp: _render(ranked[fp], found, inputs) for fp, found in found_by_fp.items()}
        return Ranking(ranked, hosts)

    def line(self, fingerprint: str, peers: Sequence[Peer], inputs: RankInputs) -> HostsLine:
        """The hosts line of a fingerprint no local compiler has (`p2pcc hosts`), ranked
        from scratch and not remembered: anyone may ask for any number of them."""
        self._adopt(inputs)
        found = {peer.node_id: self._candidate(peer, fingerprint, inputs) for peer in peers}
        return _render(self._order(found.values(), inputs), found, inputs)

    def _adopt(self, inputs: RankInputs) -> None:
        """Drop everything worked out under another policy or seed."""
        check_seed(inputs.seed)
        if inputs.policy != self._policy or inputs.seed != self._seed:
            self._policy, self._seed = inputs.policy, inputs.seed
            self._forget()

    def _follow_compilers(self, fingerprints: tuple[str, ...]) -> None:
        """Keep candidates for exactly the local compilers `fingerprints`; a new one
        makes every peer be read again."""
        if fingerprints != tuple(self._candidates):
            self._forget()
            self._candidates = {fp: {} for fp in fingerprints}

    def _forget(self) -> None:
        self._read.clear()
        for found in self._candidates.values():
            found.clear()

    def _refresh(self, peers: Sequence[Peer], inputs: RankInputs) -> None:
        """Work out again the candidates of the peers whose snapshot or factor moved
        since the last ranking (one look per peer, whatever the number of compilers),
        and drop those of the peers the table no longer holds."""
        delivered, read, found_by_fp = inputs.delivered, self._read, self._candidates
        for peer in peers:
            node_id = peer.node_id
            factor = delivered.get(node_id, 1.0)
            held = read.get(node_id)
            if held is not None and held[0] is peer and held[1] == factor:
                continue
            read[node_id] = (peer, factor)
            for fingerprint, found in found_by_fp.items():
                old = found.get(node_id)
                new = _carried(old, peer, factor)
                found[node_id] = new or self._candidate(peer, fingerprint, inputs)
        if len(read) != len(peers):  # some peers left the table (`read` holds them all)
            held_ids = {peer.node_id for peer in peers}
            for node_id in [node_id for node_id in read if node_id not in held_ids]:
                del read[node_id]
                for found in found_by_fp.values():
                    found.pop(node_id, None)

    def _candidate(self, peer: Peer, fingerprint: str, inputs: RankInputs) -> Candidate:
        factor = inputs.delivered.get(peer.node_id, 1.0)
        return candidate(peer, fingerprint, inputs.policy, factor, inputs.seed)

    def _order(self, found: Iterable[Candidate], inputs: RankInputs) -> tuple[RankedPeer, ...]:
        return tuple(order(found, inputs.policy, inputs.local_speed))


def _proven(
    found: Mapping[bytes, Candidate], inputs: RankInputs, fingerprint: str
) -> Mapping[bytes, Candidate]:
    """`found` but the peers disproven for `fingerprint`."""
    out = inputs.disproven.get(fingerprint)
    return {node_id: c for node_id, c in found.items() if node_id not in out} if out else found


def _carried(old: Candidate | None, peer: Peer, factor: float) -> Candidate | None:
    """`old` for the newer snapshot `peer` when nothing ranking reads moved (the same
    status heard again), else None."""
    if old is None or old.factor != factor or old.peer.liveness is not peer.liveness:
        return None
    if old.peer.status != peer.status:
        return None
    return Candidate(peer, old.offer, old.limit, factor, old.score, old.inherent, old.position)


def _render(
    ranked: Sequence[RankedPeer], found: Mapping[bytes, Candidate], inputs: RankInputs
) -> HostsLine:
    """The line for `ranked`, localhost taking over the slots of the peers measured slow
    (`ranking.measured_out`, from the candidates: only the few judged peers are read)."""
    listed = {entry.peer.node_id for entry in ranked}
    out = 0
    for node_id, factor in inputs.delivered.items():
        entry = found.get(node_id)
        if factor < 1.0 and node_id not in listed and entry is not None and entry.offer is not None:
            out += entry.limit
    policy = inputs.policy
    return render_hosts(ranked, inputs.local, inputs.local_slots, policy, absorbed=out)
