"""`p2pcc daemon`: one root nursery, one `serve_*` task per concern.

Start-up does the slow, fallible work first (interface, identity, key, compiler
fingerprints) so a bad configuration fails with one message before anything is
announced.  Then the node (`p2pcc.core.node.LocalNode`) is built, and each task is
started with `nursery.start`, in dependency order, and reports readiness.  The tasks
talk to the node through its methods and wake on the changes they act on
(`p2pcc.daemon.changes`).  SIGTERM/SIGINT announce LEAVING, give peers a moment to hear
it, then cancel everything: the gossip task sends LEAVE on its way out, mDNS
unregisters, distccd drains.  `gossip.seeds` and `gossip.networks`, like the rest of
[gossip], take effect at the next start.  SIGHUP re-reads the configuration and applies what can
change live.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from functools import partial
from typing import Any

import trio

from p2pcc import statefile
from p2pcc.config import Config, load_config
from p2pcc.config.key_file import load_keyring
from p2pcc.config.policies import idle_policy, ranking_policy
from p2pcc.control_client import control_socket_path
from p2pcc.core.errors import P2pccError
from p2pcc.core.metrics import LocalMetrics
from p2pcc.core.node import LocalNode
from p2pcc.daemon.changes import ChangeBoard
from p2pcc.daemon.compilers import serve_compiler_watch
from p2pcc.daemon.control import serve_control
from p2pcc.daemon.distccd.paused import serve_paused_jobs
from p2pcc.daemon.distccd.supervisor import DistccdState, distccd_log_file, serve_distccd
from p2pcc.daemon.distccd.vanished import serve_vanished_peers
from p2pcc.daemon.door import Door, door_policy, open_door, serve_door, serve_no_distccd
from p2pcc.daemon.gossip import serve_gossip
from p2pcc.daemon.identity_renewal import serve_identity_renewal
from p2pcc.daemon.idle import make_source, serve_idle
from p2pcc.daemon.mdns.announce import announce_distccd
from p2pcc.daemon.mdns.discovery import Discovery, serve_discovery
from p2pcc.daemon.metrics.calibrate import calibrate_node
from p2pcc.daemon.metrics.sampler import serve_metrics
from p2pcc.daemon.node_control import NodeControl
from p2pcc.daemon.pool_security import serve_insecure_warnings, warn_insecure, warn_wider_pool
from p2pcc.daemon.proof_run import run_proof
from p2pcc.daemon.proofs import BuildLoad, serve_proofs
from p2pcc.daemon.runtime_dir import prepare_runtime_dir
from p2pcc.daemon.seeds import serve_seeds
from p2pcc.daemon.startup import StartFacts, gather_start_facts, open_node
from p2pcc.daemon.state_writer import serve_state_file
from p2pcc.daemon.stores.members import (
    Contacts,
    load_members,
    members_file,
    serve_member_store,
)
from p2pcc.daemon.stores.pause import (
    StoredPause,
    pause_file,
    restore_pause,
    serve_pause_store,
    stored_form,
)
from p2pcc.daemon.stores.seen import Orders, restore_seen_orders, seen_file, serve_seen_store
from p2pcc.daemon.timers import serve_timers
from p2pcc.daemon.turnaround import serve_turnaround
from p2pcc.paths import cache_dir
from p2pcc.wrapper.lookup import is_link_dir, path_dirs

log = logging.getLogger("p2pcc.daemon")

#: How long a stopping daemon keeps gossiping LEAVING before it cancels everything,
#: so peers stop sending new jobs before distccd stops taking them.
LEAVING_GRACE = 0.5


@dataclass(frozen=True, slots=True)
class Daemon:
    """What every task is started with: the node, its change board, the facts, what
    the files kept across restarts held at start, and our builds' latest load."""

    config: Config
    facts: StartFacts
    node: LocalNode
    board: ChangeBoard
    env: dict[str, str]
    kept_pause: StoredPause | None
    kept_seen: Orders
    build_load: BuildLoad


async def run_daemon(config: Config, env: dict[str, str]) -> None:
    """Run the daemon until SIGTERM/SIGINT; raises P2pccError for a start-up failure."""
    facts = await gather_start_facts(config, env)
    board = ChangeBoard()
    node = open_node(config, facts, board.notify, trio.current_time())
    # Restored before any task runs, so the first datagram already says "paused" and the
    # first one heard is already checked against the replay memory.
    kept_pause = restore_pause(
        node, pause_file(config.node.id_file), trio.current_time(), time.time()
    )
    kept_seen = restore_seen_orders(node, seen_file(config.node.id_file))
    daemon = Daemon(config, facts, node, board, env, kept_pause, kept_seen, BuildLoad())
    prepare_runtime_dir(config.runtime_dir)
    log.info(
        "node %s (%s) incarnation %d on %s %s, gossip %s port %d%s",
        config.node.name,
        facts.node_id.hex(),
        facts.incarnation,
        facts.surroundings.interface.name,
        facts.surroundings.endpoint.interface_address,
        config.gossip.group,
        config.gossip.port,
        "" if facts.keyring else " (unauthenticated pool)",
    )
    warn_wider_pool(config.gossip.networks, config.distccd.allow, keyed=bool(facts.keyring))
    # The door is up before distccd starts and goes after it has stopped (p2pcc.daemon.door).
    door_context = open_door(door_policy(config, facts), node.reports.set_door)
    async with door_context as door, trio.open_nursery() as nursery:
        distccd = await _start_distccd(nursery, daemon, door)
        await _start_pool(nursery, daemon)
        await _start_local(nursery, daemon, distccd)
        log.info("ready")
        await _serve_signals(node, config, nursery.cancel_scope)


async def _start_distccd(nursery: trio.Nursery, daemon: Daemon, door: Door) -> DistccdState:
    """distccd (only behind its door) and what measures this machine (metrics need
    distccd's pid)."""
    config, node, cpus = daemon.config, daemon.node, daemon.facts.cpus
    if door.up:
        await nursery.start(serve_door, door, node, daemon.board)
    distccd: DistccdState = await nursery.start(
        partial(
            serve_distccd if door.up else serve_no_distccd,
            config.distccd,
            listen=daemon.facts.surroundings.endpoint.interface_address,
            interface=daemon.facts.surroundings.interface.name,
            pool_networks=config.gossip.networks,
            log_file=distccd_log_file(config.runtime_dir),
            on_serving=lambda serving: node.set_serving(serving, trio.current_time()),
            slots=lambda: max(1, node.status.slots or cpus),
            env=daemon.env,
            exclude_path_dirs=link_dirs_on(daemon.env),
            refusals=node.reports.guard,
        )
    )
    await nursery.start(
        partial(
            serve_metrics,
            config.metrics,
            partial(_adopt_sample, node, daemon.build_load),
            distccd_pids=lambda: [distccd.pid] if distccd.pid else [],
        )
    )
    nursery.start_soon(calibrate_node, node, cache_dir(daemon.env))
    await nursery.start(serve_compiler_watch, node, daemon.facts.compiler_names, daemon.env)
    return distccd


async def _start_pool(nursery: trio.Nursery, daemon: Daemon) -> None:
    """Gossip, its timers and replay memory, and mDNS."""
    config, node, board = daemon.config, daemon.node, daemon.board
    await nursery.start(serve_insecure_warnings, node)
    await nursery.start(serve_identity_renewal, node, board, config.node.id_file)
    await nursery.start(serve_gossip, node, daemon.facts.surroundings.endpoint, board)
    surroundings, members_path = daemon.facts.surroundings, members_file(config.node.id_file)
    remembered = load_members(members_path, surroundings.address_pool(), _own_addresses(daemon))
    contacts = Contacts(node, remembered)
    await nursery.start(_seeds_task(daemon, contacts))
    await nursery.start(
        partial(serve_member_store, members_path, node, contacts, on_disk=remembered)
    )
    await nursery.start(serve_timers, node, board)
    seen_path = seen_file(config.node.id_file)
    await nursery.start(
        partial(serve_seen_store, seen_path, node.seen_orders, on_disk=daemon.kept_seen)
    )
    discovery: Discovery = await nursery.start(
        partial(
            serve_discovery,
            node,
            board,
            addresses=daemon.facts.surroundings.addresses,
            hostname=socket.gethostname(),
            gossip_port=config.gossip.port,
        )
    )
    nursery.start_soon(
        announce_distccd, node, board, discovery, config.distccd.port, daemon.facts.cpus
    )
    await nursery.start(serve_vanished_peers, node, board)
    await nursery.start(serve_turnaround, node)


async def _start_local(nursery: trio.Nursery, daemon: Daemon, distccd: DistccdState) -> None:
    """What serves this machine's own users: the state file, the pause, the control
    socket."""
    config, node, board = daemon.config, daemon.node, daemon.board
    state_file = config.runtime_dir / statefile.FILE_NAME
    await nursery.start(
        partial(serve_state_file, node, board, state_file, period=_state_period(config))
    )
    await nursery.start(
        partial(
            serve_pause_store,
            pause_file(config.node.id_file),
            lambda: stored_form(node.pause),
            board,
            on_disk=daemon.kept_pause,
        )
    )
    await nursery.start(serve_paused_jobs, node, lambda: distccd.pid, board)
    if config.idle.enabled:
        source = make_source(config.idle.source)
        policy = idle_policy(config)
        hand_back = config.idle.hand_back
        await nursery.start(
            partial(serve_idle, policy, node, source, uid=os.geteuid(), hand_back=hand_back)
        )
    await nursery.start(serve_control, control_socket_path(config), NodeControl(node))
    prove = partial(
        run_proof, distcc=config.wrapper.distcc, env=daemon.env, leave_out=link_dirs_on(daemon.env)
    )
    lzo = ranking_policy(config).lzo
    if config.proofs.enabled:
        await nursery.start(partial(serve_proofs, node, prove, daemon.build_load, lzo=lzo))


def _adopt_sample(node: LocalNode, build_load: BuildLoad, sample: LocalMetrics) -> None:
    """A metrics sample: the node's measurements, and whether a build of ours runs."""
    build_load.observe(sample)
    node.set_measurements(sample, trio.current_time())


def _seeds_task(daemon: Daemon, contacts: Contacts) -> partial[Coroutine[Any, Any, None]]:
    """`serve_seeds` for this node, handing its seeds to `contacts`."""
    return partial(
        serve_seeds,
        daemon.config.gossip.seeds,
        default_port=daemon.config.gossip.port,
        pool=daemon.facts.surroundings.address_pool(),
        own=_own_addresses(daemon),
        set_seeds=contacts.set_seeds,
        on_report=daemon.node.reports.set_seeds,
    )


def _own_addresses(daemon: Daemon) -> tuple[str, ...]:
    """Every address we announce, and the gossip interface's: never a seed of ours."""
    surroundings = daemon.facts.surroundings
    return (*surroundings.addresses, surroundings.endpoint.interface_address)


def link_dirs_on(env: dict[str, str]) -> list[str]:
    """p2pcc link directories on our PATH: distccd must not run peers' jobs through them."""
    return [entry for entry in path_dirs(env.get("PATH")) if is_link_dir(entry)]


def _state_period(config: Config) -> float:
    return min(config.gossip.interval, config.wrapper.state_max_age / 3)


async def _serve_signals(node: LocalNode, config: Config, scope: trio.CancelScope) -> None:
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


def _reload(node: LocalNode, config: Config) -> Config:
    """Re-read the configuration; apply what can change live, name what needs a restart."""
    try:
        fresh = load_config(str(config.source) if config.source else None)
        keyring = load_keyring(fresh)
        policy = ranking_policy(fresh)
    except P2pccError as error:
        log.error("reload refused, keeping the running configuration: %s", error)
        return config
    node.set_keyring(keyring)
    if not keyring:
        warn_insecure()
    node.set_policy(policy)
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
