"""Real daemons on namespace workstations: discovery, propagation, liveness, hostile input.

Each test prints the figures it measures (`pytest -s` shows them); assertions bound them
loosely, since a loaded CI machine may be slow, and exactness is the unit tests' job.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from p2pcc.core.auth import Keyring, format_key_line
from p2pcc.core.model import Message, MessageKind, NodeStatus
from p2pcc.core.wire import encode
from tests.integration.netbed import TestBed
from tests.integration.pool import (
    DEAD_AFTER,
    GOSSIP_PORT,
    SUSPECT_AFTER,
    Daemon,
    start_pool,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.netns]

NAMES = ("alpha", "beta", "gamma")
GROUP = "239.192.74.70"


@pytest.fixture
def pool(bed: TestBed, shared_tmp: Path, key_file: Path) -> Iterator[list[Daemon]]:
    yield from start_pool(bed, shared_tmp, NAMES, key_file, timeout=20)


def test_each_sees_the_others_with_their_numbers(pool: list[Daemon]) -> None:
    alpha = pool[0]
    status = alpha.status()
    assert status is not None
    own_compilers = {c["fingerprint"] for c in status["node"]["compilers"] if c["offered"]}
    assert own_compilers, "this machine offers no compiler"
    for peer in status["peers"]:
        daemon = next(d for d in pool if d.ws.name == peer["name"])
        assert peer["addresses"] == [daemon.ws.address]
        assert peer["cpus"] == len(os.sched_getaffinity(0))
        assert peer["power"] > 0
        assert set(peer["compilers"]) == own_compilers  # same machine image, same compilers
    assert status["counters"]["packets_in"] > 0
    # Normal operation only: our multicast echo, a datagram heard twice, and a probe's
    # second answer from a peer busy starting up (both attempts answered, late).
    assert set(status["counters"]["drops"]) <= {"own", "duplicate", "reordered", "late-ack"}


def test_pause_and_resume_reach_the_others(pool: list[Daemon]) -> None:
    alpha, beta, gamma = pool
    started = time.monotonic()
    alpha.cli("pause", "--for", "600", "--reason", "meeting")

    def paused_everywhere() -> bool:
        return all(d.peers_by_name()["alpha"]["state"] == "paused" for d in (beta, gamma))

    wait_until(paused_everywhere, 5, "the pause to reach beta and gamma")
    print(f"\npause propagation (incl. CLI start-up): {time.monotonic() - started:.2f} s")
    peer = beta.peers_by_name()["alpha"]
    assert peer["pause_reason"] == "meeting"
    beta_status = beta.status()
    assert beta_status is not None
    assert all("10.213.7.11" not in line["hosts"] for line in beta_status["hosts"].values())
    alpha.cli("resume")
    wait_until(
        lambda: all(d.peers_by_name()["alpha"]["state"] == "active" for d in (beta, gamma)),
        5,
        "the resume to reach beta and gamma",
    )


def test_killed_daemon_turns_suspect_then_dead(pool: list[Daemon]) -> None:
    alpha, _, gamma = pool
    assert gamma.process is not None
    killed = time.monotonic()
    os.killpg(gamma.process.pid, signal.SIGKILL)

    def liveness() -> str | None:
        peer = alpha.peers_by_name().get("gamma")
        return None if peer is None else str(peer["liveness"])

    wait_until(lambda: liveness() == "suspect", SUSPECT_AFTER + 5, "gamma to turn suspect")
    suspect_at = time.monotonic() - killed
    wait_until(lambda: liveness() == "dead", DEAD_AFTER + 5, "gamma to turn dead")
    dead_at = time.monotonic() - killed
    print(f"\nkilled peer: suspect after {suspect_at:.2f} s, dead after {dead_at:.2f} s")
    # Last heard at most one interval before the kill; never earlier than the timings allow.
    assert suspect_at >= SUSPECT_AFTER - 0.6
    assert dead_at >= DEAD_AFTER - 0.6
    alpha_status = alpha.status()
    assert alpha_status is not None
    assert all(gamma.ws.address not in line["hosts"] for line in alpha_status["hosts"].values())


def test_leave_is_seen_at_once_and_a_restart_is_welcomed(pool: list[Daemon]) -> None:
    alpha, _, gamma = pool
    before = alpha.peers_by_name()["gamma"]["incarnation"]
    assert gamma.process is not None
    stopped = time.monotonic()
    gamma.process.send_signal(signal.SIGTERM)
    gamma.process.wait(timeout=15)
    wait_until(lambda: "gamma" not in alpha.peers_by_name(), SUSPECT_AFTER, "gamma's leave")
    print(f"\nleave seen after {time.monotonic() - stopped:.2f} s (SIGTERM to absence)")
    assert "sent leave" in gamma.log_text()
    gamma.start()
    peer = wait_until(lambda: alpha.peers_by_name().get("gamma"), 15, "gamma to come back")
    assert peer["incarnation"] > before
    assert peer["liveness"] == "alive"


def test_hostile_datagrams_are_dropped_and_counted(pool: list[Daemon], bed: TestBed) -> None:
    alpha = pool[0]
    intruder = bed.add_workstation("intruder")
    forged_status = NodeStatus("intruder", (intruder.address,), 3632, 64, 0.0, 1 << 40, 64, 0, 9.0)
    unkeyed = encode(Message(b"\x66" * 16, 1, 1, 0.0, MessageKind.STATE, forged_status), Keyring())
    wrong_key = encode(
        Message(b"\x67" * 16, 1, 1, 0.0, MessageKind.STATE, forged_status), Keyring([b"w" * 32])
    )
    payloads = [os.urandom(200), b"P2CC\x01\x00\x01\x00" + os.urandom(60), unkeyed, wrong_key]
    payloads.append(b"x" * 3000)
    script = (
        "import socket, sys, ast\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)\n"
        "for payload in ast.literal_eval(sys.stdin.read()):\n"
        f"    s.sendto(payload, ({GROUP!r}, {GOSSIP_PORT}))\n"
        f"    s.sendto(payload, ({alpha.ws.address!r}, {GOSSIP_PORT}))\n"
    )
    intruder.run([sys.executable, "-c", script], input=repr(payloads), timeout=20)

    def drops() -> dict[str, int]:
        status = alpha.status()
        return {} if status is None else dict(status["counters"]["drops"])

    counted = wait_until(lambda: drops().get("bad-mac", 0) >= 4 and drops(), 5, "drops counted")
    print(f"\ndrops at alpha after the intrusion: {counted}")
    assert counted.get("oversized", 0) + counted.get("bad-magic", 0) >= 4
    assert set(alpha.peers_by_name()) == {"beta", "gamma"}  # nothing forged got in


def test_sighup_reloads_the_key_and_refuses_a_broken_file(
    pool: list[Daemon], key_file: Path
) -> None:
    alpha, beta, _ = pool
    assert alpha.process is not None
    good_config = alpha.config_path.read_text()
    alpha.config_path.write_text(good_config + "[ranking]\ntier_ratio = 7\n")
    alpha.process.send_signal(signal.SIGHUP)
    wait_until(lambda: "reload refused" in alpha.log_text(), 5, "the refusal in alpha's log")
    assert "ranking.tier_ratio" in alpha.log_text()
    alpha.config_path.write_text(good_config)  # the CLI reads it too, to find the socket
    assert alpha.process.poll() is None
    assert alpha.status() is not None  # still running, still answering
    # A new key first in alpha's keyring: alpha signs with it, beta does not know it.
    new_key = alpha.home / "new.key"
    new_key.write_text(
        format_key_line(b"the-next-cluster-key-0123456789") + "\n" + key_file.read_text()
    )
    new_key.chmod(0o600)
    alpha.config_path.write_text(good_config.replace(str(key_file), str(new_key)))
    alpha.process.send_signal(signal.SIGHUP)
    wait_until(lambda: "reloaded" in alpha.log_text(), 5, "the reload in alpha's log")
    wait_until(
        lambda: beta.peers_by_name().get("alpha", {}).get("liveness") != "alive",
        SUSPECT_AFTER + 5,
        "beta to stop trusting alpha",
    )
    beta_status = beta.status()
    assert beta_status is not None
    assert beta_status["counters"]["drops"].get("bad-mac", 0) > 0
    assert "gamma" in alpha.peers_by_name()  # alpha still accepts the old key: rotation
