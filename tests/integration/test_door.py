"""distccd's door on real daemons in namespace workstations, against a stranger with no daemon.

The pool is keyed; `mallory` is a workstation on the same link that runs no p2pcc and
holds no key, so distccd's own `--allow` (the link's /24) would let it in.  The door
must answer it with a TCP reset before distccd sees it, count it, and let members in;
a member that dies or leaves is shut out once it is declared dead or gone, while a job
it already has running finishes on the same distccd.  Figures are printed (`pytest -s`);
the bounds are waits, not timing assertions.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from p2pcc.daemon.door import COUNTER_PERIOD
from tests.integration.attacks import DISTCCD_PORT, distcc_job, distccd_log, node_part, probe
from tests.integration.distccd_log_lines import parse_distccd_job_line
from tests.integration.netbed import TestBed, Workstation
from tests.integration.pool import (
    DEAD_AFTER,
    INTERVAL,
    Daemon,
    cli_env,
    start_pool,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.netns]

#: A job that compiles anywhere.
JOB = "int job(void) { return 42; }\n"

#: A distcc client (protocol 1) that opens its connection and sends the command line, then
#: waits for a line on stdin before sending the source: a job in flight across a
#: membership change.  Prints the compiler's status and the object's size.
SLOW_CLIENT = """
import socket, sys
def word(token, value):
    return token.encode() + b"%08x" % value
def item(token, data):
    return word(token, len(data)) + data
args = [b"x86_64-linux-gnu-gcc", b"-c", b"door.c", b"-o", b"door.o"]
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=60)
s.sendall(word("DIST", 1) + word("ARGC", len(args)) + b"".join(item("ARGV", a) for a in args))
print("connected", flush=True)
sys.stdin.readline()
s.sendall(item("DOTI", b"int door(void) { return 7; }\\n"))
reply = b""
while chunk := s.recv(65536):
    reply += chunk
def field(token):
    at = reply.index(token.encode()) + 4
    return int(reply[at:at + 8], 16)
print("status", field("STAT"), "object", field("DOTO"), flush=True)
"""


def door(daemon: Daemon) -> dict[str, Any]:
    """The `door` part of the daemon's status."""
    return node_part(daemon, "door")


@pytest.fixture
def pool(bed: TestBed, shared_tmp: Path, key_file: Path) -> Iterator[list[Daemon]]:
    yield from start_pool(bed, shared_tmp, ("alpha", "beta"), key_file, timeout=30)


def distccd_pid(daemon: Daemon) -> int:
    return int((daemon.runtime_dir / "distccd" / "distccd.pid").read_text().split()[0])


def nft_tables(ws: Workstation) -> str:
    return ws.run(["nft", "list", "tables"]).stdout


def wait_for_members(daemon: Daemon, members: int) -> None:
    wait_until(lambda: door(daemon).get("members") == members, 15, f"{members} member(s)")


def test_a_stranger_is_reset_and_counted_while_a_member_builds(
    pool: list[Daemon], bed: TestBed, shared_tmp: Path
) -> None:
    alpha, beta = pool
    mallory = bed.add_workstation("mallory")
    wait_for_members(alpha, 1)
    assert door(alpha)["problem"] is None
    assert door(alpha)["open_networks"] == []  # a keyed pool: members only

    assert probe(mallory, alpha.ws.address) == "refused"
    stranger = distcc_job(
        mallory, alpha.ws.address, shared_tmp / "mallory-job", JOB, [], fallback=False
    )
    assert stranger.returncode != 0, stranger.stderr  # DISTCC_FALLBACK=0: nowhere to go
    refused = wait_until(
        lambda: door(alpha).get("refused", 0) >= 2 and door(alpha)["refused"],
        COUNTER_PERIOD + 10,
        "the refusals counted",
    )
    print(f"\nrefused by alpha's door: {refused}")

    member = distcc_job(beta.ws, alpha.ws.address, shared_tmp / "beta-job", JOB, [], fallback=False)
    assert member.returncode == 0, member.stderr
    log = distccd_log(alpha)
    jobs = [job for line in log.splitlines() if (job := parse_distccd_job_line(line))]
    assert any(job.ok and job.client.startswith(f"{beta.ws.address}:") for job in jobs), log
    assert mallory.address not in log  # distccd never saw the stranger
    assert probe(alpha.ws, alpha.ws.address) == "connected"  # this machine itself


def test_a_killed_member_is_shut_out_and_its_running_job_finishes(pool: list[Daemon]) -> None:
    alpha, beta = pool
    wait_for_members(alpha, 1)
    pid = distccd_pid(alpha)
    with beta.ws.start(
        [sys.executable, "-c", SLOW_CLIENT, alpha.ws.address, str(DISTCCD_PORT)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as client:  # closing its stdin on the way out lets it finish whatever happened
        assert client.stdin is not None
        assert client.stdout is not None
        assert client.stdout.readline().strip() == "connected"  # established before the change
        shut_out_after_death(alpha, beta)
        client.stdin.write("go\n")
        client.stdin.flush()
        outcome = client.stdout.readline().split()
        assert outcome[:3] == ["status", "0", "object"], outcome  # compiled, exit status 0
        assert int(outcome[3]) > 0  # and an object came back
        assert client.wait(timeout=30) == 0
    assert distccd_pid(alpha) == pid  # never restarted for a membership change
    assert "p2pcc_door_3632" in nft_tables(beta.ws)  # a killed daemon leaves its table
    beta.start()  # and the next start replaces it
    wait_for_members(alpha, 1)
    wait_until(lambda: door(beta).get("members") == 1, 15, "beta's door up again")
    assert door(beta)["problem"] is None


def shut_out_after_death(alpha: Daemon, beta: Daemon) -> None:
    """Kill beta's daemon; wait until alpha declares it dead, then until it refuses beta."""
    assert beta.process is not None
    os.killpg(beta.process.pid, signal.SIGKILL)
    killed = time.monotonic()
    wait_until(
        lambda: alpha.peers_by_name().get("beta", {}).get("liveness") in (None, "dead"),
        DEAD_AFTER + 10,
        "alpha to declare beta dead",
    )
    dead = time.monotonic()
    wait_until(lambda: probe(beta.ws, alpha.ws.address) == "refused", 10, "beta shut out")
    print(
        f"\nkilled member: declared dead {dead - killed:.2f} s after the kill, "
        f"refused {time.monotonic() - dead:.2f} s later (interval {INTERVAL} s, "
        "probe start-up included)"
    )
    assert door(alpha)["members"] == 0


def test_a_member_that_leaves_is_shut_out_and_one_that_joins_gets_in(
    pool: list[Daemon], shared_tmp: Path
) -> None:
    alpha, beta = pool
    wait_for_members(alpha, 1)
    assert beta.process is not None
    beta.process.send_signal(signal.SIGTERM)
    beta.process.wait(timeout=30)
    assert "p2pcc_door" not in nft_tables(beta.ws)  # removed on the way out
    wait_until(lambda: "beta" not in alpha.peers_by_name(), 10, "beta's leave")
    left = time.monotonic()
    wait_until(lambda: probe(beta.ws, alpha.ws.address) == "refused", 10, "beta shut out")
    print(f"\nleft member refused {time.monotonic() - left:.2f} s after alpha saw it leave")

    beta.start()
    wait_for_members(alpha, 1)
    member = distcc_job(
        beta.ws, alpha.ws.address, shared_tmp / "beta-again-job", JOB, [], fallback=False
    )
    assert member.returncode == 0, member.stderr


#: Runs a command as root without CAP_NET_ADMIN (the bounding and inheritable sets).
WITHOUT_NET_ADMIN = ("setpriv", "--bounding-set=-net_admin", "--inh-caps=-net_admin")


def daemon_command(daemon: Daemon) -> list[str]:
    return [sys.executable, "-m", "p2pcc", "daemon", "-v", "--config", str(daemon.config_path)]


def test_without_cap_net_admin_there_is_no_door_and_no_distccd(
    bed: TestBed, shared_tmp: Path, key_file: Path
) -> None:
    alpha = Daemon(bed.add_workstation("alpha"), shared_tmp / "alpha", key_file=key_file)
    alpha.write_config()
    log = alpha.home / "daemon-0.log"
    alpha.log_files.append(log)
    with log.open("w") as log_file:
        alpha.process = alpha.ws.start(
            [*WITHOUT_NET_ADMIN, *daemon_command(alpha)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=cli_env(alpha.home),
        )
    status = wait_until(alpha.status, 30, "alpha to answer")
    node = status["node"]
    assert "not permitted" in node["door"]["problem"].lower(), node["door"]
    assert "CAP_NET_ADMIN" in node["door"]["problem"]
    assert (node["serving"], node["slots"]) == (False, 0)
    assert not (alpha.runtime_dir / "distccd" / "distccd.pid").exists()  # never started
    assert probe(alpha.ws, alpha.ws.address) == "refused"  # nothing listens
    assert "distccd will not serve" in alpha.log_text()
    doctor = alpha.cli("doctor", check=False)
    assert "FAIL  door: not up, so distccd does not serve" in doctor.stdout, doctor.stdout
