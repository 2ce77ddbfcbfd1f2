"""Ranking: which peers may compile with our exact compiler, fastest job first.

A peer is selected only if it offers the identical compiler fingerprint, is ALIVE and
ACTIVE, offers slots and has an address distcc can dial.  Its score is the speed one
job of ours gets there: power, discounted by the CPU share each job would get next to
everything else it runs and by memory pressure, and by what our own jobs there showed
it really delivers (`delivered`, from measured turnarounds: docs/ranking.md).  The
order is by that per-job speed, not by a host's total capacity, because distcc fills
the first free slot of the line: with fewer compiles than slots (the end of a build)
only the fastest slots then work.  A peer whose jobs run at less than
`STRAGGLER_RATIO` of a typical host's speed is left out altogether: its job would end
later than one that waited for a typical slot to free up and ran there.  Peers within
`tier_ratio` of a tier's best score form one tier and are ordered inside it by a keyed
hash of their id, so concurrent clients with different seeds spread over equally good
peers without ever preferring a worse tier.  `candidate` works out what one peer's
status gives, `order` ranks candidates: `p2pcc.core.ranker` redoes the first only for
the peers that changed.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import heapq
import ipaddress
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import cast

from p2pcc.core import limits
from p2pcc.core.model import CompilerOffer, NodeState, NodeStatus
from p2pcc.core.peers import Liveness, Peer

#: blake2b accepts keys up to 64 bytes.
MAX_SEED_BYTES = 64

#: The least memory factor, so a starved peer ranks low rather than at exactly 0, where
#: every such peer would tie.  Part of the formula, not a knob: nothing configures it.
MEMORY_FLOOR = 0.1

#: A host slower per job than this fraction of the typical host (the median over the
#: line's hosts, localhost included) is a straggler and gets no job: a job queued for a
#: typical slot waits at most one typical job and then runs one, so it is done within
#: two typical job times, which a host at half the typical speed needs for the job alone.
STRAGGLER_RATIO = 0.5


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
    """A selected peer: the offer to use, its score (the speed one job gets there now),
    its tier, the slots we may use, and its speed whatever else it runs (`inherent`,
    what the straggler rule compares)."""

    peer: Peer
    offer: CompilerOffer
    score: float
    tier: int  # 0 is the best tier
    limit: int  # jobs this client may run there at once (its slots, 1..MAX_SLOTS)
    inherent: float


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


def inherent_speed(
    status: NodeStatus, jobs_added: int, policy: RankingPolicy, delivered: float = 1.0
) -> float:
    """The speed of one job there whatever else runs: power x memory factor x
    `delivered` (the share of its announced speed its jobs were measured to deliver)."""
    power = min(max(0.0, status.power), limits.MAX_POWER)
    if jobs_added <= 0 or not math.isfinite(power) or not math.isfinite(delivered):
        return 0.0
    return power * memory_factor(status, jobs_added, policy) * min(1.0, max(0.0, delivered))


def job_speed(
    status: NodeStatus, jobs_added: int, policy: RankingPolicy, delivered: float = 1.0
) -> float:
    """The speed one job gets there once `jobs_added` more run: the inherent speed
    times the share of a CPU each job then gets."""
    return inherent_speed(status, jobs_added, policy, delivered) * cpu_share(status, jobs_added)


def dial_address(status: NodeStatus) -> str | None:
    """The address distcc should dial: the first IPv4, else the first IPv6, else None."""
    return _dial_address(status.addresses)


@functools.lru_cache(maxsize=2 * limits.MAX_PEERS)
def _dial_address(addresses: tuple[str, ...]) -> str | None:
    # Remembered: parsing text addresses was a third of a ranking's cost, and a peer's
    # addresses hardly ever change (the cap bounds the memory: a few hundred kB).  A
    # memo of a pure function: no answer depends on what it holds.
    parsed = []
    for text in addresses:
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
    if peer.liveness is not Liveness.ALIVE or status.state is not NodeState.ACTIVE:
        return None
    offer = status.offers(fingerprint)  # the cheap tests first: most peers fail one
    usable = (
        offer is not None
        and status.slots > 0
        and 0 < status.distccd_port <= limits.MAX_PORT
        and dial_address(status) is not None
    )
    return offer if usable else None


@dataclass(frozen=True, slots=True)
class Candidate:
    """What ranking reads of one peer for one compiler, worked out once per status:
    its offer (None: it may not get jobs now), its slots, the `delivered` factor used,
    the score and inherent speed they give (0 when not selectable) and its seeded
    position inside a tier (`tier_key`)."""

    peer: Peer
    offer: CompilerOffer | None
    limit: int
    factor: float
    score: float
    inherent: float
    position: tuple[bytes, bytes]


def candidate(
    peer: Peer, fingerprint: str, policy: RankingPolicy, factor: float, seed: bytes
) -> Candidate:
    """`peer` as ranking for `fingerprint` with `seed` sees it, `factor` being what it
    delivers."""
    limit = min(peer.status.slots, limits.MAX_SLOTS)
    offer = _selectable(peer, fingerprint)
    if offer is None:
        return Candidate(peer, None, limit, factor, 0.0, 0.0, (b"", peer.node_id))
    inherent = inherent_speed(peer.status, limit, policy, factor)
    # job_speed's product, without working the inherent speed out twice.
    score = inherent * cpu_share(peer.status, limit)
    position = tier_key(peer.node_id, seed)
    return Candidate(peer, offer, limit, factor, score, inherent, position)


def tier_key(node_id: bytes, seed: bytes) -> tuple[bytes, bytes]:
    """A per-seed pseudo-random but reproducible position inside a tier."""
    digest = hashlib.blake2b(node_id, key=seed, digest_size=8).digest()
    return (digest, node_id)


def check_seed(seed: bytes) -> None:
    """Refuse a seed blake2b cannot take as its key."""
    if len(seed) > MAX_SEED_BYTES:
        raise ValueError(f"ranking seed must be at most {MAX_SEED_BYTES} bytes, got {len(seed)}")


def rank_peers(
    peers: Iterable[Peer],
    fingerprint: str,
    policy: RankingPolicy,
    seed: bytes,
    *,
    delivered: Mapping[bytes, float] | None = None,
    local_speed: float | None = None,
) -> list[RankedPeer]:
    """Peers able to run `fingerprint` now, stragglers left out: best tier first, seeded
    order within a tier.  `delivered` holds what measurements say peers deliver (node
    id -> share of their announced speed, 1 when absent); `local_speed` is this
    machine's inherent speed, a host of the line the straggler rule counts too."""
    check_seed(seed)
    measured = delivered or {}
    candidates = [
        candidate(peer, fingerprint, policy, measured.get(peer.node_id, 1.0), seed)
        for peer in peers
    ]
    return order(candidates, policy, local_speed)


def order(
    candidates: Iterable[Candidate], policy: RankingPolicy, local_speed: float | None
) -> list[RankedPeer]:
    """`rank_peers`'s answer from the peers' `candidates`."""
    selected = [entry for entry in candidates if entry.score > 0]
    speeds = [entry.inherent for entry in selected]
    if local_speed is not None:
        speeds.append(local_speed)
    threshold = straggler_threshold(speeds)
    kept = [entry for entry in selected if entry.inherent >= threshold]
    bests, floor = _tier_bests(sorted(entry.score for entry in kept), policy)
    if len(bests) == 1:  # the usual pool of like desks: one tier, no search
        head = [(0, entry.position, entry) for entry in kept if entry.score >= floor]
    else:
        # A tier holds the scores from its best down to above the next tier's best.
        negated = [-best for best in bests]
        head = [
            (bisect.bisect_right(negated, -entry.score) - 1, entry.position, entry)
            for entry in kept
            if entry.score >= floor
        ]
    # (tier, position) is unique (the position ends with the node id): no tie reaches
    # the candidates, and this is sorted(head)[:max_hosts].
    best = heapq.nsmallest(policy.max_hosts, head)
    return [_ranked(entry, tier) for tier, _position, entry in best]


def _tier_bests(ascending: Sequence[float], policy: RankingPolicy) -> tuple[list[float], float]:
    """The best score of each tier that can make the line, and the least score in those
    tiers, from the kept peers' scores (`ascending`).  Those are the tiers up to the one
    holding the `max_hosts`-th best peer: the seeded order inside a tier may move a peer
    up, never across tiers, so the peers of later tiers need neither a tier nor sorting.
    A tier starts at the first score, best first, below `tier_ratio` of the tier
    before's best: found by bisection, so a pool of a thousand like desks costs a few
    steps, not a thousand."""
    count = len(ascending)
    if not count:
        return [], math.inf
    bests = [ascending[-1]]
    while True:
        # Scores below the ratio of this tier's best: the next tier's, and later ones.
        below = bisect.bisect_left(ascending, policy.tier_ratio * bests[-1])
        start = count - below  # the next tier's first peer, counted from the best
        if below == 0:
            return bests, ascending[0]
        if start >= policy.max_hosts:
            return bests, ascending[below]
        bests.append(ascending[below - 1])


def _ranked(entry: Candidate, tier: int) -> RankedPeer:
    offer = cast(CompilerOffer, entry.offer)  # only a selectable peer has a score
    return RankedPeer(entry.peer, offer, entry.score, tier, entry.limit, entry.inherent)


def measured_out(
    peers: Iterable[Peer],
    fingerprint: str,
    ranked: Sequence[RankedPeer],
    delivered: Mapping[bytes, float],
) -> int:
    """The slots of the peers that could run `fingerprint` now but are not in `ranked`
    because measurement judged them slow (a `delivered` factor below 1): localhost
    takes them over in the line (`hosts.render_hosts`)."""
    listed = {entry.peer.node_id for entry in ranked}
    return sum(
        min(peer.status.slots, limits.MAX_SLOTS)
        for peer in peers
        if delivered.get(peer.node_id, 1.0) < 1.0
        and peer.node_id not in listed
        and _selectable(peer, fingerprint) is not None
    )


def straggler_threshold(speeds: Iterable[float]) -> float:
    """The inherent speed a host needs to get jobs: `STRAGGLER_RATIO` of the median of
    the hosts' `speeds` (0 when there are none)."""
    values = list(speeds)
    return STRAGGLER_RATIO * statistics.median(values) if values else 0.0
