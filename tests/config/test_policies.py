"""The core's policies built from a configuration: every configured value is carried over."""

from __future__ import annotations

from dataclasses import astuple

import pytest

from p2pcc.config import parse_config
from p2pcc.config.policies import idle_policy, peer_timings, ranking_policy
from p2pcc.core.idle import IdlePolicy
from p2pcc.core.peers import PeerTimings
from p2pcc.core.ranking import RankingPolicy
from tests.config.test_config_schema import HOST
from tests.core.policies import default_config

NON_DEFAULT = """\
[gossip]
suspect_after = 7
dead_after = 21
forget_after = 900
[idle]
active_within = 30
resume_after = 600
[metrics]
job_memory = "2GiB"
[ranking]
tier_ratio = 0.5
local_weight = 2
lzo = true
max_hosts = 3
"""


def test_a_configured_ranking_policy_has_the_configured_values() -> None:
    policy = ranking_policy(parse_config(NON_DEFAULT, "p2pcc.toml", host=HOST))
    assert policy == RankingPolicy(
        tier_ratio=0.5, job_memory=2 * 1024**3, local_weight=2.0, lzo=True, max_hosts=3
    )
    # Every field differs from its default, so a builder ignoring one would be caught.
    default = astuple(ranking_policy(default_config()))
    assert all(mine != theirs for mine, theirs in zip(astuple(policy), default, strict=True))


def test_a_configured_idle_policy_has_the_configured_values() -> None:
    policy = idle_policy(parse_config(NON_DEFAULT, "p2pcc.toml", host=HOST))
    assert policy == IdlePolicy(active_within=30.0, resume_after=600.0)
    default = astuple(idle_policy(default_config()))
    assert all(mine != theirs for mine, theirs in zip(astuple(policy), default, strict=True))


def test_configured_timings_have_the_configured_values() -> None:
    timings = peer_timings(parse_config(NON_DEFAULT, "p2pcc.toml", host=HOST))
    assert timings == PeerTimings(suspect_after=7.0, dead_after=21.0, forget_after=900.0)
    default = astuple(peer_timings(default_config()))
    assert all(mine != theirs for mine, theirs in zip(astuple(timings), default, strict=True))


@pytest.mark.parametrize(
    "text",
    [
        "[ranking]\ntier_ratio = 1\nlocal_weight = 1e-9\nmax_hosts = 512\n"
        "[metrics]\njob_memory = 1",
        "[gossip]\nsuspect_after = 0.002\ndead_after = 0.003\nforget_after = 0.004\n"
        "interval = 0.001",
    ],
)
def test_any_valid_configuration_is_accepted_by_the_core(text: str) -> None:
    config = parse_config(text, "p2pcc.toml", host=HOST)
    assert ranking_policy(config).max_hosts == config.ranking.max_hosts
    assert peer_timings(config).suspect_after == config.gossip.suspect_after
