"""The simulated pool of benchmarks/daemon_footprint.py: many members, one process.

Runs in the sender workstation, whose interface holds one address per member.  One UDP
socket bound to the gossip port on every address receives for all of them (IP_PKTINFO
says which address a datagram was sent to) and sends from each member's own address
(IP_PKTINFO's source on sendmsg), so every datagram comes from the address its member
announces.  Each member has a fixed status (GCC and Clang, C and C++: the simulated
pool's `OFFERS`), its own node id, incarnation 1 and a sequence; it sends its STATE
(deaf: the daemon is not on its link; short, 1.2, once the daemon has had a whole one,
which it asks for again when it lacks it) every max(2, (members + 1) / 20) s, the
protocol's state rate bound, at a phase of its own; its first one falls at random
within `--warmup` s (`--vary-load`: each STATE with a new random load, as real members'
loads move).  Every PROBE to a member is
answered by an ACK with the same nonce, from that member's address; SYNCs and NEWS
rounds are read and counted, not answered.

Background news: `--news-rate` times a second a random member pauses (or resumes): it
sends its new STATE to the daemon at once, as a member whose status changes materially
does, and `--news-copies` NEWS datagrams carrying that STATE entry reach the daemon from
random other members within the next second, as the pool's infection-style spread
delivers it (each member hears a piece of news about transmits(n) times).  As in a 1.1
pool whose members all live beyond each other's links, a share of those copies rides on
a member's STATE copy instead of a NEWS datagram of its own (core/state_turns.py): the
turns a member sends per news round over the round's fanout, two of three at 1,000.

Writes counters (datagrams sent and received by kind) as JSON to `--report` every
second and on SIGTERM.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import os
import random
import select
import signal
import socket
import struct
import sys
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from p2pcc.core import limits, wire
from p2pcc.core.auth import Keyring, parse_key_file
from p2pcc.core.errors import WireFormatError
from p2pcc.core.gossip import STATE_RATE
from p2pcc.core.model import (
    EntryKind,
    Message,
    MessageKind,
    NewsEntry,
    NodeState,
    NodeStatus,
)
from p2pcc.core.pool_exchange import NEWS_BUDGET, NEWS_FANOUT
from p2pcc.core.state_turns import TURN_TICK
from p2pcc.core.wire_status import compilers_digest
from tests.core.sim_pool import OFFERS

IP_PKTINFO = 8  # <linux/in.h>; the socket module does not name it
PORT = 3634
NEWS_SPREAD = 1.0  # seconds over which a piece of news reaches the daemon


def member_address(base: str, index: int) -> str:
    """The address of member `index` in the /16 `base` (`10.214`)."""
    return f"{base}.{index // 250}.{index % 250 + 1}"


@dataclass
class Member:
    node_id: bytes
    address: str
    status: NodeStatus
    sequence: int = 0
    told: bool = False  # the daemon has had its whole state: later ones are short

    def entry(self) -> NewsEntry:
        minor = wire.MINOR_VERSION
        return NewsEntry(EntryKind.STATE, self.node_id, 1, self.sequence, minor, self.status)


def make_members(count: int, base: str, rng: random.Random) -> list[Member]:
    members = []
    for index in range(count):
        address = member_address(base, index)
        status = NodeStatus(
            name=f"sim{index}",
            addresses=(address,),
            distccd_port=3632,
            cpus=8,
            load=0.5,
            mem_available=16 << 30,
            slots=6,
            jobs=0,
            power=1.0,
            compilers=OFFERS,
        )
        members.append(Member(rng.randbytes(16), address, status))
    return members


class Pool:
    """The members, their schedule, and the socket they share."""

    def __init__(self, args: argparse.Namespace, keyring: Keyring) -> None:
        self.rng = random.Random(args.seed)
        self.keyring = keyring
        self.target = (args.target, PORT)
        self.members = make_members(args.members, args.base, self.rng)
        self.by_address = {member.address: member for member in self.members}
        self.interval = max(2.0, (args.members + 1) / STATE_RATE)
        self.news_rate = args.news_rate
        self.news_copies = args.news_copies
        per_tick = math.ceil(args.members * TURN_TICK / self.interval)
        self.riding = min(1.0, per_tick / NEWS_FANOUT)  # news copies that ride on a STATE
        self.riders: list[NewsEntry] = []
        self.vary_load = args.vary_load
        self.counts: Counter[str] = Counter()
        self.heap: list[tuple[float, int, str, int, int]] = []  # (at, tie, what, who, about)
        self._tie = 0
        start = time.monotonic()
        for index in range(len(self.members)):
            self.schedule(start + self.rng.random() * args.warmup, "state", index)
        if self.news_rate > 0:
            self.schedule(start + args.warmup + 1.0 / self.news_rate, "event", 0)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        self.sock.bind(("0.0.0.0", PORT))  # noqa: S104 - the sender workstation's own addresses

    def schedule(self, at: float, what: str, who: int, about: int = 0) -> None:
        self._tie += 1
        heapq.heappush(self.heap, (at, self._tie, what, who, about))

    def send(self, member: Member, message: Message, kind: str) -> None:
        data = wire.encode(message, self.keyring)
        pktinfo = struct.pack("@i4s4s", 0, socket.inet_aton(member.address), bytes(4))
        try:
            self.sock.sendmsg([data], [(socket.IPPROTO_IP, IP_PKTINFO, pktinfo)], 0, self.target)
        except OSError:
            self.counts["send-error"] += 1
            return
        self.counts[f"sent-{kind}"] += 1
        self.counts["bytes-sent"] += len(data)

    def send_state(self, member: Member, *, whole: bool = False) -> None:
        """The member's deaf STATE, short (1.2) once the daemon has had a whole one."""
        member.sequence += 1
        if self.vary_load:
            member.status = replace(member.status, load=round(self.rng.uniform(0, 4), 2))
        riders = self.take_riders(NEWS_BUDGET - wire.entry_size(member.entry()))
        body, digest = member.status, b""
        if member.told and not whole:
            body, digest = replace(body, compilers=()), compilers_digest(body.compilers)
        message = Message(
            member.node_id, 1, member.sequence, time.time(), MessageKind.STATE, body,
            news=riders, deaf=True, compilers_digest=digest,
        )  # fmt: skip
        self.send(member, message, "state")
        member.told = True
        self.counts["news-ridden"] += len(riders)

    def take_riders(self, room: int) -> tuple[NewsEntry, ...]:
        """News copies for one STATE, as many as fit in `room` bytes."""
        taken: list[NewsEntry] = []
        while self.riders and len(taken) < limits.MAX_NEWS:
            size = wire.entry_size(self.riders[0])
            if size > room:
                break
            room -= size
            taken.append(self.riders.pop(0))
        return tuple(taken)

    def run_due(self, now: float) -> None:
        while self.heap and self.heap[0][0] <= now:
            at, _, what, who, about = heapq.heappop(self.heap)
            member = self.members[who]
            if what == "state":
                self.send_state(member)
                # The first states all fall within the warm-up; from the second on each
                # member keeps a phase of its own, as a real pool's drift apart.
                first = member.sequence == 1
                gap = self.rng.uniform(0.0, self.interval) if first else self.interval
                self.schedule(at + gap, "state", who)
            elif what == "event":
                self.news_event(now)
                self.schedule(at + 1.0 / self.news_rate, "event", 0)
            elif self.rng.random() < self.riding:
                self.riders.append(self.members[about].entry())
            else:
                subject = self.members[about]
                message = Message(
                    member.node_id, 1, member.sequence, time.time(), MessageKind.NEWS,
                    news=(subject.entry(),),
                )  # fmt: skip
                self.send(member, message, "news")

    def news_event(self, now: float) -> None:
        """A random member pauses or resumes: its own STATE now, news copies to follow."""
        about = self.rng.randrange(len(self.members))
        member = self.members[about]
        paused = member.status.state is NodeState.PAUSED
        member.status = replace(
            member.status,
            state=NodeState.ACTIVE if paused else NodeState.PAUSED,
            pause_reason="" if paused else "meeting",
            slots=6 if paused else 0,
        )
        self.send_state(member)
        for _ in range(self.news_copies):
            relay = self.rng.randrange(len(self.members))
            self.schedule(now + self.rng.random() * NEWS_SPREAD, "news", relay, about)

    def receive(self) -> None:
        """Read every datagram waiting; answer each PROBE from the address it went to."""
        while True:
            try:
                data, ancdata, _, _ = self.sock.recvmsg(2048, 256, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            self.counts["received"] += 1
            self.counts["bytes-received"] += len(data)
            member = self.by_address.get(_destination(ancdata))
            try:
                message = wire.decode(data, self.keyring)
            except WireFormatError:
                self.counts["received-bad"] += 1
                continue
            kind = message.kind.name.lower()
            self.counts[f"received-{kind}"] += 1
            self.counts[f"bytes-received-{kind}"] += len(data)
            self.counts["received-short"] += bool(message.compilers_digest)
            self.counts["received-entries"] += len(message.news)
            if member is not None and message.kind is MessageKind.PROBE:
                ack = Message(
                    member.node_id, 1, member.sequence, time.time(), MessageKind.ACK,
                    nonce=message.nonce,
                )  # fmt: skip
                self.send(member, ack, "ack")
            elif member is not None and message.kind is MessageKind.STATE and message.resend:
                self.counts["answered-again"] += 1
                self.send_state(member, whole=True)


def _destination(ancdata: list[tuple[int, int, bytes]]) -> str:
    for level, kind, data in ancdata:
        if level == socket.IPPROTO_IP and kind == IP_PKTINFO:
            return socket.inet_ntoa(data[8:12])  # in_pktinfo.ipi_addr
    return ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--key", type=Path, required=True)
    parser.add_argument("--target", required=True, help="the daemon's address")
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--base", default="10.214")
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--news-rate", type=float, default=1.0)
    parser.add_argument("--news-copies", type=int, default=12)
    parser.add_argument("--vary-load", action="store_true", help="a new load in every STATE")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--report", type=Path, required=True)
    args = parser.parse_args()
    pool = Pool(args, parse_key_file(args.key.read_text(), str(args.key)))
    running = [True]
    signal.signal(signal.SIGTERM, lambda *_: running.__setitem__(0, False))
    next_report = 0.0
    while running[0]:
        now = time.monotonic()
        pool.run_due(now)
        if now >= next_report:
            _report(args.report, pool.counts)
            next_report = now + 1.0
        wait = min(pool.heap[0][0] if pool.heap else now + 1, next_report) - now
        try:
            ready = select_readable(pool.sock, max(0.0, wait))
        except InterruptedError:
            continue
        if ready:
            pool.receive()
    _report(args.report, pool.counts)


def select_readable(sock: socket.socket, timeout: float) -> bool:
    readable, _, _ = select.select([sock], [], [], timeout)
    return bool(readable)


def _report(path: Path, counts: Counter[str]) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(dict(counts)))
    os.replace(temporary, path)


if __name__ == "__main__":
    main()
