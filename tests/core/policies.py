"""The core's policies at the configuration's defaults, for tests not about their numbers.

They are built the way the daemon builds them (`p2pcc.config.policies`) from a
configuration with every key at its default, so no test writes a default a second time.
A test about particular numbers passes them explicitly, e.g.
`replace(default_policy(), lzo=True)` or `PeerTimings(5.0, 15.0, 60.0)`.
"""

from __future__ import annotations

from pathlib import Path

from p2pcc.config import Config, HostDefaults, config_from_mapping
from p2pcc.config.policies import peer_timings, ranking_policy
from p2pcc.core.peers import PeerTimings
from p2pcc.core.ranking import RankingPolicy

#: A fixed machine, so the defaults do not depend on the one running the tests.
HOST = HostDefaults(
    hostname="test-host",
    home=Path("/home/test"),
    distccd_found=True,
    runtime_dir=Path("/run/p2pcc"),
    runtime_dir_override=None,
    state_dir=Path("/var/lib/p2pcc"),
)


def default_config() -> Config:
    """Every key at its default."""
    return config_from_mapping({}, None, host=HOST)


def default_policy() -> RankingPolicy:
    """The ranking policy of a default configuration."""
    return ranking_policy(default_config())


def default_timings() -> PeerTimings:
    """The liveness timings of a default configuration."""
    return peer_timings(default_config())
