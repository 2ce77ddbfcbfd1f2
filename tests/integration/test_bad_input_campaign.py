"""The bad-input campaign: a hostile workstation against a keyed pool of three real daemons.

A pool of three `p2pcc daemon`s with a shared key runs on namespace workstations, and a
fourth workstation, mallory, attacks it with `hostile.py`:

* the gossip port: random bytes, truncated genuine datagrams, datagrams over the wire
  limit up to the largest UDP payload, valid-looking messages with a forged MAC or none,
  replays of genuine datagrams it captured from the group, genuine datagrams relayed
  by unicast the moment they arrive, and a flood of thousands of distinct forged node
  ids from many source addresses (and the same flood, well formed, against an unkeyed
  pool, where it may fill the table but must not push out a live peer);
* zeroconf: `_p2pcc._tcp` and `_distcc._tcp` records with garbage, oversized or missing
  TXT values and bad ports, registered with python-zeroconf;
* the wrapper: a real `gcc -c` through installed links against a corrupt state file and
  a corrupt fingerprint cache;
* the configuration: `p2pcc daemon` and `p2pcc config --check` on files with bad values.

Afterwards every daemon still runs, its resident memory grew by little, its peer table
holds the same peers with the same values, `status --json` counts every dropped
datagram by reason (the decoder itself says which reason each payload must get), and
its log gained at most one line per sender and reason.  Figures are printed with the
prefix `BAD-INPUT-FIGURE: ` (run with -s); docs/security.md records them.

The campaign goes on in four more files, one per front: `test_campaign_addresses.py`
(forged mDNS and gossip addresses of every bad kind), `test_campaign_files.py` (the
FIFO swap of distccd's log, runtime directories others control), `test_campaign_local_users.py`
(a second local user's state file, native record, hosts line, pause tricks and flood,
held connections) and `test_campaign_identity.py` (empty and damaged node ids, two
daemons with one id).  Unit-level
proofs live next to the code: tests/core/test_wire.py (every truncated prefix, every
cap), test_peers.py (replay and table-full rules), tests/daemon/mdns/test_service.py,
tests/wrapper/ and tests/config/.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from p2pcc import statefile
from p2pcc.compilers import cache
from p2pcc.config.key_file import no_key_remedy
from p2pcc.core import limits
from p2pcc.core.auth import Keyring, parse_key_file
from p2pcc.core.errors import WireFormatError
from p2pcc.core.model import CompilerOffer, Message, MessageKind, NodeStatus
from p2pcc.core.wire import MAGIC, decode, encode
from p2pcc.daemon.gossip import MEMBERSHIP_LINES_PER_MINUTE
from tests.integration.hostile import MAX_UDP_PAYLOAD, read_capture, write_payloads
from tests.integration.netbed import TestBed, Workstation
from tests.integration.pool import GOSSIP_PORT, INTERVAL, Daemon, start_pool, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.netns]

NAMES = ("alpha", "beta", "gamma")
GROUP = "239.192.74.70"
HOSTILE = Path(__file__).with_name("hostile.py")
FIGURE = "BAD-INPUT-FIGURE: "

#: Peer fields nothing unauthenticated may change.  Load, jobs, slots, power and sequence
#: move anyway (slots and power follow the machine's load and measured speed), so for
#: slots and power the table records only that they stay below what forgeries claim.
STABLE_FIELDS = (
    "node_id",
    "addresses",
    "liveness",
    "incarnation",
    "state",
    "pause_reason",
    "pause_until",
    "cpus",
    "compilers",
)

#: Drop reasons the wire decoder gives; genuine traffic in a healthy pool gives none.
WIRE_REASONS = ("bad-magic", "unsupported-version", "truncated", "oversized", "bad-mac")

#: Generous bounds: a loaded two-core CI machine must not make them flaky.
RSS_GROWTH_LIMIT_KIB = 32 * 1024
FLOOD_IDS = 3000
FLOOD_SOURCES = 16
FLOOD_RATE = 1500.0  # datagrams per second, all to the group
UNKEYED_FLOOD_IDS = 2000


@dataclass
class Pool:
    """Three keyed daemons and mallory, the hostile workstation, on one bed."""

    daemons: list[Daemon]
    mallory: Workstation
    keyring: Keyring
    home: Path

    def daemon(self, name: str) -> Daemon:
        return next(d for d in self.daemons if d.ws.name == name)


@pytest.fixture
def pool(bed: TestBed, shared_tmp: Path, key_file: Path) -> Iterator[Pool]:
    yield from open_pool(bed, shared_tmp, key_file)


@pytest.fixture
def unkeyed_pool(bed: TestBed, shared_tmp: Path) -> Iterator[Pool]:
    yield from open_pool(bed, shared_tmp, None)


def open_pool(bed: TestBed, home: Path, key_file: Path | None) -> Iterator[Pool]:
    """Start the three daemons, add mallory, and wait until every daemon sees the others."""
    for daemons in start_pool(bed, home, NAMES, key_file, insecure=key_file is None):
        mallory = bed.add_workstation("mallory")
        keyring = Keyring() if key_file is None else parse_key_file(key_file.read_text(), "key")
        yield Pool(daemons, mallory, keyring, home)


# --- what a daemon looks like from outside -------------------------------------------------


@dataclass(frozen=True)
class Observation:
    """One daemon at one moment: its table's stable part, its counters, its costs."""

    table: dict[str, tuple[tuple[str, str], ...]]  # peer name -> (field, JSON value)
    drops: Counter[str]
    unicast_targets: int
    rss_kib: int
    log_lines: int
    kernel_drops: int  # UDP datagrams the kernel dropped for a full receive buffer


def observe(daemon: Daemon) -> Observation:
    status = daemon.status()
    assert status is not None, f"{daemon.ws.name} does not answer"
    assert daemon.process is not None
    assert daemon.process.poll() is None, f"{daemon.ws.name} exited"
    table = {
        peer["name"]: (
            *((field, json.dumps(peer[field])) for field in STABLE_FIELDS),
            ("power below 1000", json.dumps(peer["power"] < 1000)),
            ("slots below 1024", json.dumps(peer["slots"] < 1024)),
        )
        for peer in status["peers"]
    }
    return Observation(
        table=table,
        drops=Counter(status["counters"]["drops"]),
        unicast_targets=int(status["counters"]["unicast_targets"]),
        rss_kib=vm_rss_kib(daemon.process.pid),
        log_lines=len(daemon.log_text().splitlines()),
        kernel_drops=udp_receive_buffer_errors(daemon.ws),
    )


def table_changes(old: Observation, new: Observation) -> list[str]:
    """What differs between two tables, field by field, for a readable failure."""
    changes = [f"{peer} came" for peer in set(new.table) - set(old.table)]
    changes += [f"{peer} went" for peer in set(old.table) - set(new.table)]
    for peer in set(old.table) & set(new.table):
        before, after = dict(old.table[peer]), dict(new.table[peer])
        changes += [
            f"{peer}.{key}: {before[key]} -> {after[key]}"
            for key in before
            if before[key] != after[key]
        ]
    return changes


def vm_rss_kib(pid: int) -> int:
    """Resident memory of a process, from /proc (nsenter execs: the pid is the daemon's)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def udp_receive_buffer_errors(ws: Workstation) -> int:
    """The workstation's UDP RcvbufErrors: /proc/net/snmp is per network namespace."""
    lines = [line.split() for line in ws.run(["cat", "/proc/net/snmp"]).stdout.splitlines()]
    header, values = [fields for fields in lines if fields[0] == "Udp:"][:2]
    return int(values[header.index("RcvbufErrors")])


def settle(daemons: list[Daemon]) -> None:
    """Wait until no daemon's drop counters move for a second (bounded)."""
    deadline = time.monotonic() + 15
    previous = None
    while time.monotonic() < deadline:
        current = [observe(d).drops for d in daemons]
        if current == previous:
            return
        previous = current
        time.sleep(1.0)


# --- mallory's tools -------------------------------------------------------------------------


def capture(pool: Pool, seconds: float, relay_to: str | None = None) -> list[tuple[str, bytes]]:
    """Genuine datagrams mallory hears on the group for `seconds` (relayed if asked)."""
    out = pool.home / f"capture-{time.monotonic_ns()}.jsonl"
    args = [sys.executable, str(HOSTILE), "capture", pool.mallory.address, GROUP]
    args += [str(GOSSIP_PORT), str(seconds), "10000", str(out)]
    if relay_to is not None:
        args += ["--relay", relay_to]
    done = pool.mallory.run(args, timeout=seconds + 20)
    assert done.stdout.startswith("ready"), done
    return read_capture(out)


def relay_attack(pool: Pool, victim: Daemon, seconds: float) -> int:
    """Relay genuine datagrams to `victim` by unicast for `seconds`, watching whom it then
    unicasts to; returns the most unicast targets seen (0 in a pool that hears multicast).
    """
    out = pool.home / "relayed.jsonl"
    args = [sys.executable, str(HOSTILE), "capture", pool.mallory.address, GROUP]
    args += [str(GOSSIP_PORT), str(seconds), "10000", str(out), "--relay", victim.ws.address]
    relay = pool.mallory.start(args, stdout=subprocess.DEVNULL)
    most = 0
    while relay.poll() is None:
        most = max(most, observe(victim).unicast_targets)
        time.sleep(0.1)
    assert relay.returncode == 0
    assert len(read_capture(out)) >= seconds / INTERVAL  # it did relay
    return most


def send(
    pool: Pool, payloads: list[bytes], targets: list[str], rate: float, sources: list[str]
) -> dict[str, Any]:
    path = pool.home / f"payloads-{time.monotonic_ns()}.bin"
    write_payloads(path, payloads)
    args = [sys.executable, str(HOSTILE), "send", pool.mallory.address, str(GOSSIP_PORT)]
    args += [str(path), str(rate), *targets, "--sources", ",".join(sources)]
    done = pool.mallory.run(args, timeout=90)
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    assert result["sent"] == len(payloads) * len(targets)
    return result


def wire_reason(data: bytes, keyring: Keyring) -> str | None:
    """The drop reason the decoder gives `data` (as the daemon reads it), None if valid."""
    try:
        decode(data[: limits.MAX_DATAGRAM + 1], keyring)  # all the daemon reads of it
    except WireFormatError as error:
        return error.reason
    return None


def forged_status(name: str, address: str) -> NodeStatus:
    """A status that would attract every job: many slots, great power, paused by no one."""
    return NodeStatus(name, (address,), 3632, 4096, 0.0, 1 << 40, 1024, 0, 1e6)


def bag_of_bad_datagrams(
    captured: list[tuple[str, bytes]], victim_ids: list[bytes], mallory: str, rng: random.Random
) -> list[bytes]:
    """Every kind of bad datagram but the flood, a few of each."""
    genuine = [data for _, data in captured]
    # Noise that never starts like our magic.
    payloads = [
        bytes([rng.randrange(ord("P") + 1, 256)]) + rng.randbytes(rng.randrange(0, 1400))
        for _ in range(20)
    ]
    for data in genuine[:3]:  # truncated genuine datagrams, short and long prefixes
        payloads += [data[:size] for size in range(0, 8)]
        payloads += [data[:size] for size in sorted(rng.sample(range(8, len(data)), 6))]
    for size in (1401, 1500, 9000, 32768, MAX_UDP_PAYLOAD):  # oversized, to 64 KiB
        payloads.append(MAGIC + bytes([1, 0, 1, 0]) + rng.randbytes(size - 8))
    for major in (0, 2, 255):  # a protocol version nobody speaks
        payloads.append(MAGIC + bytes([major, 0, 1, 0]) + rng.randbytes(40))
    for data in genuine[:10]:  # genuine content, forged tag
        payloads.append(data[:-1] + bytes([data[-1] ^ 0x5A]))
    wrong_key, no_key = Keyring([b"mallory-guessed-this-key-0123456"]), Keyring()
    for node_id in victim_ids:  # a peer's id at the highest order: would lock it out
        for keyring in (wrong_key, no_key):
            message = Message(
                node_id,
                2**64 - 1,
                2**64 - 1,
                0.0,
                MessageKind.STATE,
                forged_status("greedy", mallory),
            )
            payloads.append(encode(message, keyring))
            leave = Message(node_id, 2**64 - 1, 2**64 - 1, 0.0, MessageKind.LEAVE, None)
            payloads.append(encode(leave, keyring))
    payloads += genuine  # replays: every captured genuine datagram, now old
    return payloads


def flood_of_node_ids(count: int, mallory: str, rng: random.Random) -> list[bytes]:
    """`count` STATE messages from distinct forged node ids, with a forged MAC or none."""
    keyrings = (Keyring([b"mallory-guessed-this-key-0123456"]), Keyring())
    return [
        encode(
            Message(
                rng.randbytes(16),
                1,
                1,
                0.0,
                MessageKind.STATE,
                forged_status(f"ghost{index}", mallory),
            ),
            keyrings[index % 2],
        )
        for index in range(count)
    ]


def expected_drops(payloads: list[bytes], copies: int, keyring: Keyring) -> Counter[str]:
    """Wire-level drops a daemon must count when each payload reaches it `copies` times."""
    reasons = Counter(wire_reason(data, keyring) for data in payloads)
    del reasons[None]
    return Counter({str(reason): count * copies for reason, count in reasons.items()})


def drop_log_lines(daemon: Daemon) -> list[tuple[str, str]]:
    """(sender, reason) of every "dropped datagram" line in the daemon's log."""
    found = []
    for line in daemon.log_text().splitlines():
        if "dropped datagram from " in line:
            sender, _, rest = line.split("dropped datagram from ", 1)[1].partition(": ")
            found.append((sender, rest.split(" ", 1)[0]))
    return found


# --- 1 and 3: the gossip port ----------------------------------------------------------------


def test_gossip_port_under_attack(pool: Pool) -> None:
    rng = random.Random(6)
    mallory = pool.mallory
    sources = [mallory.address]
    for index in range(1, FLOOD_SOURCES):
        address = f"{mallory.address.rsplit('.', 1)[0]}.{100 + index}"
        mallory.run(["ip", "addr", "add", f"{address}/24", "dev", "eth0"])
        sources.append(address)

    captured = capture(pool, seconds=3.0)
    senders = Counter(sender for sender, _ in captured)
    print(f"\n{FIGURE}captured {len(captured)} genuine datagrams in 3 s: {dict(senders)}")
    assert set(senders) == {d.ws.address for d in pool.daemons}
    time.sleep(2 * INTERVAL)  # every captured datagram is now older than its sender's latest
    before = {d.ws.name: observe(d) for d in pool.daemons}
    started = time.monotonic()

    # The bag: to the group and to each daemon's own address, so each gets two copies.
    ids = [bytes.fromhex(pool.daemons[i].status()["node"]["node_id"]) for i in range(3)]  # type: ignore[index]
    bag = bag_of_bad_datagrams(captured, ids, mallory.address, rng)
    targets = [GROUP, *(d.ws.address for d in pool.daemons)]
    sent = send(pool, bag, targets, rate=400.0, sources=[mallory.address])
    print(
        f"{FIGURE}bag of {len(bag)} bad datagrams x {len(targets)} targets in {sent['seconds']} s"
    )

    # The flood: distinct forged node ids, to the group, from many source addresses.
    flood = flood_of_node_ids(FLOOD_IDS, mallory.address, rng)
    sent = send(pool, flood, [GROUP], rate=FLOOD_RATE, sources=sources)
    flood_rate = sent["sent"] / max(sent["seconds"], 1e-9)
    print(
        f"{FIGURE}flood of {FLOOD_IDS} node ids from {len(sources)} addresses "
        f"at {flood_rate:.0f} datagrams/s"
    )

    # Genuine datagrams bounced to alpha by unicast the moment they arrive.
    redirected = relay_attack(pool, pool.daemons[0], seconds=4.0)
    print(f"{FIGURE}relay attack: alpha unicast to at most {redirected} targets meanwhile")
    assert redirected == 0, "a relayed genuine datagram made alpha unicast to mallory"
    settle(pool.daemons)
    print(f"{FIGURE}campaign took {time.monotonic() - started:.1f} s")

    wire_expected = expected_drops(bag, 2, pool.keyring) + expected_drops(flood, 1, pool.keyring)
    for daemon in pool.daemons:
        name = daemon.ws.name
        old, new = before[name], observe(daemon)
        # Still running, answering, and the table is exactly what it was.
        assert new.table == old.table, f"{name}'s table changed: {table_changes(old, new)}"
        assert set(new.table) == set(NAMES) - {name}
        # Nobody is told anything by unicast: the pool hears itself by multicast.
        assert new.unicast_targets == 0, f"{name} unicasts to {new.unicast_targets} targets"
        drops = new.drops - old.drops
        lost = new.kernel_drops - old.kernel_drops
        print(f"{FIGURE}{name}: drops {dict(sorted(drops.items()))}, kernel dropped {lost}")
        for reason in WIRE_REASONS:
            wanted = wire_expected[reason]
            assert wanted - lost <= drops[reason] <= wanted, (reason, drops, wanted, lost)
        replays = sum(2 for sender, _ in captured if sender != daemon.ws.address)
        assert drops["replay"] >= replays - lost, (drops, replays)
        # Memory and log: bounded whatever the flood.
        growth = new.rss_kib - old.rss_kib
        print(
            f"{FIGURE}{name}: VmRSS {old.rss_kib} KiB before, {new.rss_kib} KiB after "
            f"(+{growth} KiB); log +{new.log_lines - old.log_lines} lines"
        )
        assert growth < RSS_GROWTH_LIMIT_KIB
        logged = drop_log_lines(daemon)
        assert len(logged) == len(set(logged)), "a (sender, reason) pair was logged twice"
        # One line per source for the flood's one reason, one per reason for the bag's
        # source (which is also a flood source), and a few unrelated lines at most.
        assert new.log_lines - old.log_lines <= len(sources) + len(WIRE_REASONS) + 1 + 5


def test_a_restarted_daemon_still_refuses_replays_of_a_departed_node(pool: Pool) -> None:
    """The replay memory survives a restart (p2pcc/daemon/stores/seen.py): gamma leaves
    for good, alpha restarts, and mallory replays everything gamma said while she
    listened.  Alpha refuses every one as a replay and gamma stays gone; without the
    kept memory the newest of them would have brought gamma back (docs/security.md)."""
    alpha, gamma = pool.daemon("alpha"), pool.daemon("gamma")
    captured = capture(pool, seconds=3.0)
    gammas = [data for sender, data in captured if sender == gamma.ws.address]
    assert len(gammas) >= 3 / INTERVAL - 1, f"only {len(gammas)} of gamma's datagrams heard"
    assert gamma.process is not None
    gamma.process.send_signal(signal.SIGTERM)
    gamma.process.wait(timeout=15)
    wait_until(lambda: "gamma" not in alpha.peers_by_name(), 10, "gamma's leave")

    assert alpha.process is not None
    alpha.process.send_signal(signal.SIGTERM)
    alpha.process.wait(timeout=15)
    alpha.start()
    wait_until(lambda: "beta" in alpha.peers_by_name(), 15, "alpha back, seeing beta")
    assert "remembering the newest datagram of" in alpha.log_text()
    before = observe(alpha)

    send(pool, gammas, [alpha.ws.address], rate=200.0, sources=[pool.mallory.address])
    settle([alpha])
    after = observe(alpha)
    lost = after.kernel_drops - before.kernel_drops
    replays = (after.drops - before.drops)["replay"]
    print(f"\n{FIGURE}after a restart: {replays} of {len(gammas)} replayed datagrams refused")
    assert "gamma" not in after.table, "a replay brought the departed gamma back"
    assert len(gammas) - lost <= replays <= len(gammas)
    assert set(after.table) == {"beta"}


def test_unkeyed_pool_flooded_with_node_ids_keeps_its_peers(unkeyed_pool: Pool) -> None:
    """Without a key every well-formed datagram is a peer (docs/security.md): a flood of
    forged ids, offering alpha's real compilers, fills the table to its cap but never
    pushes out a live peer, and memory stays bounded.  Once silent the forged peers turn
    suspect and leave the hosts lines; while one keeps talking it ranks like any peer,
    which is what an unkeyed pool allows anyone on the link."""
    pool = unkeyed_pool
    rng = random.Random(7)
    alpha = pool.daemons[0]
    status = alpha.status()
    assert status is not None
    offers = tuple(
        CompilerOffer(c["fingerprint"], c["loose_key"], c["remote_name"])
        for c in status["node"]["compilers"]
        if c["offered"]
    )[: limits.MAX_COMPILERS]
    before = {d.ws.name: observe(d) for d in pool.daemons}
    flood = [
        encode(
            Message(
                rng.randbytes(16),
                1,
                1,
                0.0,
                MessageKind.STATE,
                replace(forged_status(f"ghost{index}", pool.mallory.address), compilers=offers),
            ),
            Keyring(),
        )
        for index in range(UNKEYED_FLOOD_IDS)
    ]
    sent = send(pool, flood, [GROUP], rate=FLOOD_RATE, sources=[pool.mallory.address])
    print(f"\n{FIGURE}unkeyed pool: {UNKEYED_FLOOD_IDS} forged node ids in {sent['seconds']} s")
    settle(pool.daemons)
    for daemon in pool.daemons:
        name = daemon.ws.name
        old, new = before[name], observe(daemon)
        others = set(NAMES) - {name}
        status = daemon.status()
        assert status is not None
        liveness = {p["name"]: p["liveness"] for p in status["peers"] if p["name"] in others}
        assert liveness == dict.fromkeys(others, "alive"), liveness
        assert len(status["peers"]) <= limits.MAX_PEERS
        drops = new.drops - old.drops
        hosts = max((len(line["hosts"].split()) for line in status["hosts"].values()), default=0)
        states = Counter(peer["liveness"] for peer in status["peers"])
        growth = new.rss_kib - old.rss_kib
        print(
            f"{FIGURE}{name}: table {len(status['peers'])} peers {dict(states)}, drops "
            f"{dict(sorted(drops.items()))}, kernel dropped {new.kernel_drops - old.kernel_drops},"
            f" longest hosts line {hosts} hosts, VmRSS {old.rss_kib} -> {new.rss_kib} KiB "
            f"(+{growth}), log +{new.log_lines - old.log_lines} lines"
        )
        assert growth < RSS_GROWTH_LIMIT_KIB
        # Joins are logged one by one up to a budget a minute; the flood and the wait
        # fit in two windows.  Drops are logged once per sender and reason.
        assert new.log_lines - old.log_lines <= 2 * MEMBERSHIP_LINES_PER_MINUTE + 20
        assert daemon.process is not None
        assert daemon.process.poll() is None


# --- 2 and 3: zeroconf -----------------------------------------------------------------------

P2PCC_TYPE, DISTCC_TYPE = "_p2pcc._tcp.local.", "_distcc._tcp.local."
COMPILER = {"cc_machine": "x86_64-linux-gnu", "cc_version": "12"}
FORGED_ID = "6d" * 16  # a well-formed node id nobody has

#: (instance, type, port, TXT, the reason a daemon must drop it for; None: accepted).
HOSTILE_RECORDS: list[tuple[str, str, int, dict[str, Any], str | None]] = [
    ("garbage-id", P2PCC_TYPE, GOSSIP_PORT, {"node": "zz", "proto": "1"}, "bad-node-id"),
    ("no-txt", P2PCC_TYPE, GOSSIP_PORT, {}, "bad-node-id"),
    ("future", P2PCC_TYPE, GOSSIP_PORT, {"node": FORGED_ID, "proto": "99"}, "incompatible"),
    ("port-zero", P2PCC_TYPE, 0, {"node": FORGED_ID, "proto": "1"}, "bad-port"),
    ("binary-id", P2PCC_TYPE, GOSSIP_PORT, {"node": {"hex": "ff" * 32}, "proto": "1"}, "bad-txt"),
    ("crowded", P2PCC_TYPE, GOSSIP_PORT, {f"k{i}": "v" for i in range(40)}, "oversized"),
    # Well formed but forged: mDNS is not authenticated, gossip is.
    ("forged", P2PCC_TYPE, GOSSIP_PORT, {"node": FORGED_ID, "proto": "1"}, None),
    ("distcc@greedy", DISTCC_TYPE, 3632, {**COMPILER, "jobs": "99999"}, "bad-jobs"),
    ("distcc@zero-cpus", DISTCC_TYPE, 3632, {**COMPILER, "cpus": "0"}, "bad-cpus"),
    (
        "distcc@chatty",
        DISTCC_TYPE,
        3632,
        {**COMPILER, **{f"k{i}": "v" for i in range(40)}},
        "oversized",
    ),
    (
        "distcc@binary",
        DISTCC_TYPE,
        3632,
        {"cc_machine": {"hex": "ff"}, "cc_version": "12"},
        "bad-txt",
    ),
    ("distcc@mute", DISTCC_TYPE, 3632, {"jobs": "4"}, "no-compiler"),
    (
        "distcc@nonsense",
        DISTCC_TYPE,
        3632,
        {"cc_machine": "x" * 200, "cc_version": "y.z"},
        "bad-compiler",
    ),
    ("distcc@port-zero", DISTCC_TYPE, 0, {**COMPILER, "jobs": "3"}, "bad-port"),
    ("distcc@control", DISTCC_TYPE, 3632, {**COMPILER, "jobs": "\x1b[2J"}, "bad-txt"),
    ("distcc@honest", DISTCC_TYPE, 3632, {**COMPILER, "jobs": "3"}, None),
]


def mdns_drop_log(daemon: Daemon) -> list[tuple[str, str]]:
    """(instance, reason) of every "ignoring mDNS record" line in the daemon's log."""
    found = []
    for line in daemon.log_text().splitlines():
        if "ignoring mDNS record " in line:
            quoted, _, reason = line.split("ignoring mDNS record ", 1)[1].partition(": ")
            instance = quoted.strip("'\"").split("._", 1)[0]
            found.append((instance, reason.split(":", 1)[0]))
    return found


def lists_only_the_honest_server(daemon: Daemon) -> bool:
    status = daemon.status()
    return status is not None and [server["instance"] for server in status["stock_servers"]] == [
        "distcc@honest"
    ]


def dropped_all(daemon: Daemon, expected: set[tuple[str, str]]) -> bool:
    return expected <= set(mdns_drop_log(daemon))


def unicasts_to_nobody(daemon: Daemon) -> bool:
    return observe(daemon).unicast_targets == 0


def test_malformed_zeroconf_records(pool: Pool) -> None:
    records = [
        {"instance": name, "type": type_, "port": port, "properties": txt}
        for name, type_, port, txt, _ in HOSTILE_RECORDS
    ]
    records_file = pool.home / "records.json"
    records_file.write_text(json.dumps(records))
    before = {d.ws.name: observe(d) for d in pool.daemons}
    started = time.monotonic()
    publisher = pool.mallory.start(
        [sys.executable, str(HOSTILE), "publish", pool.mallory.address, str(records_file)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert publisher.stdout is not None
    assert publisher.stdout.readline().strip() == b"ready"
    print(
        f"\n{FIGURE}{len(records)} hostile mDNS records published in "
        f"{time.monotonic() - started:.1f} s"
    )
    expected = {(name, reason) for name, _, _, _, reason in HOSTILE_RECORDS if reason}
    for daemon in pool.daemons:
        # The honest stock server is the proof that this daemon's mDNS reads the link.
        wait_until(
            partial(lists_only_the_honest_server, daemon),
            30,
            f"{daemon.ws.name} to list the honest stock server",
        )
        wait_until(
            partial(dropped_all, daemon, expected),
            30,
            f"{daemon.ws.name} to drop every bad record: {expected - set(mdns_drop_log(daemon))}",
        )
    print(
        f"{FIGURE}every daemon dropped every bad record within "
        f"{time.monotonic() - started:.1f} s of publication"
    )
    time.sleep(3)  # zeroconf re-announces: the log must not repeat itself
    # The forged but well-formed p2pcc record is all mDNS can do: a node never heard
    # is sent our signed gossip by unicast (one datagram per interval) while announced.
    redirected = {d.ws.name: observe(d).unicast_targets for d in pool.daemons}
    print(f"{FIGURE}unicast targets while the forged record is announced: {redirected}")
    assert all(count <= 1 for count in redirected.values())
    assert publisher.stdin is not None
    publisher.stdin.close()
    assert publisher.wait(timeout=20) == 0
    publisher.stdout.close()
    for daemon in pool.daemons:
        name = daemon.ws.name
        wait_until(partial(unicasts_to_nobody, daemon), 10, f"{name} to forget the forgery")
        old, new = before[name], observe(daemon)
        assert new.table == old.table, f"{name}'s table changed: {table_changes(old, new)}"
        logged = mdns_drop_log(daemon)
        assert len(logged) == len(set(logged)), "an (instance, reason) pair was logged twice"
        assert set(logged) == expected
        # ... and `status` counts them by reason (every re-announcement counts again).
        status = daemon.status()
        assert status is not None
        counted = status["counters"]["mdns_drops"]
        for reason in {reason for _, reason in expected}:
            assert counted.get(reason, 0) >= sum(1 for _, r in expected if r == reason), counted
        print(
            f"{FIGURE}{name}: {len(logged)} records dropped, each logged once; "
            f"VmRSS {old.rss_kib} -> {new.rss_kib} KiB"
        )


# --- 4: the wrapper under corrupt files ------------------------------------------------------

C_SOURCES = {
    "one.c": "int one(int x) { return x * 3 + 1; }\n",
    "two.c": "#include <string.h>\nunsigned two(const char *s) { return strlen(s); }\n",
    "three.c": "double three(double a, double b) { return a / b; }\n",
}


def gcc_cache_entry(remote_name: str) -> str:
    """A well-formed cache line for /usr/bin/gcc with its current stamp, naming
    `remote_name` (what peers would run it as)."""
    stamp = cache_stamp(Path("/usr/bin/gcc"))
    fields = ["/usr/bin/gcc", stamp, "0123456789abcdef", "gcc", "c", "x86_64-linux-gnu--12"]
    fields += [remote_name, "x86_64-linux-gnu", "12.2.0", "driver", "/usr/bin/gcc-12"]
    fields += ["0" * 64, stamp]
    return "\t".join(fields)


def cache_stamp(path: Path) -> str:
    status = path.stat()  # follows the symlink, as the cache does
    return f"{status.st_dev}:{status.st_ino}:{status.st_size}:{status.st_mtime_ns}"


def damage(place: Path, how: str, valid_header: str, rng: random.Random) -> None:
    """Put damaged content (or a non-file) where a state file or cache file goes."""
    place.parent.mkdir(parents=True, exist_ok=True)
    if how == "binary":
        place.write_bytes(rng.randbytes(4096))
    elif how == "bad-records":
        junk = "written\tsoon\nhosts\tzz\tmany\t-- ;rm\ncompiler\t\t\t\nnative\n\x00\x01\n"
        place.write_text(f"{valid_header}\n{junk}")
    elif how == "oversized":
        place.write_text(valid_header + "\n" + "x" * (2 << 20))
    elif how == "empty":
        place.write_bytes(b"")
    elif how == "fifo":
        os.mkfifo(place)
    elif how == "directory":
        place.mkdir()
    else:
        raise AssertionError(how)


@dataclass
class WrapperSetup:
    """Links installed on alpha, and how to run a compile through them."""

    daemon: Daemon
    links: Path
    work: Path

    def env(self, scenario: Path) -> dict[str, str]:
        (scenario / "xdg").mkdir(mode=0o700, exist_ok=True)
        (scenario / "distcc").mkdir(exist_ok=True)
        return {
            "PATH": f"{self.links}:/usr/bin:/bin",
            "HOME": str(scenario),
            "LC_ALL": "C",
            "XDG_RUNTIME_DIR": str(scenario / "xdg"),
            "DISTCC_DIR": str(scenario / "distcc"),
            "P2PCC_RUNTIME_DIR": str(scenario / "run"),
            "P2PCC_CACHE_DIR": str(scenario / "cache"),
        }

    def run(self, scenario: Path, *command: str) -> subprocess.CompletedProcess[str]:
        # Entering the workstation's mount namespace loses the working directory: the
        # shell goes back to it.  `timeout` there: a hang shows as 124, not a stuck test.
        return self.daemon.ws.run(
            ["sh", "-c", 'cd "$0" && exec "$@"', str(self.work), "timeout", "30", *command],
            env=self.env(scenario),
            check=False,
            timeout=60,
        )


@pytest.fixture
def wrapper_setup(pool: Pool) -> WrapperSetup:
    alpha = pool.daemons[0]
    links, work = pool.home / "links", pool.home / "work"
    work.mkdir()
    for name, text in C_SOURCES.items():
        (work / name).write_text(text)
    (work / "Makefile").write_text("all: one.o two.o three.o\n%.o: %.c\n\tgcc -O2 -c $< -o $@\n")
    config = pool.home / "links.toml"
    config.write_text(f'runtime_dir = "{pool.home / "nowhere"}"\n')
    alpha.ws.run(
        [sys.executable, "-m", "p2pcc", "install-links", str(links), "--config", str(config)],
        env={**os.environ, "PATH": "/usr/bin:/bin"},
    )
    for name in C_SOURCES:
        stem = name.removesuffix(".c")
        subprocess.run(
            ["/usr/bin/gcc", "-O2", "-c", name, "-o", f"{stem}.local"], cwd=work, check=True
        )
    return WrapperSetup(alpha, links, work)


DAMAGE = ("binary", "bad-records", "oversized", "empty", "fifo", "directory")


def test_the_wrapper_compiles_through_corrupt_files(
    wrapper_setup: WrapperSetup, pool: Pool
) -> None:
    setup = wrapper_setup
    hosts = {"0123456789abcdef": (8, f"{pool.daemons[1].ws.address}:3632/4")}
    for how in DAMAGE:
        rng = random.Random(how)
        # The state file damaged: the wrapper stops there.  Then a valid, fresh state
        # file that does not know gcc, so the wrapper must read the damaged cache.
        state_damaged = setup.work.parent / f"state-{how}"
        damage(state_damaged / "run" / "state", how, statefile.HEADER, rng)
        cache_damaged = setup.work.parent / f"cache-{how}"
        damage(cache_damaged / "cache" / "fingerprints", how, cache.HEADER, rng)
        (cache_damaged / "run").mkdir()
        (cache_damaged / "run" / "state").write_text(statefile.render(time.time(), hosts))
        for scenario in (state_damaged, cache_damaged):
            (setup.work / "one.o").unlink(missing_ok=True)
            started = time.monotonic()
            done = setup.run(scenario, "gcc", "-O2", "-c", "one.c", "-o", "one.o")
            took = time.monotonic() - started
            print(
                f"\n{FIGURE}{scenario.name}: gcc -c exit {done.returncode} in {took:.2f} s, "
                f"stderr {done.stderr.strip()!r}"
            )
            assert done.returncode == 0, done.stderr
            assert same_object(setup.work, "one")
            warnings = done.stderr.splitlines()
            assert len(warnings) <= 1
            assert all(line.startswith("p2pcc: ") for line in warnings)

    # A whole build: one warning, not one per file.
    scenario = setup.work.parent / "scenario-make"
    damage(scenario / "run" / "state", "binary", statefile.HEADER, random.Random(1))
    done = setup.run(scenario, "make", "-j3", "--no-print-directory")
    assert done.returncode == 0, done.stderr
    assert all(same_object(setup.work, name.removesuffix(".c")) for name in C_SOURCES)
    warnings = [line for line in done.stderr.splitlines() if line.startswith("p2pcc: ")]
    print(f"{FIGURE}make -j3 with a corrupt state file: {warnings}")
    assert len(warnings) == 1
    assert "not a p2pcc state file" in warnings[0]

    # A fresh, valid state file that does not know gcc sends the wrapper to the cache,
    # whose well-formed entry for this very gcc names a remote compiler that is not it.
    scenario = setup.work.parent / "scenario-cache-entry"
    (scenario / "run").mkdir(parents=True)
    (scenario / "cache").mkdir()
    entry = gcc_cache_entry("no-such-compiler-anywhere")
    (scenario / "cache" / "fingerprints").write_text(f"{cache.HEADER}\n{entry}\n")
    (scenario / "run" / "state").write_text(statefile.render(time.time(), hosts))
    (setup.work / "two.o").unlink(missing_ok=True)
    done = setup.run(scenario, "gcc", "-O2", "-c", "two.c", "-o", "two.o")
    print(f"{FIGURE}cache naming a foreign remote compiler: {done.stderr.strip()!r}")
    assert done.returncode == 0, done.stderr
    assert same_object(setup.work, "two")
    [warning] = done.stderr.splitlines()
    assert "no-such-compiler-anywhere" in warning


def same_object(work: Path, stem: str) -> bool:
    """Whether `stem.o`, built through the links, is byte for byte the local build."""
    return (work / f"{stem}.o").read_bytes() == (work / f"{stem}.local").read_bytes()


# --- 5: a configuration with bad values ------------------------------------------------------

#: (file text, the keys its errors must name, one line each).
BAD_CONFIGS = [
    (
        '[gossip]\ninterval = -1\nport = 70000\nttl = "one"\nbogus = 1\n[nosuch]\nx = 1\n',
        ["gossip.bogus", "nosuch", "gossip.port", "gossip.ttl", "gossip.interval"],
    ),
    ('runtime_dir = "relative/dir"\n[distccd]\njobs = -3\n', ["runtime_dir", "distccd.jobs"]),
    ("[gossip]\ninterval = 9.0\nsuspect_after = 3.0\n", ["gossip.interval"]),
    ("[gossip\nport = 1\n", ["line 1, column 8"]),
]


def p2pcc_on(ws: Workstation, *args: str) -> subprocess.CompletedProcess[str]:
    return ws.run(
        [sys.executable, "-m", "p2pcc", *args],
        check=False,
        timeout=60,
        env={**os.environ, "P2PCC_CACHE_DIR": "/nonexistent-cache"},
    )


def test_bad_configurations_get_one_clear_line_per_error(bed: TestBed, shared_tmp: Path) -> None:
    ws = bed.add_workstation("admin")
    for index, (text, keys) in enumerate(BAD_CONFIGS):
        path = shared_tmp / f"bad-{index}.toml"
        path.write_text(text)
        for command in (["config", "--check"], ["daemon"]):
            done = p2pcc_on(ws, *command, "--config", str(path))
            lines = done.stderr.splitlines()
            print(
                f"\n{FIGURE}p2pcc {' '.join(command)} on bad-{index}.toml: exit "
                f"{done.returncode}\n  " + "\n  ".join(lines)
            )
            assert done.returncode == 1
            assert done.stdout == ""
            assert len(lines) == len(keys), lines
            for line, key in zip(lines, keys, strict=True):
                assert line.removeprefix("p2pcc: ").startswith(f"{path}: {key}: "), line

    # A key file that is not there: the daemon stops before saying anything to peers.
    path = shared_tmp / "no-key.toml"
    missing = shared_tmp / "missing.key"
    path.write_text(f'[gossip]\ninterface = "eth0"\nkey_file = "{missing}"\n')
    # `config --check` reads it too, and refuses it the same way.
    for command in (["daemon"], ["config", "--check"]):
        done = p2pcc_on(ws, *command, "--config", str(path))
        print(
            f"{FIGURE}p2pcc {' '.join(command)} with a missing key file: exit "
            f"{done.returncode}, {done.stderr.strip()!r}"
        )
        assert done.returncode == 1
        assert done.stderr.splitlines() == [
            f"p2pcc: {missing}: gossip.key_file: no such file; {no_key_remedy()}"
        ]
