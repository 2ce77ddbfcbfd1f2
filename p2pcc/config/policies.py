"""The core's policy types built from a `Config`.

The core's policies (`RankingPolicy`, `PeerTimings`, `IdlePolicy`) have no defaults of
their own: the schema is the one place a default is written, and these builders carry
the configured values over.  Whoever needs a policy (the daemon, a command, a test) builds it here.
"""

from __future__ import annotations

from p2pcc.config.model import Config
from p2pcc.core.idle import IdlePolicy
from p2pcc.core.peers import PeerTimings
from p2pcc.core.ranking import RankingPolicy


def ranking_policy(config: Config) -> RankingPolicy:
    """The ranking knobs: `[ranking]`, and `metrics.job_memory` for the memory factor."""
    ranking = config.ranking
    return RankingPolicy(
        tier_ratio=ranking.tier_ratio,
        job_memory=config.metrics.job_memory,
        local_weight=ranking.local_weight,
        lzo=ranking.lzo,
        max_hosts=ranking.max_hosts,
    )


def peer_timings(config: Config) -> PeerTimings:
    """The liveness timings of `[gossip]`."""
    gossip = config.gossip
    return PeerTimings(
        suspect_after=gossip.suspect_after,
        dead_after=gossip.dead_after,
        forget_after=gossip.forget_after,
    )


def idle_policy(config: Config) -> IdlePolicy:
    """When the desktop counts as in use, and when an automatic pause ends: `[idle]`."""
    return IdlePolicy(config.idle.active_within, config.idle.resume_after)
