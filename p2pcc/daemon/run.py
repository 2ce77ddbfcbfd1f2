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
import socket
import time
from functools import partial

import trio

from p2pcc.config import Config, load_config
from p2pcc.config.key_file import load_keyring
from p2pcc.config.policies import peer_timings, ranking_policy
from p2pcc.control_client import control_socket_path
from p2pcc.core.errors import P2pccError
from p2pcc.core.gossip import GossipEngine
from p2pcc.core.metrics import limited_cpus
from p2pcc.core.model import NodeStatus
from p2pcc.daemon.compilers import local_compilers, serve_compiler_watch
from p2pcc.daemon.control import serve_control
from p2pcc.daemon.distccd.renice import serve_renice_while_paused
from p2pcc.daemon.distccd.supervisor import DistccdState, distccd_log_file, serve_distccd
from p2pcc.daemon.distccd.vanished import serve_vanished_peers
from p2pcc.daemon.gossip import serve_gossip
from p2pcc.daemon.idle import make_source, serve_idle
from p2pcc.daemon.mdns.discovery import Discovery, serve_discovery
from p2pcc.daemon.metrics.power import Measurements, announce_distccd
from p2pcc.daemon.metrics.sampler import available_cpus, read_cpu_limit, serve_metrics
from p2pcc.daemon.node import Node, offers_of
from p2pcc.daemon.node_control import NodeControl
from p2pcc.daemon.startup import discover_surroundings
from p2pcc.daemon.state_writer import serve_state_file
from p2pcc.daemon.stores.identity import load_node_id, next_incarnation
from p2pcc.daemon.stores.pause import pause_file, restore_pause, serve_pause_store, stored_form
from p2pcc.daemon.stores.seen import restore_seen_orders, seen_file, serve_seen_store
from p2pcc.paths import cache_dir
from p2pcc.wrapper.lookup import is_link_dir, path_dirs

log = logging.getLogger("p2pcc.daemon")

#: How long a stopping daemon keeps gossiping LEAVING before it cancels everything,
#: so peers stop sending new jobs before distccd stops taking them.
LEAVING_GRACE = 0.5


async def run_daemon(config: Config, env: dict[str, str]) -> None:
    """Run the daemon until SIGTERM/SIGINT; raises P2pccError for a start-up failure."""
    surroundings = discover_surroundings(config)
    keyring = load_keyring(config)
    node_id = load_node_id(config.node.id_file)
    incarnation = next_incarnation(config.node.id_file.with_name("incarnation"), time.time())
    names = (*config.compilers.offer, *config.compilers.extra)
    compilers = await trio.to_thread.run_sync(local_compilers, names, env)
    if not compilers:
        log.warning("no compiler found among %s: this node will offer nothing", ", ".join(names))
    # What served jobs can occupy at once, a cgroup CPU limit included: distccd's --jobs,
    # the client's own localhost/N and the cpus announced to stock zeroconf clients.
    cpus = limited_cpus(available_cpus(), read_cpu_limit())
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
        compilers=offers_of(compilers),
    )
    engine = GossipEngine(
        node_id=node_id,
        incarnation=incarnation,
        keyring=keyring,
        status=status,
        interval=config.gossip.interval,
        timings=peer_timings(config),
        now=trio.current_time(),
    )
    node = Node(engine=engine, compilers=compilers, policy=ranking_policy(config), local_slots=cpus)
    pause_path = pause_file(config.node.id_file)
    kept_pause = restore_pause(node, pause_path, trio.current_time(), time.time())
    seen_path = seen_file(config.node.id_file)
    kept_seen = restore_seen_orders(engine.table, seen_path)
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
        distccd: DistccdState = await nursery.start(
            partial(
                serve_distccd,
                config.distccd,
                listen=surroundings.endpoint.interface_address,
                interface=surroundings.interface.name,
                log_file=distccd_log_file(runtime_dir),
                on_serving=lambda serving: node.set_serving(serving, trio.current_time()),
                slots=lambda: max(1, node.engine.status.slots or cpus),
                env=env,
                exclude_path_dirs=link_dirs_on(env),
            )
        )
        measurements = Measurements(node)
        await nursery.start(
            partial(
                serve_metrics,
                config.metrics,
                measurements.publish,
                distccd_pids=lambda: [distccd.pid] if distccd.pid else [],
            )
        )
        nursery.start_soon(measurements.calibrate, compilers, cache_dir(env))
        await nursery.start(serve_compiler_watch, node, names, env)
        await nursery.start(serve_gossip, node, surroundings.endpoint)
        discovery: Discovery = await nursery.start(
            partial(
                serve_discovery,
                node,
                addresses=surroundings.addresses,
                hostname=socket.gethostname(),
                gossip_port=config.gossip.port,
            )
        )
        nursery.start_soon(announce_distccd, node, discovery, config.distccd.port, cpus)
        await nursery.start(
            partial(serve_state_file, node, runtime_dir / "state", period=_state_period(config))
        )
        await nursery.start(
            partial(
                serve_pause_store,
                pause_path,
                lambda: stored_form(node.pause_state),
                node.changed,
                on_disk=kept_pause,
            )
        )
        await nursery.start(serve_vanished_peers, node)
        await nursery.start(
            partial(serve_seen_store, seen_path, engine.table.seen_orders, on_disk=kept_seen)
        )
        await nursery.start(
            serve_renice_while_paused,
            lambda: node.pause_state is not None,
            lambda: distccd.pid,
            node.changed,
        )
        if config.idle.enabled:
            source = make_source(config.idle.source)
            await nursery.start(partial(serve_idle, config.idle, node, source, uid=os.geteuid()))
        await nursery.start(serve_control, control_socket_path(config), NodeControl(node))
        log.info("ready")
        await _serve_signals(node, config, nursery.cancel_scope)


def link_dirs_on(env: dict[str, str]) -> list[str]:
    """p2pcc link directories on our PATH: distccd must not run peers' jobs through them."""
    return [entry for entry in path_dirs(env.get("PATH")) if is_link_dir(entry)]


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
        for section in ("gossip", "distccd", "node", "compilers", "idle")
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
