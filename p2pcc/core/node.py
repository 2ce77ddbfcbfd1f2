"""This workstation as the daemon knows it: one object, no I/O.

Like aioquic's connection, `LocalNode` owns all of the node's state — what we measured,
our pause, our compilers, the gossip engine and its peer table — and the daemon's tasks
only feed it and read its answers (`receive`, `set_measurements`, `pause_for` in;
`datagram_to_send`, `hosts`, `snapshot` out).  Time is a parameter: the shell reads its
clocks once per wake-up and passes `now` (monotonic) and `wall` (Unix time).

Whatever changes is announced through `on_change` as a `Change` flag, so each task
wakes only for what it acts on.  Rankings are computed once per change, whoever asks,
redoing only the peers that changed (core/ranker.py), from what our jobs measured peers
to deliver (`set_delivered`) and whom proofs disproved (`set_disproven`).  Our
advertised status is derived, never set: the measured status, then LEAVING (no slots), a
pause (PAUSED with its reason), or distccd not serving (no slots).  A node heard under
our id (a clone) is kept as `shared_id`; core/same_id.py says who renews.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from p2pcc.core.auth import Keyring
from p2pcc.core.gossip import GossipEngine
from p2pcc.core.gossip_types import Endpoint, GossipStatistics, Outgoing, Received, Transport
from p2pcc.core.hosts import HostsLine, Ranking
from p2pcc.core.idle import PauseKind
from p2pcc.core.local_compilers import LocalCompiler, offers_of
from p2pcc.core.metrics import LocalMetrics, PowerEstimate, limited_power, node_power
from p2pcc.core.model import NodeState, NodeStatus
from p2pcc.core.node_change import Change, table_change
from p2pcc.core.pause import Pause, advertised_status
from p2pcc.core.peers import Peer
from p2pcc.core.ranker import Ranker, RankInputs
from p2pcc.core.ranking import RankingPolicy
from p2pcc.core.reports import Reports
from p2pcc.core.same_id import Namesake, SharedId, takes_new_id
from p2pcc.core.status_document import status_document


class LocalNode:
    """This workstation; see the module docstring."""

    def __init__(
        self,
        *,
        engine: GossipEngine,
        compilers: Sequence[LocalCompiler],
        policy: RankingPolicy,
        now: float,
        on_change: Callable[[Change], None] = lambda change: None,
    ) -> None:
        """Take over a fresh `engine` (its status: our measured one at first), offer `compilers`."""
        self._compilers = tuple(compilers)
        self._measured = replace(engine.status, compilers=offers_of(self._compilers))
        self._engine = engine
        self._policy = policy
        self._on_change = on_change
        self._estimate = PowerEstimate()
        self._slot_speed = 1.0
        self._serving = False
        self._pause: Pause | None = None
        self._resumes_by_hand = 0
        self._ranking: Ranking | None = None
        self.members_version = 0  # grows with every Change.MEMBERS
        self._ranker = Ranker()  # what the last ranking worked out, per peer
        self._delivered: dict[bytes, float] = {}  # verdicts.delivered_factors
        self._disproven: dict[str, frozenset[bytes]] = {}  # proof_book.disproven
        self._shared_id: SharedId | None = None
        self._namesake_told = False  # a datagram of ours went out since it was found
        self.reports = Reports()  # what only people read (p2pcc.core.reports)
        self._publish(now)

    # --- who we are and what we say -------------------------------------------------

    @property
    def node_id(self) -> bytes:
        return self._engine.node_id

    @property
    def incarnation(self) -> int:
        return self._engine.incarnation

    @property
    def status(self) -> NodeStatus:
        """Our status as peers hear it."""
        return self._engine.status

    @property
    def serving(self) -> bool:
        """Whether distccd accepts jobs (without it we offer no slots)."""
        return self._serving

    @property
    def local_slots(self) -> int:
        """Slots of this machine in our own hosts lines (`localhost/N`)."""
        return max(1, self._measured.cpus)

    @property
    def compilers(self) -> tuple[LocalCompiler, ...]:
        return self._compilers

    def peers(self) -> tuple[Peer, ...]:
        """Every peer the table holds, in no particular order."""
        return self._engine.table.peers()

    def statistics(self, now: float) -> GossipStatistics:
        return self._engine.statistics(now)

    def snapshot(self, now: float, wall: float) -> dict[str, Any]:
        """The `status` document (docs/status-json.md) at `now`."""
        return status_document(self, now, wall)

    # --- reports from the tasks -----------------------------------------------------

    def set_measurements(self, sample: LocalMetrics, now: float) -> None:
        """Adopt a fresh metrics sample; served jobs' progress corrects our power."""
        self._estimate = self._estimate.observe_progress(sample.job_progress, now)
        self._slot_speed = sample.slot_speed
        self._measured = replace(
            self._measured,
            cpus=sample.cpus,
            load=sample.foreign_load,
            mem_available=sample.mem_available,
            slots=sample.slots,
            jobs=sample.jobs,
            power=self._power(now),
        )
        self._publish(now)

    def recalibrate(self, compiler_powers: Iterable[float], now: float) -> float:
        """Adopt the calibrated power of each offered compiler; the power now advertised."""
        self._estimate = self._estimate.recalibrated(node_power(compiler_powers))
        self._measured = replace(self._measured, power=self._power(now))
        self._publish(now)
        return self._measured.power

    def _power(self, now: float) -> float:
        """The estimate, slowed by the share of a CPU a slot gets under our CPU limit
        (calibration measures CPU time, which a quota does not slow)."""
        return limited_power(self._estimate.power(now), self._slot_speed)

    def set_serving(self, serving: bool, now: float) -> None:
        """distccd is (not) accepting jobs: while it is not, we offer no slots."""
        if serving != self._serving:
            self._serving = serving
            self._publish(now, Change.STATUS)

    def set_compilers(self, compilers: Sequence[LocalCompiler], now: float) -> None:
        """Adopt a changed compiler set; peers hear the new offers at once."""
        self._compilers = tuple(compilers)
        self._measured = replace(self._measured, compilers=offers_of(self._compilers))
        self._publish(now, Change.COMPILERS)

    def begin_leave(self, now: float) -> None:
        """Shutting down: peers stop sending new jobs while running ones finish."""
        self._measured = replace(self._measured, state=NodeState.LEAVING)
        self._publish(now)

    def set_keyring(self, keyring: Keyring) -> None:
        """A reloaded cluster key, for what we send and what we accept from now on."""
        self._engine.speaker.keyring = keyring

    def set_policy(self, policy: RankingPolicy) -> None:
        """A reloaded ranking policy: hosts lines are ranked anew."""
        self._policy = policy
        self._changed(Change.PEERS)

    # --- the pause ------------------------------------------------------------------

    @property
    def pause(self) -> Pause | None:
        return self._pause

    @property
    def resumes_by_hand(self) -> int:
        """How many pauses `resume` ended, for the automatic pause's rules."""
        return self._resumes_by_hand

    def pause_kind(self) -> PauseKind:
        return PauseKind.NONE if self._pause is None else self._pause.kind

    def pause_for(
        self,
        seconds: float | None,
        reason: str,
        uid: int,
        now: float,
        wall: float,
        *,
        hand_back: bool = False,
    ) -> None:
        """Stop taking new jobs from peers (`hand_back`: and give back those running), for
        `seconds` or until resumed; replaces any pause.  ValueError for a bad duration."""
        pause = Pause.manual(seconds, reason, uid, now, wall, hand_back=hand_back)
        self._set_pause(pause, now)

    def resume(self, now: float) -> bool:
        """A person ends the pause, whatever its kind; False when we were not paused."""
        was_paused = self._set_pause(None, now)
        if was_paused:
            self._resumes_by_hand += 1
        return was_paused

    def auto_pause(self, uid: int, now: float, *, hand_back: bool = True) -> bool:
        """Pause because the desktop is in use, unless any pause is in effect already."""
        if self._pause is not None:
            return False
        self._set_pause(Pause.automatic_for(uid, hand_back=hand_back), now)
        return True

    def auto_resume(self, now: float) -> bool:
        """End an automatic pause; a manual one always wins and stays."""
        if self.pause_kind() is not PauseKind.AUTOMATIC:
            return False
        return self._set_pause(None, now)

    def _set_pause(self, pause: Pause | None, now: float) -> bool:
        """Put `pause` in effect; whether one was in effect before."""
        was_paused = self._pause is not None
        self._pause = pause
        self._publish(now, Change.PAUSE | Change.TIMER)
        return was_paused

    # --- gossip ---------------------------------------------------------------------

    @property
    def next_send(self) -> float:
        """When the next gossip datagram is due (our state, or any other)."""
        return self._engine.next_datagram

    def datagram_to_send(self, now: float, wall: float) -> Outgoing | None:
        """The state datagram to send now, or None when nothing is due yet."""
        return self._state_sent(self._engine.poll_send(now, wall))

    def datagrams_to_send(self, now: float, wall: float) -> list[Outgoing]:
        """Every datagram due now: our state, and probes, answers, news and syncs."""
        state = self.datagram_to_send(now, wall)
        rest = self._engine.datagrams_to_send(now, wall)
        return rest if state is None else [state, *rest]

    def _state_sent(self, outgoing: Outgoing | None) -> Outgoing | None:
        if outgoing is not None and self._shared_id is not None and not self._namesake_told:
            self._namesake_told = True
            if self.wants_new_id:
                self._changed(Change.IDENTITY)
        return outgoing

    def leave_datagram(self, now: float, wall: float) -> Outgoing:
        """The goodbye datagram: peers drop us at once instead of waiting for silence."""
        return self._engine.leave(now, wall)

    def receive(self, data: bytes, sender: Endpoint, transport: Transport, now: float) -> Received:
        """Decode and merge one datagram; never raises for bad input."""
        due = self._engine.next_datagram
        received = self._engine.receive(data, sender, transport, now)
        change = table_change(received.events) | self._sooner(due)
        if received.namesake is not None:
            change |= self._heard_namesake(received.namesake, now)
        self._changed(change)
        return received

    def discovered(self, node_id: bytes, addresses: Sequence[str], port: int, now: float) -> None:
        """mDNS found a p2pcc node at `addresses` (those the address rule accepts) and
        gossip `port`: unicast to it while multicast does not."""
        self._engine.discovered(node_id, addresses, port, now)

    def set_seeds(self, seeds: Sequence[Endpoint], now: float) -> None:
        """Adopt the resolved `gossip.seeds` (at most `limits.MAX_SEEDS` are kept)."""
        due = self._engine.next_datagram
        self._engine.set_seeds(seeds, now)
        self._changed(self._sooner(due))

    def undiscovered(self, node_id: bytes) -> None:
        """mDNS says the node's service is gone."""
        self._engine.undiscovered(node_id)

    def beyond_link(self) -> Mapping[bytes, Endpoint]:
        """The gossip members never heard on our link, by node id (core/remembered.py)."""
        return self._engine.audience.beyond_link()

    def seen_orders(self) -> dict[bytes, tuple[int, int]]:
        return self._engine.table.seen_orders()  # the replay memory, kept across restarts

    def remember(self, orders: Mapping[bytes, tuple[int, int]]) -> None:
        self._engine.table.remember(orders)  # a replay memory kept across a restart

    # --- our id, shared with a cloned machine ---------------------------------------

    @property
    def shared_id(self) -> SharedId | None:
        """The last node heard using our id, if any (kept after either of us renewed)."""
        return self._shared_id

    @property
    def wants_new_id(self) -> bool:
        """Whether another node uses our id, we are the one to take a new one, and a
        datagram of ours has gone out under the shared id since it was found."""
        shared = self._shared_id
        return (
            shared is not None
            and shared.new_id_here
            and shared.node_id == self.node_id
            and self._namesake_told
        )

    def renew_identity(self, node_id: bytes, now: float) -> None:
        """Go on as `node_id`, at once gossiped, with the same incarnation and the
        replay memory kept; peers are heard anew (each within one interval)."""
        self._engine = self._engine.renamed(node_id, now)
        self._changed(Change.IDENTITY | Change.PEERS | Change.MEMBERS | Change.SEND | Change.TIMER)

    def _heard_namesake(self, namesake: Namesake, now: float) -> Change:
        """Keep the first sign of `namesake` under our current id; decide who renews."""
        known = self._shared_id
        if known and (known.node_id, known.namesake.address) == (self.node_id, namesake.address):
            return Change.NOTHING
        here = takes_new_id(self.incarnation, self.status.addresses, namesake)
        self._shared_id = SharedId(self.node_id, namesake, now, new_id_here=here)
        self._namesake_told = False
        return Change.IDENTITY

    # --- timers ---------------------------------------------------------------------

    def next_deadline(self) -> float:
        """When `handle_timer` next has work: a peer's silence or a pause running out."""
        deadline = self._engine.next_deadline()
        if self._pause is not None and self._pause.until is not None:
            deadline = min(deadline, self._pause.until)
        return deadline

    def handle_timer(self, now: float) -> None:
        """Expire a pause and apply liveness changes due by `now`."""
        if self._pause is not None and self._pause.expired(now):
            self._set_pause(None, now)
        due = self._engine.next_datagram
        self._changed(table_change(self._engine.handle_timer(now)) | self._sooner(due))

    # --- what the wrapper and people read -------------------------------------------

    def hosts(self, now: float) -> Mapping[str, HostsLine]:
        """The DISTCC_HOSTS line and -j of every local compiler at `now`, by fingerprint."""
        return self.ranking(now).hosts

    def hosts_for(self, fingerprint: str, now: float) -> HostsLine:
        """The line for any fingerprint, one of ours or not (`p2pcc hosts`)."""
        line = self.hosts(now).get(fingerprint)
        return line or self._ranker.line(fingerprint, self.peers(), self._rank_inputs())

    def ranking(self, now: float) -> Ranking:
        """Rankings as of `now`, computed once per change whoever asks."""
        self.handle_timer(now)
        if self._ranking is None:
            ids = sorted({compiler.fingerprint.id for compiler in self._compilers})
            self._ranking = self._ranker.ranking(ids, self.peers(), self._rank_inputs())
        return self._ranking

    @property
    def delivered(self) -> Mapping[bytes, float]:
        """What our jobs measured peers to deliver, where below 1 (`set_delivered`)."""
        return self._delivered

    def set_delivered(self, factors: Mapping[bytes, float]) -> None:
        """Adopt `verdicts.delivered_factors`; a changed one re-ranks."""
        if factors != self._delivered:
            self._delivered = dict(factors)
            self._changed(Change.PEERS)

    def set_disproven(self, disproven: Mapping[str, frozenset[bytes]]) -> None:
        """Adopt the peers proofs disproved per fingerprint (a change of them): re-ranks."""
        self._disproven = dict(disproven)
        self._changed(Change.PEERS)

    def _rank_inputs(self) -> RankInputs:
        ours = (self.node_id, self._delivered, self.status, self.local_slots, self._disproven)
        return RankInputs(self._policy, *ours)

    # --- internals ------------------------------------------------------------------

    def _publish(self, now: float, change: Change = Change.NOTHING) -> None:
        """Hand the engine our advertised status and announce what changed."""
        advertised = advertised_status(self._measured, self._pause, self._serving)
        if advertised != self._engine.status:
            due = self._engine.next_datagram
            self._engine.set_status(advertised, now)
            change |= Change.STATUS | self._sooner(due)
        self._changed(change)

    def _sooner(self, due: float) -> Change:
        """SEND when a datagram fell due sooner than `due`, what the sender waits for."""
        return Change.SEND if self._engine.next_datagram < due else Change.NOTHING

    def _changed(self, change: Change) -> None:
        if change & Change.RANKING:
            self._ranking = None
        if change & Change.MEMBERS:
            self.members_version += 1
        if change:
            self._on_change(change)
