"""The typed configuration: one frozen dataclass per TOML section.

Every field always holds a valid value (the schema fills in defaults and checks
everything), so code that receives a `Config` never re-validates.  Field order is
the order `p2pcc config` prints and docs/configuration.md documents.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from p2pcc.config.values import IPAddress, IPNetwork
from p2pcc.core.seeds import Seed


@dataclass(frozen=True)
class NodeConfig:
    """`[node]`: who this machine is."""

    name: str
    id_file: Path


@dataclass(frozen=True)
class GossipConfig:
    """`[gossip]`: where and how often nodes talk, and when silence means gone."""

    interface: str
    group: IPAddress
    port: int
    ttl: int
    interval: float
    key_file: Path | None  # None: unauthenticated pool
    insecure: bool  # an unauthenticated pool was asked for; without it the daemon refuses one
    suspect_after: float
    dead_after: float
    forget_after: float
    seeds: tuple[Seed, ...]  # unicast contacts beyond the link (port None: `port`)
    networks: tuple[IPNetwork, ...]  # where members may live beyond the interface's networks


@dataclass(frozen=True)
class DistccdConfig:
    """`[distccd]`: the distccd this node offers to peers."""

    manage: bool
    port: int
    allow: tuple[IPNetwork, ...]  # empty: the subnets of the gossip interface
    allow_stock_clients: tuple[IPNetwork, ...]  # let through the door though not members
    jobs: int  # 0: one per slot
    nice: int
    user: str


@dataclass(frozen=True)
class MetricsConfig:
    """`[metrics]`: how load and capacity are measured."""

    job_memory: int  # bytes
    refresh: float


@dataclass(frozen=True)
class RankingConfig:
    """`[ranking]`: how the wrapper orders peers into DISTCC_HOSTS."""

    tier_ratio: float
    local_weight: float
    lzo: bool
    max_hosts: int


@dataclass(frozen=True)
class WrapperConfig:
    """`[wrapper]`: the compiler masquerade."""

    state_max_age: float
    distcc: str


@dataclass(frozen=True)
class CompilersConfig:
    """`[compilers]`: which compilers are fingerprinted and offered to peers."""

    offer: tuple[str, ...]
    extra: tuple[str, ...]


#: Values of `idle.source`: where the daemon looks for a person at the desktop.
IDLE_SOURCES = ("logind", "input", "both")


@dataclass(frozen=True)
class ProofsConfig:
    """`[proofs]`: proving each peer by a real compile while idle (docs/daemon.md)."""

    enabled: bool


@dataclass(frozen=True)
class IdleConfig:
    """`[idle]`: pause automatically while a person uses this desktop (docs/idle.md)."""

    enabled: bool
    source: str  # one of IDLE_SOURCES
    active_within: float  # seconds since the last activity that still count as "in use"
    resume_after: float  # seconds of idleness before an automatic pause ends
    hand_back: bool  # the automatic pause stops peers' running jobs (else: nice 19)


@dataclass(frozen=True)
class Config:
    """The whole configuration; `source` is the file read, None when only defaults apply."""

    runtime_dir: Path
    node: NodeConfig
    gossip: GossipConfig
    distccd: DistccdConfig
    metrics: MetricsConfig
    ranking: RankingConfig
    wrapper: WrapperConfig
    compilers: CompilersConfig
    proofs: ProofsConfig
    idle: IdleConfig
    source: Path | None = None


#: Section name to dataclass, in file order.
SECTIONS: dict[str, type] = {
    "node": NodeConfig,
    "gossip": GossipConfig,
    "distccd": DistccdConfig,
    "metrics": MetricsConfig,
    "ranking": RankingConfig,
    "wrapper": WrapperConfig,
    "compilers": CompilersConfig,
    "proofs": ProofsConfig,
    "idle": IdleConfig,
}
