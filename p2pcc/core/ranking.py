"""Ranking: which peers may compile with our exact compiler, best first.

A peer is selected only if it offers the identical compiler fingerprint, is ALIVE and
ACTIVE, has a free slot and an address distcc can dial.  Its score is the throughput
we expect from it: power x free slots, discounted by the CPU share each job would get
next to its owner's load and by memory pressure (the formula and its reasoning are in
docs/ranking.md).  Peers within `tier_ratio` of a tier's best score form one tier and
are ordered inside it by a keyed hash of their id, so concurrent clients with different
seeds spread over equally good peers without ever preferring a worse tier.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
from collections.abc import Iterable
from dataclasses import dataclass

from p2pcc.core import limits
from p2pcc.core.model import CompilerOffer, NodeState, NodeStatus
from p2pcc.core.peers import Liveness, Peer

#: blake2b accepts keys up to 64 bytes.
MAX_SEED_BYTES = 64

#: The least memory factor, so a starved peer ranks low rather than at exactly 0, where
#: every such peer would tie.  Part of the formula, not a knob: nothing configures it.
MEMORY_FLOOR = 0.1


@dataclass(frozen=True, slots=True)
class RankingPolicy:
    """The knobs of ranking and rendering.

    No defaults here: `p2pcc.config.policies.ranking_policy` builds one from a `Config`,
    whose schema is the one place the defaults are written.
    """

    tier_ratio: float  # a peer within this fraction of its tier's best score is "as good"
    job_memory: int  # bytes one compile job is expected to need
    local_weight: float  # localhost also preprocesses and links every job
    lzo: bool  # append ",lzo" to remote hosts (compress; helps on slow links)
    max_hosts: int  # remote hosts in one line; more only adds connection attempts

    def __post_init__(self) -> None:
        if not 0 < self.tier_ratio <= 1:
            raise ValueError(f"tier_ratio must be in (0, 1], got {self.tier_ratio}")
        if self.job_memory <= 0:
            raise ValueError(f"job_memory must be > 0 bytes, got {self.job_memory}")
        if not (math.isfinite(self.local_weight) and self.local_weight > 0):
            raise ValueError(f"local_weight must be a finite number > 0, got {self.local_weight}")
        if not 1 <= self.max_hosts <= limits.MAX_PEERS:
            raise ValueError(f"max_hosts must be in 1..{limits.MAX_PEERS}, got {self.max_hosts}")


@dataclass(frozen=True, slots=True)
class RankedPeer:
    """A selected peer: the offer to use, its score, its tier and the slots we may use."""

    peer: Peer
    offer: CompilerOffer
    score: float
    tier: int  # 0 is the best tier
    limit: int  # jobs this client may run there at once (free slots, 1..MAX_SLOTS)


def cpu_share(status: NodeStatus, jobs_added: int) -> float:
    """The fraction of a CPU each job gets once `jobs_added` more jobs run there."""
    cpus = max(1, status.cpus)
    demand = max(0.0, status.load) + max(0, status.jobs) + jobs_added
    return 1.0 if demand <= cpus else cpus / demand


def memory_factor(status: NodeStatus, jobs_added: int, policy: RankingPolicy) -> float:
    """How well `jobs_added` jobs fit in available memory: 1 if they fit, down to the floor."""
    wanted = jobs_added * policy.job_memory
    if wanted <= 0:
        return 1.0
    fit = max(0, status.mem_available) / wanted
    return min(1.0, max(MEMORY_FLOOR, fit))


def throughput(status: NodeStatus, jobs_added: int, policy: RankingPolicy) -> float:
    """Expected compile throughput from running `jobs_added` more jobs on this node."""
    power = min(max(0.0, status.power), limits.MAX_POWER)
    if jobs_added <= 0 or not math.isfinite(power):
        return 0.0
    share = cpu_share(status, jobs_added)
    return power * jobs_added * share * memory_factor(status, jobs_added, policy)


def dial_address(status: NodeStatus) -> str | None:
    """The address distcc should dial: the first IPv4, else the first IPv6, else None."""
    parsed = []
    for text in status.addresses:
        try:
            parsed.append(ipaddress.ip_address(text))
        except ValueError:
            continue  # a name or garbage: distcc would need DNS, which gossip avoids
    for family in (4, 6):
        for address in parsed:
            if address.version == family:
                return str(address)
    return None


def _selectable(peer: Peer, fingerprint: str) -> CompilerOffer | None:
    """The peer's offer of `fingerprint` if the peer may receive jobs now, else None."""
    status = peer.status
    usable = (
        peer.liveness is Liveness.ALIVE
        and status.state is NodeState.ACTIVE
        and status.free_slots > 0
        and 0 < status.distccd_port <= limits.MAX_PORT
        and dial_address(status) is not None
    )
    return status.offers(fingerprint) if usable else None


def _tier_key(node_id: bytes, seed: bytes) -> tuple[bytes, bytes]:
    """A per-seed pseudo-random but reproducible position inside a tier."""
    digest = hashlib.blake2b(node_id, key=seed, digest_size=8).digest()
    return (digest, node_id)


def rank_peers(
    peers: Iterable[Peer], fingerprint: str, policy: RankingPolicy, seed: bytes
) -> list[RankedPeer]:
    """Peers able to run `fingerprint` now: best tier first, seeded order within a tier."""
    if len(seed) > MAX_SEED_BYTES:
        raise ValueError(f"ranking seed must be at most {MAX_SEED_BYTES} bytes, got {len(seed)}")
    scored: list[tuple[float, Peer, CompilerOffer, int]] = []
    for peer in peers:
        offer = _selectable(peer, fingerprint)
        if offer is None:
            continue
        limit = min(peer.status.free_slots, limits.MAX_SLOTS)
        score = throughput(peer.status, limit, policy)
        if score > 0:
            scored.append((score, peer, offer, limit))
    scored.sort(key=lambda item: (-item[0], item[1].node_id))
    ranked: list[RankedPeer] = []
    tier, tier_best = -1, 0.0
    for score, peer, offer, limit in scored:
        if tier < 0 or score < policy.tier_ratio * tier_best:
            tier, tier_best = tier + 1, score
        ranked.append(RankedPeer(peer, offer, score, tier, limit))
    ranked.sort(key=lambda entry: (entry.tier, _tier_key(entry.peer.node_id, seed)))
    return ranked[: policy.max_hosts]
