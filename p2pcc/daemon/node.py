"""The daemon's one piece of shared state: the gossip engine plus what the tasks report.

Each `serve_*` task owns one concern and reports into the node through a plain method
(`set_metrics`, `set_serving`, `discovered`, …); the node turns those reports into our
advertised `NodeStatus`, hands it to the engine, and wakes the tasks that act on change
(the gossip sender and the state-file writer).  It also answers the control socket.
Methods take no clock: callers pass `now` (trio's clock) and `wall` (Unix time).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import trio

from p2pcc import __version__
from p2pcc.core import limits
from p2pcc.core.fingerprint import Fingerprint
from p2pcc.core.gossip import GossipEngine
from p2pcc.core.hosts import HostsLine, hosts_line
from p2pcc.core.idle import PauseKind
from p2pcc.core.model import CompilerOffer, NodeState, NodeStatus
from p2pcc.core.ranking import RankingPolicy, rank_peers
from p2pcc.core.zeroconf_names import StockServer

STATUS_SCHEMA = 1

#: The reason peers are shown for a pause the daemon made because the desktop is in use.
AUTO_PAUSE_REASON = "desktop in use"


@dataclass(frozen=True, slots=True)
class LocalCompiler:
    """A compiler of this machine: its fingerprint, the names it answers to with each
    name's path and file stamp at probe time, whether peers are offered it (`withheld`
    says why not), and its checked `-march=native` expansions (p2pcc.wrapper.native)."""

    fingerprint: Fingerprint
    names: tuple[str, ...]
    commands: tuple[tuple[str, str], ...] = ()  # (path as found on PATH, stamp)
    withheld: str = ""
    native: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (key, explicit flags)


@dataclass(frozen=True, slots=True)
class Pause:
    """Who paused this node, why, and until when (both clocks: trio's and the wall's);
    `automatic` for a pause made because the desktop is in use (docs/idle.md)."""

    reason: str
    by_uid: int
    until: float | None  # trio clock
    until_wall: float | None
    automatic: bool = False

    def as_document(self) -> dict[str, Any]:
        """The `pause` object of the status document and of the control socket's answers."""
        return {
            "reason": self.reason,
            "by_uid": self.by_uid,
            "until": self.until_wall,
            "automatic": self.automatic,
        }


class ChangeNotifier:
    """Wakes every task waiting for "something changed"; a missed wake-up is impossible
    because each waiter holds the event that was current when it started waiting."""

    def __init__(self) -> None:
        self._event = trio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = trio.Event()

    async def wait_until(self, deadline: float) -> None:
        event = self._event
        with trio.move_on_at(deadline):
            await event.wait()


class Node:
    """This workstation as the daemon sees it; see the module docstring."""

    def __init__(
        self,
        *,
        engine: GossipEngine,
        compilers: Sequence[LocalCompiler],
        policy: RankingPolicy,
        local_slots: int,
    ) -> None:
        self.engine = engine
        self.compilers = tuple(compilers)
        self.policy = policy
        self.local_slots = local_slots
        self.changed = ChangeNotifier()
        self.pause_state: Pause | None = None
        self.resumes_by_hand = 0  # pauses ended by `resume`, for the automatic pause
        self.serving = False
        self.stock_servers: dict[str, StockServer] = {}
        self.mdns_drops: Counter[str] = Counter()  # mDNS records ignored, by reason
        self.aborted_connections = 0  # distcc connections to vanished peers cut loose
        self.cutoff_problem: str | None = "not checked yet"  # why they cannot be, if so
        self._base = engine.status  # status as measured, before pause/serving are applied

    # --- reports from the tasks ---------------------------------------------------

    def set_measurements(self, now: float, **fields: Any) -> None:
        """Adopt new measured fields of our status (load, slots, power, addresses, …)."""
        self._base = replace(self._base, **fields)
        self._publish(now)

    def set_serving(self, serving: bool, now: float) -> None:
        """distccd is (not) accepting jobs: while it is not, we offer no slots."""
        if serving != self.serving:
            self.serving = serving
            self._publish(now)

    def pause(self, seconds: float | None, reason: str, uid: int, now: float, wall: float) -> None:
        """Stop taking new jobs from peers, for `seconds` or until resumed; replaces any
        pause in effect, an automatic one included."""
        if seconds is not None and not (math.isfinite(seconds) and seconds > 0):
            raise ValueError(f"pause duration must be a positive number of seconds, got {seconds}")
        until = None if seconds is None else now + seconds
        until_wall = None if seconds is None else wall + seconds
        reason = reason[: limits.MAX_PAUSE_REASON]
        self.pause_state = Pause(reason, uid, until, until_wall)
        self._publish(now)

    def resume(self, now: float) -> bool:
        """A person ends the pause, whatever its kind; False when we were not paused."""
        was_paused = self._end_pause(now)
        if was_paused:
            self.resumes_by_hand += 1
        return was_paused

    def auto_pause(self, uid: int, now: float) -> bool:
        """Pause because the desktop is in use, unless any pause is in effect already."""
        if self.pause_state is not None:
            return False
        self.pause_state = Pause(AUTO_PAUSE_REASON, uid, None, None, automatic=True)
        self._publish(now)
        return True

    def auto_resume(self, now: float) -> bool:
        """End an automatic pause; a manual one always wins and stays."""
        if self.pause_kind() is not PauseKind.AUTOMATIC:
            return False
        return self._end_pause(now)

    def pause_kind(self) -> PauseKind:
        """Which kind of pause is in effect."""
        if self.pause_state is None:
            return PauseKind.NONE
        return PauseKind.AUTOMATIC if self.pause_state.automatic else PauseKind.MANUAL

    def _end_pause(self, now: float) -> bool:
        was_paused = self.pause_state is not None
        self.pause_state = None
        self._publish(now)
        return was_paused

    def set_compilers(self, compilers: Sequence[LocalCompiler], now: float) -> None:
        """Adopt a changed compiler set; peers hear the new offers at once."""
        self.compilers = tuple(compilers)
        self._base = replace(self._base, compilers=offers_of(self.compilers))
        self._publish(now)

    def begin_leave(self, now: float) -> None:
        """Shutting down: peers stop sending new jobs while running ones finish."""
        self._base = replace(self._base, state=NodeState.LEAVING)
        self._publish(now)

    def add_stock_server(self, server: StockServer) -> None:
        if server.instance in self.stock_servers or len(self.stock_servers) < limits.MAX_PEERS:
            self.stock_servers[server.instance] = server
            self.changed.notify()

    def remove_stock_server(self, instance: str) -> None:
        if self.stock_servers.pop(instance, None) is not None:
            self.changed.notify()

    # --- timers -------------------------------------------------------------------

    def next_deadline(self) -> float:
        """When `handle_timer` next has work: gossip, liveness, or a pause running out."""
        deadline = self.engine.next_deadline()
        if self.pause_state is not None and self.pause_state.until is not None:
            deadline = min(deadline, self.pause_state.until)
        return deadline

    def handle_timer(self, now: float) -> None:
        """Expire a pause and apply liveness changes due by `now`."""
        pause = self.pause_state
        if pause is not None and pause.until is not None and now >= pause.until:
            self._end_pause(now)
        if self.engine.handle_timer(now):
            self.changed.notify()

    # --- derived ------------------------------------------------------------------

    def _advertised(self) -> NodeStatus:
        status = self._base
        if status.state is NodeState.LEAVING:
            return replace(status, slots=0)
        if self.pause_state is not None:
            pause = self.pause_state
            return replace(
                status,
                state=NodeState.PAUSED,
                pause_reason=pause.reason,
                pause_until=pause.until_wall,
            )
        if not self.serving:
            return replace(status, slots=0)
        return status

    def _publish(self, now: float) -> None:
        self.engine.set_status(self._advertised(), now)
        self.changed.notify()

    def hosts_for(self, fingerprint: str) -> HostsLine:
        """The DISTCC_HOSTS line and -j for one of our compilers, ranked now."""
        return hosts_line(
            self.engine.table.peers(),
            fingerprint,
            self.engine.status,
            self.local_slots,
            policy=self.policy,
            seed=self.engine.node_id,
        )

    def compiler_records(self) -> dict[str, tuple[str, str, str]]:
        """For the state file: path -> (stamp, fingerprint, remote name) of every name."""
        return {
            path: (stamp, compiler.fingerprint.id, compiler.fingerprint.remote_name)
            for compiler in self.compilers
            for path, stamp in compiler.commands
        }

    def native_records(self) -> dict[str, dict[str, tuple[str, ...]]]:
        """For the state file: fingerprint -> native-flags key -> explicit flags."""
        return {c.fingerprint.id: dict(c.native) for c in self.compilers if c.native}

    def all_hosts(self) -> dict[str, HostsLine]:
        """`hosts_for` every local compiler, keyed by fingerprint id."""
        ids = {compiler.fingerprint.id for compiler in self.compilers}
        return {fingerprint: self.hosts_for(fingerprint) for fingerprint in sorted(ids)}

    def snapshot(self, now: float, wall: float) -> dict[str, Any]:
        """The `status` document (docs/status-json.md): JSON-ready, schema-versioned."""
        status = self.engine.status
        ranks: dict[bytes, dict[str, int]] = {}
        for compiler in self.compilers:
            fingerprint = compiler.fingerprint.id
            ranked = rank_peers(
                self.engine.table.peers(), fingerprint, self.policy, self.engine.node_id
            )
            for position, entry in enumerate(ranked, start=1):
                ranks.setdefault(entry.peer.node_id, {})[fingerprint] = position
        stats = self.engine.statistics(now)
        pause = self.pause_state
        return {
            "schema": STATUS_SCHEMA,
            "version": __version__,
            "generated_at": wall,
            "node": {
                "node_id": self.engine.node_id.hex(),
                "incarnation": self.engine.incarnation,
                "name": status.name,
                "addresses": list(status.addresses),
                "distccd_port": status.distccd_port,
                "state": status.state.value,
                "serving": self.serving,
                "pause": None if pause is None else pause.as_document(),
                "cpus": status.cpus,
                "load": status.load,
                "mem_available": status.mem_available,
                "slots": status.slots,
                "jobs": status.jobs,
                "power": status.power,
                "compilers": [_compiler_doc(compiler) for compiler in self.compilers],
                "cutoff_problem": self.cutoff_problem,
            },
            "peers": [
                {**peer.summary(now), "ranks": ranks.get(peer.node_id, {})}
                for peer in self.engine.table.peers()
            ],
            "stock_servers": [
                {
                    "instance": server.instance,
                    "addresses": list(server.addresses),
                    "port": server.port,
                    "loose_key": server.loose_key,
                    "cpus": server.cpus,
                    "jobs": server.jobs,
                }
                for server in sorted(self.stock_servers.values(), key=lambda s: s.instance)
            ],
            "counters": {
                "packets_in": stats.packets_in,
                "packets_out": stats.packets_out,
                "bytes_in": stats.bytes_in,
                "bytes_out": stats.bytes_out,
                "drops": stats.drops,
                "unicast_targets": stats.unicast_targets,
                "mdns_drops": dict(self.mdns_drops),
                "aborted_connections": self.aborted_connections,
            },
            "hosts": {
                fingerprint: {"hosts": line.hosts, "jobs": line.jobs}
                for fingerprint, line in self.all_hosts().items()
            },
        }


def offers_of(compilers: Sequence[LocalCompiler]) -> tuple[CompilerOffer, ...]:
    """What peers are offered: every compiler not withheld, at most MAX_COMPILERS."""
    offers = [c.fingerprint.to_offer() for c in compilers if not c.withheld]
    return tuple(offers[: limits.MAX_COMPILERS])


def _compiler_doc(compiler: LocalCompiler) -> dict[str, Any]:
    fingerprint = compiler.fingerprint
    return {
        "fingerprint": fingerprint.id,
        "names": list(compiler.names),
        "family": fingerprint.family,
        "language": fingerprint.language,
        "version": fingerprint.version,
        "loose_key": fingerprint.loose_key,
        "remote_name": fingerprint.remote_name,
        "offered": not compiler.withheld,
        "withheld": compiler.withheld,
    }
