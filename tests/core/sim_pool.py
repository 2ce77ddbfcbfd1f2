"""An in-memory pool of gossip engines on simulated links, on a virtual clock.

Each node is a real `GossipEngine`; the network is a heap of deliveries.  A node sits on
one *link* (a subnet): its multicast reaches every other node on that link, its unicast
reaches any node whose address it names, unless the two links are cut apart.  Every
delivery may be lost (`loss`) and takes `delay` seconds.  The clock only moves from one
event to the next, so a thousand nodes and a minute of gossip run in a few minutes of
CPU, and every figure is exact and repeatable for a seed.

Used by the unit tests of the pool protocol (tests/core/test_pool_gossip.py) and by
benchmarks/gossip_scale.py, which measures convergence, traffic and CPU per node.
"""

from __future__ import annotations

import heapq
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from p2pcc.core.auth import Keyring
from p2pcc.core.gossip import GossipEngine
from p2pcc.core.gossip_types import Outgoing, Transport
from p2pcc.core.model import CompilerOffer, EntryKind, NewsEntry, NodeState, NodeStatus
from p2pcc.core.peers import PeerTimings

#: What a desk with GCC and Clang offers (this machine's `p2pcc fingerprint`): C and C++
#: of each, so that simulated datagrams are as large as real ones.
OFFERS = (
    CompilerOffer("be03ec3c49bc7685", "x86_64-linux-gnu--12", "x86_64-linux-gnu-gcc-12"),
    CompilerOffer("8a15f2ebd3121fcc", "x86_64-linux-gnu--12", "x86_64-linux-gnu-g++-12"),
    CompilerOffer("dc99e913fac82201", "x86_64-pc-linux-gnu--14", "clang-14"),
    CompilerOffer("7982fcd0344b6495", "x86_64-pc-linux-gnu--14", "clang++-14"),
)
TIMINGS = PeerTimings(suspect_after=5.0, dead_after=15.0, forget_after=600.0)
PORT = 3634
KEY = Keyring([bytes(range(32))])


def address_of(index: int, link: int) -> str:
    return f"10.{link}.{index // 250}.{index % 250 + 1}"


def status_of(index: int, link: int) -> NodeStatus:
    return NodeStatus(
        name=f"ws{index}",
        addresses=(address_of(index, link),),
        distccd_port=3632,
        cpus=8,
        load=0.5,
        mem_available=16 << 30,
        slots=6,
        jobs=0,
        power=1.0,
        compilers=OFFERS,
    )


@dataclass
class SimNode:
    """One workstation: its engine, its link, whether it runs, and what it cost."""

    index: int
    link: int
    engine: GossipEngine
    running: bool = True
    cpu: float = 0.0  # seconds of this process's time spent in the engine
    packets_in: int = 0
    packets_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0

    @property
    def address(self) -> str:
        return address_of(self.index, self.link)


#: (time, sequence, node index, datagram or None for a wake-up, sender, transport)
_Event = tuple[float, int, int, bytes | None, tuple[str, int], Transport]
_WAKE = ("", 0)


class SimPool:
    """Nodes on links, a delivery heap, and the knobs: loss, delay, cuts."""

    def __init__(self, *, loss: float = 0.0, delay: float = 0.001, seed: int = 1) -> None:
        self.now = 0.0
        self.loss = loss
        self.delay = delay
        self.rng = random.Random(seed)
        self.nodes: list[SimNode] = []
        self.cut: set[frozenset[int]] = set()  # pairs of links that cannot reach each other
        self._by_address: dict[str, int] = {}
        self._heap: list[_Event] = []
        self._seq = 0
        self._wake: dict[int, float] = {}

    # --- building -------------------------------------------------------------------

    def add(self, link: int, *, seeds: Iterable[int] = (), start: float | None = None) -> SimNode:
        """A new node on `link`, knowing `seeds` (node indexes), started at `start`."""
        index = len(self.nodes)
        at = self.now if start is None else start
        engine = GossipEngine(
            node_id=self.rng.randbytes(16),
            incarnation=1,
            keyring=KEY,
            status=status_of(index, link),
            interval=2.0,
            timings=TIMINGS,
            now=at,
            rng=random.Random(self.rng.random()),
            secret=self.rng.randbytes(32),
        )
        node = SimNode(index, link, engine)
        self.nodes.append(node)
        self._by_address[node.address] = index
        seed_endpoints = [(self.nodes[s].address, PORT) for s in seeds]
        if seed_endpoints:
            engine.set_seeds(seed_endpoints, at)
        self._schedule(index, at)
        return node

    def converge(self, *, phase: float | None = None) -> None:
        """Give every node every other's state, as if the pool had run a while; each
        node's next state datagram falls at a random point of its interval."""
        entries = [self._entry(node) for node in self.nodes]
        for node in self.nodes:
            others = (entry for entry in entries if entry.node_id != node.engine.node_id)
            node.engine.adopt(others, "converge", self.now)
            # Its first datagram, said a random part of an interval ago: the pool's
            # datagrams are spread over the interval, as a real pool's drift apart.
            spread = node.engine.effective_interval() if phase is None else phase
            said = self.now - self.rng.random() * spread
            node.engine.poll_send(said, said)
            self._schedule(node.index, self.now)

    def _entry(self, node: SimNode) -> NewsEntry:
        engine = node.engine
        return NewsEntry(EntryKind.STATE, engine.node_id, 1, 1, 1, engine.status)

    # --- driving --------------------------------------------------------------------

    def run_until(
        self, end: float, probe: Callable[[], None] | None = None, every: float = 0.05
    ) -> None:
        """Deliver and wake until `end`; `probe` is called every `every` seconds."""
        next_probe = self.now
        while self._heap and self._heap[0][0] <= end:
            at, _, index, data, sender, transport = heapq.heappop(self._heap)
            if probe is not None:
                while next_probe <= at:
                    self.now = next_probe
                    probe()
                    next_probe += every
            self.now = at
            node = self.nodes[index]
            if not node.running:
                continue
            if data is None:
                if self._wake.get(index) == at:
                    del self._wake[index]
                    self._run(node)
            else:
                self._deliver(node, data, sender, transport)
        self.now = end

    def _run(self, node: SimNode) -> None:
        start = time.process_time()
        engine = node.engine
        engine.handle_timer(self.now)
        outgoing = engine.datagrams_to_send(self.now, 1.8e9 + self.now)
        node.cpu += time.process_time() - start
        for datagram in outgoing:
            self._send(node, datagram)
        self._schedule(node.index, min(engine.next_datagram, engine.next_deadline()))

    def _deliver(
        self, node: SimNode, data: bytes, sender: tuple[str, int], transport: Transport
    ) -> None:
        node.packets_in += 1
        node.bytes_in += len(data)
        start = time.process_time()
        node.engine.receive(data, sender, transport, self.now)
        node.cpu += time.process_time() - start
        self._schedule(node.index, min(node.engine.next_datagram, node.engine.next_deadline()))

    def _send(self, node: SimNode, datagram: Outgoing) -> None:
        sender = (node.address, PORT)
        copies = len(datagram.unicast) + datagram.multicast
        node.packets_out += copies
        node.bytes_out += len(datagram.data) * copies
        if datagram.multicast:
            for other in self.nodes:
                if other.link == node.link and other is not node:
                    self._post(other.index, datagram.data, sender, Transport.MULTICAST)
        for address, _ in datagram.unicast:
            target = self._by_address.get(address.partition("%")[0])
            if target is None or frozenset({node.link, self.nodes[target].link}) in self.cut:
                continue
            self._post(target, datagram.data, sender, Transport.UNICAST)

    def _post(
        self, target: int, data: bytes, sender: tuple[str, int], transport: Transport
    ) -> None:
        if self.loss and self.rng.random() < self.loss:
            return
        self._seq += 1
        event: _Event = (self.now + self.delay, self._seq, target, data, sender, transport)
        heapq.heappush(self._heap, event)

    def _schedule(self, index: int, at: float) -> None:
        at = max(at, self.now)
        if at == float("inf") or self._wake.get(index, float("inf")) <= at:
            return
        self._wake[index] = at
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, index, None, _WAKE, Transport.UNICAST))

    # --- events ---------------------------------------------------------------------

    def pause(self, node: SimNode) -> None:
        node.engine.set_status(
            replace(node.engine.status, state=NodeState.PAUSED, slots=0), self.now
        )
        self._schedule(node.index, self.now)

    def leave(self, node: SimNode) -> None:
        self._send(node, node.engine.leave(self.now, 1.8e9 + self.now))
        node.running = False

    def crash(self, node: SimNode) -> None:
        node.running = False

    # --- what every table says ------------------------------------------------------

    def everyone_has(self, subject: SimNode, test: Callable[[object], bool]) -> bool:
        """Whether `test` holds for the peer record of `subject` in every running table."""
        for node in self.nodes:
            if node is subject or not node.running:
                continue
            if not test(node.engine.table.get(subject.engine.node_id)):
                return False
        return True
