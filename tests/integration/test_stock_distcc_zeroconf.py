"""Zeroconf between bed workstations: p2pcc nodes, stock `distccd --zeroconf`, stock clients.

Each p2pcc node is `mdns_driver.py` (real `serve_mdns`, real python-zeroconf) printing
what it sees.  Stock distcc's zeroconf needs avahi-daemon and a D-Bus system bus: both
run inside the workstation's own mount namespace, on tmpfs mounted over /run/dbus and
/run/avahi-daemon, so they never meet the machine's own.  The stock client's zeroconf
helper detaches from its session, so every process left in a workstation's network
namespace is killed by id before the bed goes.

A whole p2pcc daemon keeps distccd behind its door (docs/distccd.md, "The door"): a
stock client gets in only when the pool is unkeyed or `distccd.allow_stock_clients`
lists it; the listing itself (mDNS) is the same either way.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.mdns_driver import LineReader
from tests.integration.netbed import TestBed, Workstation
from tests.integration.pool import Daemon, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.netns]

DRIVER = Path(__file__).with_name("mdns_driver.py")
GOSSIP_PORT = 7463
#: Stock distccd in the foreground (the bed kills what it starts), logging to stderr.
DISTCCD = ("distccd", "--daemon", "--no-detach", "--log-stderr")
ALPHA_ID, BETA_ID, DELTA_ID = "a1" * 16, "b2" * 16, "d4" * 16
_PRIVATE_RUN = (
    "mkdir -p /run/dbus /run/avahi-daemon"
    " && mount -t tmpfs tmpfs /run/dbus && mount -t tmpfs tmpfs /run/avahi-daemon"
)


@pytest.fixture
def zc_bed(bed: TestBed) -> Iterator[TestBed]:
    for tool in ("avahi-daemon", "dbus-daemon", "distccd"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (scripts/test installs it)")
    try:
        yield bed
    finally:
        for ws in bed.workstations:
            # SIGTERM first, so distccd and avahi reap their own children, then SIGKILL
            # what detached from us (the stock client's zeroconf helper).
            for process in ws.processes:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
            for process in ws.processes:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=5)
            _kill_namespace_processes(ws)
            for process in ws.processes:
                process.wait(timeout=10)
                for stream in (process.stdin, process.stdout, process.stderr):
                    if stream is not None:
                        stream.close()


def _kill_namespace_processes(ws: Workstation) -> None:
    """SIGKILL every process in the workstation's network namespace, by pid."""
    listed = subprocess.run(
        ["ip", "netns", "pids", ws.netns], capture_output=True, text=True, check=False
    )
    for pid in (int(word) for word in listed.stdout.split()):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


class Driver:
    """A running mdns_driver: its events, and lines to steer it."""

    def __init__(self, ws: Workstation, node_hex: str, *args: str) -> None:
        self.process = ws.start(
            [sys.executable, str(DRIVER), ws.address, node_hex, ws.name, str(GOSSIP_PORT), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.process.stdout is not None
        self.output = LineReader(self.process.stdout.fileno())

    def wait_for(self, event: str, timeout: float = 15, **fields: Any) -> dict[str, Any]:
        """The first `event` whose fields include `fields`."""
        return self.output.wait_for(
            lambda e: e["event"] == event and all(e.get(k) == v for k, v in fields.items()),
            timeout,
        )

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(f"{line}\n".encode())
        self.process.stdin.flush()

    def stop(self) -> dict[str, Any]:
        """Ask it to quit; its `stopped` event (which lists leftover threads)."""
        self.send("quit")
        stopped = self.wait_for("stopped")
        assert self.process.wait(timeout=10) == 0
        return stopped

    def ask_stats(self) -> dict[str, int]:
        """The records it dropped so far, by reason."""
        self.send("stats")
        return self.wait_for("stats")["dropped"]  # type: ignore[no-any-return]

    def events(self, event: str) -> list[dict[str, Any]]:
        return [e for e in map(_json, self.output.lines) if e.get("event") == event]


def _json(line: str) -> dict[str, Any]:
    return json.loads(line) if line.startswith("{") else {}  # type: ignore[no-any-return]


def start_avahi(ws: Workstation) -> None:
    """A private system bus and avahi-daemon in this workstation, ready when this returns."""
    ws.run(["sh", "-c", _PRIVATE_RUN])
    bus = ws.start(
        ["dbus-daemon", "--system", "--nofork", "--nopidfile", "--print-address"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert bus.stdout is not None
    assert "system_bus_socket" in (LineReader(bus.stdout.fileno()).next_line(_deadline(10)) or "")
    avahi = ws.start(
        ["avahi-daemon", "--no-drop-root", "--no-chroot", "--no-rlimits", "--no-proc-title"],
        stderr=subprocess.PIPE,
    )
    assert avahi.stderr is not None
    log = LineReader(avahi.stderr.fileno())
    deadline = _deadline(10)
    while "Server startup complete" not in (log.next_line(deadline) or "Server startup complete"):
        pass
    assert avahi.poll() is None, log.lines


def _deadline(seconds: float) -> float:
    return time.monotonic() + seconds


def local_loose_key() -> str:
    machine = subprocess.run(["cc", "-dumpmachine"], capture_output=True, text=True, check=True)
    version = subprocess.run(["cc", "-dumpversion"], capture_output=True, text=True, check=True)
    return f"{machine.stdout.strip()}--{version.stdout.strip().split('.')[0]}"


def show_hosts(ws: Workstation, distcc_dir: Path) -> str:
    env = dict(os.environ, DISTCC_HOSTS="+zeroconf", DISTCC_DIR=str(distcc_dir))
    return ws.run(["distcc", "--show-hosts"], env=env, timeout=20).stdout


def poll_show_hosts(ws: Workstation, distcc_dir: Path, until: Any, timeout: float) -> str:
    """`distcc --show-hosts` until `until(output)`; stock distcc caches, so this must poll."""
    deadline = _deadline(timeout)
    while not until(output := show_hosts(ws, distcc_dir)):
        assert time.monotonic() < deadline, f"distcc --show-hosts still says {output!r}"
        time.sleep(0.2)
    return output


# --- p2pcc nodes ---------------------------------------------------------------------------


def test_p2pcc_nodes_find_each_other_and_leave_cleanly(zc_bed: TestBed) -> None:
    alpha, beta, delta = (zc_bed.add_workstation(n) for n in ("alpha", "beta", "delta"))
    a, b = Driver(alpha, ALPHA_ID), Driver(beta, BETA_ID)
    # Cancelled while its registration (about 1.6 s) is still under way: still clean.
    d = Driver(delta, DELTA_ID)
    d.wait_for("started")
    assert d.stop()["threads"] == []

    seen_by_beta = b.wait_for("node", node_id=ALPHA_ID)
    seen_by_alpha = a.wait_for("node", node_id=BETA_ID)
    assert seen_by_beta == {
        "event": "node",
        "node_id": ALPHA_ID,
        "name": f"alpha [{ALPHA_ID[:8]}]",
        "addresses": [alpha.address],
        "port": GOSSIP_PORT,
    }
    assert (seen_by_alpha["addresses"], seen_by_alpha["port"]) == ([beta.address], GOSSIP_PORT)

    assert a.stop()["threads"] == []  # its goodbye reaches beta
    assert b.wait_for("node-gone", node_id=ALPHA_ID)["addresses"] == [alpha.address]
    assert b.stop()["threads"] == []
    assert not [e for e in a.events("node") if e["node_id"] == ALPHA_ID]  # never itself


#: Publishes, with python-zeroconf, records no real node or distccd would send.
HOSTILE = """
import sys, zeroconf
address = sys.argv[1]
zc = zeroconf.Zeroconf(interfaces=[address], ip_version=zeroconf.IPVersion.V4Only)
def publish(type_, instance, properties):
    info = zeroconf.ServiceInfo(type_, f"{instance}.{type_}", port=3632, properties=properties,
                                server="mallory.local.", parsed_addresses=[address])
    zc.register_service(info, cooperating_responders=True)  # no probing: quicker
compiler = {"cc_machine": "x86_64-linux-gnu", "cc_version": "12"}
publish("_p2pcc._tcp.local.", "forged", {"node": "zz", "proto": "1"})
publish("_distcc._tcp.local.", "distcc@greedy", {**compiler, "jobs": "99999"})
publish("_distcc._tcp.local.", "distcc@chatty", {**compiler, **{f"k{i}": "v" for i in range(40)}})
publish("_distcc._tcp.local.", "distcc@binary", {b"cc_machine": b"\\xff", b"cc_version": b"12"})
publish("_distcc._tcp.local.", "distcc@honest", {**compiler, "jobs": "3"})
print("ready", flush=True)
sys.stdin.read()
zc.close()
"""


def test_hostile_records_on_the_link_are_dropped(zc_bed: TestBed) -> None:
    alpha, mallory = zc_bed.add_workstation("alpha"), zc_bed.add_workstation("mallory")
    a = Driver(alpha, ALPHA_ID)
    publisher = mallory.start(
        [sys.executable, "-c", HOSTILE, mallory.address],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert publisher.stdout is not None
    assert LineReader(publisher.stdout.fileno()).next_line(_deadline(15)) == "ready"
    honest = a.wait_for("stock", instance="distcc@honest")
    assert (honest["jobs"], honest["loose_key"]) == (3, "x86_64-linux-gnu--12")
    expected = {"bad-node-id", "bad-jobs", "oversized", "bad-txt"}
    deadline = _deadline(10)
    while not expected <= set(dropped := a.ask_stats()):
        assert time.monotonic() < deadline, dropped
    assert a.stop()["threads"] == []
    assert [e["instance"] for e in a.events("stock")] == ["distcc@honest"]
    assert a.events("node") == []


# --- stock distccd seen by p2pcc ----------------------------------------------------------------


def test_stock_distccd_is_listed_apart_from_p2pcc_nodes(zc_bed: TestBed) -> None:
    alpha, beta, gamma = (zc_bed.add_workstation(n) for n in ("alpha", "beta", "gamma"))
    start_avahi(gamma)
    gamma.start(
        [*DISTCCD, "--zeroconf", "--jobs", "6", "--allow", f"{gamma.address}/24"],
        stderr=subprocess.DEVNULL,
    )
    # beta announces a distccd too: a p2pcc node is never listed as a stock server.
    b = Driver(beta, BETA_ID, "3632,2,5")
    a = Driver(alpha, ALPHA_ID, "3632,2,5")

    stock = a.wait_for("stock", instance="distcc@gamma")
    assert stock == {
        "event": "stock",
        "instance": "distcc@gamma",
        "addresses": stock["addresses"],
        "port": 3632,
        "loose_key": local_loose_key(),
        "cpus": os.cpu_count(),
        "jobs": 6,
    }
    assert stock["addresses"][0] == gamma.address  # IPv4 first, then its link-local IPv6
    a.wait_for("node", node_id=BETA_ID)
    a.send("quit")
    a.wait_for("stopped")
    assert [e["instance"] for e in a.events("stock")] == ["distcc@gamma"]
    assert [e["node_id"] for e in a.events("node")] == [BETA_ID]
    b.stop()


# --- p2pcc seen by a stock distcc client (the done-when check) -------------------------------


def test_stock_distcc_client_uses_a_p2pcc_workstation(zc_bed: TestBed, tmp_path: Path) -> None:
    alpha, beta = zc_bed.add_workstation("alpha"), zc_bed.add_workstation("beta")
    start_avahi(beta)  # the stock client's zeroconf goes through avahi
    log = tmp_path / "distccd.log"
    with log.open("w") as log_file:
        alpha.start(
            [*DISTCCD, "--log-level", "info", "--allow", f"{alpha.address}/24"],
            stderr=log_file,
        )
    a = Driver(alpha, ALPHA_ID, "3632,2,5")
    a.wait_for("started")

    distcc_dir = tmp_path / "distcc"
    distcc_dir.mkdir()
    listed = poll_show_hosts(beta, distcc_dir, lambda out: alpha.address in out, timeout=15)
    assert listed == f"{alpha.address}:3632/5\n"

    (tmp_path / "hello.c").write_text("int hello(void) { return 42; }\n")
    env = dict(os.environ, DISTCC_HOSTS="+zeroconf", DISTCC_DIR=str(distcc_dir))
    env["DISTCC_FALLBACK"] = "0"  # a local compile would be a failure, not a silent success
    compiled = beta.run(
        ["distcc", "gcc", "-c", str(tmp_path / "hello.c"), "-o", str(tmp_path / "hello.o")],
        env=env,
        timeout=30,
        check=False,
    )
    assert compiled.returncode == 0, compiled.stderr
    assert "hello.c" in log.read_text()  # alpha's distccd compiled it

    a.send("distccd off")  # distccd stopped serving: withdrawn at once
    poll_show_hosts(beta, distcc_dir, lambda out: alpha.address not in out, timeout=15)
    assert a.stop()["threads"] == []


def stock_compile(
    ws: Workstation, workdir: Path, name: str
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """One job by a stock `distcc +zeroconf` client with a fresh DISTCC_DIR (a refused host
    stays benched in the old one), that must go remote; the result and the DISTCC_DIR."""
    distcc_dir = workdir / f"distcc-{name}"
    distcc_dir.mkdir()
    source = workdir / f"{name}.c"
    source.write_text("int stock(void) { return 7; }\n")
    env = dict(os.environ, DISTCC_HOSTS="+zeroconf", DISTCC_DIR=str(distcc_dir))
    env["DISTCC_FALLBACK"] = "0"
    command = ["distcc", "gcc", "-c", str(source), "-o", str(workdir / f"{name}.o")]
    return ws.run(command, env=env, timeout=60, check=False), distcc_dir


def distccd_log(daemon: Daemon) -> str:
    path = daemon.runtime_dir / "distccd" / "distccd.log"
    return path.read_text() if path.exists() else ""


def test_a_keyed_daemon_lets_a_stock_client_in_only_when_configured(
    zc_bed: TestBed, shared_tmp: Path, key_file: Path
) -> None:
    """The done-when check with the whole daemon, and its door: a keyed pool's distccd is
    announced to stock clients, but admits one only from `distccd.allow_stock_clients`."""
    alpha, beta = zc_bed.add_workstation("alpha"), zc_bed.add_workstation("beta")
    start_avahi(beta)
    daemon = Daemon(alpha, shared_tmp / "alpha", key_file=key_file)
    daemon.start()
    refused, distcc_dir = _listed_then_compiled(daemon, beta, shared_tmp, "refused")
    assert refused.returncode != 0, refused.stdout  # the door reset it: nowhere to go
    assert beta.address not in distccd_log(daemon)  # distccd never saw it
    wait_until(lambda: _door(daemon).get("refused", 0) >= 1, 15, "the refusal counted")

    _stop(daemon)
    daemon.extra_config = f'[distccd]\nallow_stock_clients = ["{beta.address}/32"]\n'
    daemon.start()
    compiled, distcc_dir = _listed_then_compiled(daemon, beta, shared_tmp, "let-in")
    assert compiled.returncode == 0, compiled.stderr
    assert f"client: {beta.address}:" in distccd_log(daemon)  # alpha's distccd compiled it
    _stop(daemon)  # leaving: the announcement is withdrawn
    poll_show_hosts(beta, distcc_dir, lambda out: alpha.address not in out, timeout=30)


def test_an_unkeyed_pool_lets_stock_clients_in(zc_bed: TestBed, shared_tmp: Path) -> None:
    """`gossip.insecure = true`: membership proves nothing, so the door admits all of
    distccd's `allow` networks, and a stock client on the link builds there."""
    alpha, beta = zc_bed.add_workstation("alpha"), zc_bed.add_workstation("beta")
    start_avahi(beta)
    daemon = Daemon(alpha, shared_tmp / "alpha", insecure=True)
    daemon.start()
    compiled, _ = _listed_then_compiled(daemon, beta, shared_tmp, "unkeyed")
    assert compiled.returncode == 0, compiled.stderr
    status = daemon.status()
    assert status is not None
    assert f"{alpha.address.rpartition('.')[0]}.0/24" in status["node"]["door"]["open_networks"]


def _listed_then_compiled(
    daemon: Daemon, client: Workstation, workdir: Path, name: str
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Wait until `client`'s stock distcc lists the daemon's distccd, then compile there."""
    listing_dir = workdir / f"listing-{name}"
    listing_dir.mkdir()
    address = daemon.ws.address
    try:
        listed = poll_show_hosts(client, listing_dir, lambda out: address in out, timeout=30)
    except AssertionError:
        print(f"--- {daemon.ws.name}'s log\n{daemon.log_text()[-3000:]}")
        raise
    assert listed.startswith(f"{address}:3632/")
    return stock_compile(client, workdir, name)


def _door(daemon: Daemon) -> dict[str, Any]:
    status = daemon.status()
    return {} if status is None else dict(status["node"]["door"] or {})


def _stop(daemon: Daemon) -> None:
    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGTERM)
    daemon.process.wait(timeout=30)
