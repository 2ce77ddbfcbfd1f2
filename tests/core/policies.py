"""The core's policies at the configuration's defaults, for tests not about their numbers.

They are built the way the daemon builds them (`p2pcc.config.policies`) from a
configuration with every key at its default, so no test writes a default a second time.
A test about particular numbers passes them explicitly, e.g.
`replace(default_policy(), lzo=True)` or `PeerTimings(5.0, 15.0, 60.0)`.
"""

from __future__ import annotations

from p2pcc.config import Config, config_from_mapping
from p2pcc.config.policies import peer_timings, ranking_policy
from p2pcc.core.peers import PeerTimings
from p2pcc.core.ranking import RankingPolicy


def default_config() -> Config:
    """Every key at its default; the machine-dependent ones (names and paths, which no
    policy reads) are this machine's."""
    return config_from_mapping({}, None)


def default_policy() -> RankingPolicy:
    """The ranking policy of a default configuration."""
    return ranking_policy(default_config())


def default_timings() -> PeerTimings:
    """The liveness timings of a default configuration."""
    return peer_timings(default_config())
