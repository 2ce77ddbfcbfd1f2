"""`p2pcc daemon`: one root nursery, one `serve_*` task per concern.

Start-up does the slow, fallible work first (interface, identity, key, compiler
fingerprints) so a bad configuration fails with one message before anything is
announced.  Then each task is started with `nursery.start`, in dependency order, and
reports readiness.  SIGTERM/SIGINT announce LEAVING, give peers a moment to hear it,
then cancel everything: the gossip task sends LEAVE on its way out, mDNS unregisters,
distccd drains.  SIGHUP re-reads the configuration and applies what can change live.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import trio

from p2pcc.compilers.probe import lookup
from p2pcc.config import Config, load_config
from p2pcc.control_client import control_socket_path
from p2pcc.core.auth import Keyring, parse_key_file
from p2pcc.core.control_protocol import PermissionDeniedError, may_resume
from p2pcc.core.errors import ConfigError, P2pccError
from p2pcc.core.fingerprint import Fingerprint
from p2pcc.core.gossip import GossipEngine
from p2pcc.core.model import NodeStatus
from p2pcc.core.peers import PeerTimings
from p2pcc.core.ranking import RankingPolicy
from p2pcc.daemon.control import serve_control
from p2pcc.daemon.gossip import GossipEndpoint, serve_gossip
from p2pcc.daemon.identity import load_node_id, next_incarnation
from p2pcc.daemon.node import LocalCompiler, Node
from p2pcc.daemon.state_writer import serve_state_file
from p2pcc.netinfo import InterfaceInfo, IPInterface, gossip_interface

log = logging.getLogger("p2pcc.daemon")

#: How long a stopping daemon keeps gossiping LEAVING before it cancels everything,
#: so peers stop sending new jobs before distccd stops taking them.
LEAVING_GRACE = 0.5


@dataclass(frozen=True, slots=True)
class Surroundings:
    """What start-up learned about this machine, kept for status and reload."""

    interface: InterfaceInfo
    endpoint: GossipEndpoint
    addresses: tuple[str, ...]


def ranking_policy(config: Config) -> RankingPolicy:
    """The ranking knobs from the configuration."""
    ranking = config.ranking
    return RankingPolicy(
        tier_ratio=ranking.tier_ratio,
        job_memory=config.metrics.job_memory,
        local_weight=ranking.local_weight,
        lzo=ranking.lzo,
        max_hosts=ranking.max_hosts,
    )


def peer_timings(config: Config) -> PeerTimings:
    """The liveness timings from the configuration."""
    gossip = config.gossip
    return PeerTimings(gossip.suspect_after, gossip.dead_after, gossip.forget_after)


def load_keyring(config: Config) -> Keyring:
    """The cluster keyring, or an empty one (unauthenticated pool) when no key is set."""
    path = config.gossip.key_file
    if path is None:
        return Keyring()
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(str(path), "gossip.key_file", f"cannot read: {error.strerror}") from None
    return parse_key_file(text, str(path))


def discover_surroundings(config: Config) -> Surroundings:
    """The gossip interface, the address peers reach us at, and the gossip endpoint."""
    interface = gossip_interface(config.gossip.interface)
    group = config.gossip.group
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
    endpoint = GossipEndpoint(group, config.gossip.port, config.gossip.ttl, interface.index, own)
    addresses = tuple(str(a.ip) for a in interface.addresses if not a.ip.is_link_local)
    return Surroundings(interface, endpoint, addresses or (own,))


def find_compilers(names: Sequence[str], env: dict[str, str]) -> list[LocalCompiler]:
    """Fingerprint each configured compiler name that exists; one entry per fingerprint."""
    by_id: dict[str, tuple[Fingerprint, list[str]]] = {}
    for name in names:
        try:
            fingerprint = lookup(name, env)
        except P2pccError as error:
            log.debug("compiler %s not offered: %s", name, error)
            continue
        by_id.setdefault(fingerprint.id, (fingerprint, []))[1].append(name)
    return [LocalCompiler(fp, tuple(found)) for fp, found in by_id.values()]


async def run_daemon(config: Config, env: dict[str, str]) -> None:
    """Run the daemon until SIGTERM/SIGINT; raises P2pccError for a start-up failure."""
    surroundings = discover_surroundings(config)
    keyring = load_keyring(config)
    node_id = load_node_id(config.node.id_file)
    incarnation = next_incarnation(config.node.id_file.with_name("incarnation"), time.time())
    names = (*config.compilers.offer, *config.compilers.extra)
    compilers = await trio.to_thread.run_sync(find_compilers, names, env)
    if not compilers:
        log.warning("no compiler found among %s: this node will offer nothing", ", ".join(names))
    now = trio.current_time()
    cpus = len(os.sched_getaffinity(0))
    status = NodeStatus(
        name=config.node.name,
        addresses=surroundings.addresses,
        distccd_port=config.distccd.port,
        cpus=cpus,
        load=0.0,
        mem_available=0,
        slots=0,
        jobs=0,
        power=1.0,
        compilers=tuple(c.fingerprint.to_offer() for c in compilers if not c.withheld),
    )
    engine = GossipEngine(
        node_id=node_id,
        incarnation=incarnation,
        keyring=keyring,
        status=status,
        interval=config.gossip.interval,
        timings=peer_timings(config),
        now=now,
    )
    node = Node(engine=engine, compilers=compilers, policy=ranking_policy(config), local_slots=cpus)
    runtime_dir = config.runtime_dir
    runtime_dir.mkdir(parents=True, exist_ok=True)
    log.info(
        "node %s (%s) incarnation %d on %s %s, gossip %s port %d%s",
        config.node.name,
        node_id.hex(),
        incarnation,
        surroundings.interface.name,
        surroundings.endpoint.interface_address,
        config.gossip.group,
        config.gossip.port,
        "" if keyring else " (unauthenticated pool)",
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_gossip, node, surroundings.endpoint)
        await nursery.start(
            partial(serve_state_file, node, runtime_dir / "state", period=_state_period(config))
        )
        await nursery.start(serve_control, control_socket_path(config), NodeControl(node))
        await _serve_signals(node, config, nursery.cancel_scope)


class NodeControl:
    """The control socket's view of the node: reads the clocks the node must not."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def status(self) -> dict[str, Any]:
        return self.node.snapshot(trio.current_time(), time.time())

    def pause(self, seconds: float | None, reason: str, uid: int) -> dict[str, Any]:
        self.node.pause(seconds, reason, uid, trio.current_time(), time.time())
        log.info(
            "paused by uid %d for %s: %s", uid, f"{seconds:g} s" if seconds else "ever", reason
        )
        return {"state": "paused", "pause": self._pause_doc()}

    def resume(self, uid: int) -> dict[str, Any]:
        pause = self.node.pause_state
        if pause is not None and not may_resume(uid, pause.by_uid):
            raise PermissionDeniedError(
                f"paused by uid {pause.by_uid}: only that user or root may resume"
            )
        was_paused = self.node.resume(trio.current_time())
        log.info("resumed by uid %d", uid)
        return {"state": "active", "was_paused": was_paused}

    def hosts(self, fingerprint: str) -> dict[str, Any]:
        line = self.node.hosts_for(fingerprint)
        return {"hosts": line.hosts, "jobs": line.jobs}

    def _pause_doc(self) -> dict[str, Any] | None:
        pause = self.node.pause_state
        if pause is None:
            return None
        return {"reason": pause.reason, "by_uid": pause.by_uid, "until": pause.until_wall}


def _state_period(config: Config) -> float:
    return min(config.gossip.interval, config.wrapper.state_max_age / 3)


async def _serve_signals(node: Node, config: Config, scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        async for signum in signals:
            if signum == signal.SIGHUP:
                config = _reload(node, config)
                continue
            log.info("%s: leaving the pool", signal.Signals(signum).name)
            node.begin_leave(trio.current_time())
            await trio.sleep(LEAVING_GRACE)
            scope.cancel()
            return


def _reload(node: Node, config: Config) -> Config:
    """Re-read the configuration; apply what can change live, name what needs a restart."""
    try:
        fresh = load_config(str(config.source) if config.source else None)
        keyring = load_keyring(fresh)
        policy = ranking_policy(fresh)
    except P2pccError as error:
        log.error("reload refused, keeping the running configuration: %s", error)
        return config
    node.engine.keyring = keyring
    node.policy = policy
    node.changed.notify()
    restart_needed = [
        section
        for section in ("gossip", "distccd", "node", "compilers")
        if _section_without(fresh, section, "key_file")
        != _section_without(config, section, "key_file")
    ]
    log.info(
        "reloaded %s: key and ranking applied%s",
        fresh.source or "defaults",
        f"; restart to apply changes in [{'], ['.join(restart_needed)}]" if restart_needed else "",
    )
    return fresh


def _section_without(config: Config, section: str, ignored: str) -> dict[str, object]:
    values = dict(vars(getattr(config, section)))
    values.pop(ignored, None)
    return values
