"""p2pcc's configuration: a TOML file where every key has a default.

`load_config` finds and reads the file (see `load`), `parse_config` and
`config_from_mapping` validate (see `schema`), `render_config` writes it back.
docs/configuration.md documents every key.
"""

from __future__ import annotations

from p2pcc.config.host import HostDefaults, discover_host_defaults
from p2pcc.config.load import find_config, load_config, read_config_text
from p2pcc.config.model import (
    CompilersConfig,
    Config,
    DistccdConfig,
    GossipConfig,
    IdleConfig,
    MetricsConfig,
    NodeConfig,
    ProofsConfig,
    RankingConfig,
    WrapperConfig,
)
from p2pcc.config.render import render_config
from p2pcc.config.schema import config_from_mapping, parse_config
from p2pcc.config.values import format_size, parse_size

__all__ = [
    "CompilersConfig",
    "Config",
    "DistccdConfig",
    "GossipConfig",
    "HostDefaults",
    "IdleConfig",
    "MetricsConfig",
    "NodeConfig",
    "ProofsConfig",
    "RankingConfig",
    "WrapperConfig",
    "config_from_mapping",
    "discover_host_defaults",
    "find_config",
    "format_size",
    "load_config",
    "parse_config",
    "parse_size",
    "read_config_text",
    "render_config",
]
