"""Start-up facts the daemon needs before it announces anything, and the node built
from them.

Each function does one fallible look-up (the gossip interface, the cluster key, the
identity, the compilers) and fails with a message that says what to fix, so a bad
setup stops the daemon before it has told peers anything.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import trio

from p2pcc.config import Config, GossipConfig
from p2pcc.config.key_file import load_keyring
from p2pcc.config.policies import peer_timings, ranking_policy
from p2pcc.config.values import IPNetwork
from p2pcc.core.addresses import SCOPE_ID, AddressPool
from p2pcc.core.auth import Keyring
from p2pcc.core.errors import P2pccError
from p2pcc.core.gossip import GossipEngine
from p2pcc.core.local_compilers import LocalCompiler
from p2pcc.core.metrics import limited_cpus
from p2pcc.core.model import NodeStatus
from p2pcc.core.node import LocalNode
from p2pcc.core.node_change import Change
from p2pcc.daemon.compilers import local_compilers
from p2pcc.daemon.gossip import GossipEndpoint, log_refused_address
from p2pcc.daemon.metrics.sampler import available_cpus, read_cpu_limit
from p2pcc.daemon.stores.identity import incarnation_file, load_node_id, next_incarnation
from p2pcc.netinfo import InterfaceInfo, IPInterface, gossip_interface

log = logging.getLogger("p2pcc.daemon")


@dataclass(frozen=True, slots=True)
class Surroundings:
    """What start-up learned about this machine, kept for status and reload."""

    interface: InterfaceInfo
    endpoint: GossipEndpoint
    addresses: tuple[str, ...]
    networks: tuple[IPNetwork, ...] = ()  # `gossip.networks`: members beyond the interface

    def address_pool(self) -> AddressPool:
        """Where peers may be dialled: the gossip group's family, the interface's networks
        and those `gossip.networks` adds, and the interface as the link of peers'
        link-local addresses."""
        own = (address.network for address in self.interface.addresses)
        networks = tuple(dict.fromkeys((*own, *self.networks)))
        version = self.endpoint.group.version
        return AddressPool(version, networks, link_scope(self.interface))


def link_scope(interface: InterfaceInfo) -> str:
    """The scope id naming `interface` in a link-local address: its name, or its index
    when the name holds characters a scope id may not (the wire format refuses them)."""
    return interface.name if SCOPE_ID.fullmatch(interface.name) else str(interface.index)


def discover_surroundings(config: Config) -> Surroundings:
    """The gossip interface, the address peers reach us at, and the gossip endpoint."""
    return surroundings_on(gossip_interface(config.gossip.interface), config.gossip)


def surroundings_on(interface: InterfaceInfo, gossip: GossipConfig) -> Surroundings:
    """The address peers reach us at on `interface`, and the gossip endpoint there.

    A link-local address (the interface has no other of the group's family) carries the
    interface as its scope: distccd cannot listen on it, nor distcc dial it, without."""
    group = gossip.group
    candidates: list[IPInterface]
    if group.version == 6:
        candidates = sorted(interface.ipv6(), key=lambda a: a.ip.is_link_local)
    else:
        candidates = list(interface.ipv4())
    if not candidates:
        raise P2pccError(
            f"interface {interface.name} has no IPv{group.version} address for gossip group {group}"
        )
    own = str(candidates[0].ip)
    if candidates[0].ip.is_link_local:
        own = f"{own}%{link_scope(interface)}"
    endpoint = GossipEndpoint(group, gossip.port, gossip.ttl, interface.index, own)
    addresses = tuple(str(a.ip) for a in interface.addresses if not a.ip.is_link_local)
    return Surroundings(interface, endpoint, addresses or (own,), gossip.networks)


@dataclass(frozen=True, slots=True)
class StartFacts:
    """Everything start-up learned before the node exists."""

    surroundings: Surroundings
    keyring: Keyring
    node_id: bytes
    incarnation: int
    compiler_names: tuple[str, ...]
    compilers: tuple[LocalCompiler, ...]
    cpus: int  # what served jobs can occupy at once, a cgroup CPU limit included


async def gather_start_facts(config: Config, env: dict[str, str]) -> StartFacts:
    """The slow, fallible look-ups, in the order their failures are most useful: the key
    first, as no pool may run without one unless the configuration says so."""
    keyring = load_keyring(config)
    surroundings = discover_surroundings(config)
    node_id = load_node_id(config.node.id_file)
    incarnation = next_incarnation(incarnation_file(config.node.id_file), time.time())
    names = (*config.compilers.offer, *config.compilers.extra)
    compilers = await trio.to_thread.run_sync(local_compilers, names, env)
    if not compilers:
        log.warning("no compiler found among %s: this node will offer nothing", ", ".join(names))
    cpus = limited_cpus(available_cpus(), read_cpu_limit())
    return StartFacts(surroundings, keyring, node_id, incarnation, names, tuple(compilers), cpus)


def open_node(
    config: Config, facts: StartFacts, on_change: Callable[[Change], None], now: float
) -> LocalNode:
    """The node as it starts: nothing measured yet, distccd not serving yet."""
    status = NodeStatus(
        name=config.node.name,
        addresses=facts.surroundings.addresses,
        distccd_port=config.distccd.port,
        cpus=facts.cpus,
        load=0.0,
        mem_available=0,
        slots=0,
        jobs=0,
        power=1.0,
    )
    engine = GossipEngine(
        node_id=facts.node_id,
        incarnation=facts.incarnation,
        keyring=facts.keyring,
        status=status,
        interval=config.gossip.interval,
        timings=peer_timings(config),
        now=now,
        pool=facts.surroundings.address_pool(),
        on_refused=log_refused_address,
        # Whom news goes to must not be guessable from our id, nor the cookies that
        # prove a sync requester's address: both from the system's randomness.
        rng=random.SystemRandom(),
        secret=os.urandom(32),
    )
    return LocalNode(
        engine=engine,
        compilers=facts.compilers,
        policy=ranking_policy(config),
        now=now,
        on_change=on_change,
    )
