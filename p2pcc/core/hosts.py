"""Rendering a ranking as a `DISTCC_HOSTS` line and the `-j` that goes with it.

The distcc client fills slot 0 of every host in list order, then slot 1 of every host,
and so on, so list order is the ranking and `/N` is how many jobs it may put there.
Remote hosts are written `addr:port/N` (the port always, so nothing depends on
distcc's default) or `[v6addr]:port/N`, with `,lzo` when the policy asks.  Localhost
is scored by the same formula (the speed of one job) times `local_weight` and goes
before the first tier whose best score it beats.  The line is never empty: at least `localhost/1`.

Localhost also takes over the slots of the peers measurement judged slow and left out
(docs/ranking.md, "Where a straggler's slots go"): a build already running with the
-j of the line before the verdict then compiles those jobs here rather than leaving
them asleep in distcc's lock pause.  The recommended -j does not count them: a new
build is sized by the hosts that really serve it.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from p2pcc.core import limits
from p2pcc.core.model import NodeStatus
from p2pcc.core.ranking import RankedPeer, RankingPolicy, dial_address, job_speed


@dataclass(frozen=True, slots=True)
class HostEntry:
    """One host of the line: its distcc spec, its job limit, its score and who it is."""

    spec: str  # e.g. "10.0.0.2:3632/4,lzo" or "localhost/8"
    limit: int
    score: float
    node_id: bytes | None  # None for localhost


@dataclass(frozen=True, slots=True)
class HostsLine:
    """The `DISTCC_HOSTS` value, the recommended `-j` and the entries behind them."""

    hosts: str
    jobs: int  # sum of every entry's limit, localhost included
    entries: tuple[HostEntry, ...]


@dataclass(frozen=True, slots=True)
class Ranking:
    """Every local compiler's ranked peers and hosts line, as of one change."""

    ranked: Mapping[str, tuple[RankedPeer, ...]]
    hosts: Mapping[str, HostsLine]


def host_spec(address: str, port: int, limit: int, lzo: bool) -> str:
    """One remote host in distcc syntax: `addr:port/limit` or `[v6]:port/limit`, maybe `,lzo`."""
    return f"{_host_part(address)}:{port}/{limit}" + (",lzo" if lzo else "")


@functools.lru_cache(maxsize=2 * limits.MAX_PEERS)
def _host_part(address: str) -> str:
    # Remembered: every ranking renders its lines' hosts again, and parsing was a fifth
    # of a ranking's cost.  A pure function's memo, bounded by the peer cap.
    return f"[{address}]" if ipaddress.ip_address(address).version == 6 else address


def local_entry(
    local: NodeStatus, local_slots: int, policy: RankingPolicy, absorbed: int = 0
) -> HostEntry:
    """Localhost with `local_slots` slots, scored like a peer and weighted by `local_weight`;
    `absorbed` more slots in the line (taken over from peers judged slow), not scored."""
    # Local state is ignored on purpose: pausing stops serving peers, not our own builds.
    limit = min(max(1, local_slots), limits.MAX_SLOTS)
    score = job_speed(local, limit, policy) * policy.local_weight
    limit = min(limit + max(0, absorbed), limits.MAX_SLOTS)
    return HostEntry(f"localhost/{limit}", limit, score, None)


def _remote_entry(ranked: RankedPeer, policy: RankingPolicy) -> HostEntry:
    status = ranked.peer.status
    address = dial_address(status)
    if address is None:  # rank_peers never selects such a peer
        raise ValueError(f"peer {ranked.peer.node_id.hex()} has no dialable address")
    spec = host_spec(address, status.distccd_port, ranked.limit, policy.lzo)
    return HostEntry(spec, ranked.limit, ranked.score, ranked.peer.node_id)


def _local_position(ranked: Sequence[RankedPeer], local_score: float) -> int:
    """Index before the first tier whose best score is below the local score."""
    # Tiers are shuffled inside, so localhost is placed at a tier boundary, never
    # inside a tier; a tie with a tier's best keeps the peers first.
    best_of_tier: dict[int, float] = {}
    for entry in ranked:
        best_of_tier[entry.tier] = max(best_of_tier.get(entry.tier, 0.0), entry.score)
    for index, entry in enumerate(ranked):
        if best_of_tier[entry.tier] < local_score:
            return index
    return len(ranked)


def render_hosts(
    ranked: Sequence[RankedPeer],
    local: NodeStatus,
    local_slots: int,
    policy: RankingPolicy,
    *,
    absorbed: int = 0,
) -> HostsLine:
    """The `DISTCC_HOSTS` line for `ranked` peers plus localhost with `local_slots`, and
    the `absorbed` slots of peers judged slow (`ranking.measured_out`), which the line
    gives localhost but the recommended -j leaves out."""
    own = local_entry(local, local_slots, policy, absorbed)
    remote = [_remote_entry(entry, policy) for entry in ranked]
    position = _local_position(ranked, own.score)
    entries = (*remote[:position], own, *remote[position:])
    cushion = own.limit - local_entry(local, local_slots, policy).limit
    return HostsLine(
        hosts=" ".join(entry.spec for entry in entries),
        jobs=sum(entry.limit for entry in entries) - cushion,
        entries=entries,
    )
