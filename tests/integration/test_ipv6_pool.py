"""One pool over IPv6 only: three workstations with no IPv4 address gossip on an IPv6
group, see each other, and a real C build on one compiles on the others.

Twice: with global (ULA, fd13:7:7::/64) addresses, and with link-local addresses only,
which name a host only together with a link (`fe80::…%eth0`): the daemon puts its own
gossip interface as the scope of a peer's link-local address, since gossip (hop limit
1) comes from that link.  distcc 3.4 dials `[fe80::…%eth0]:3632`.

The build is brotli's quick part (tests/integration/office.py, QUICK) with the p2pcc
links and DISTCC_FALLBACK=0, so a job a peer cannot take fails the build instead of
compiling locally; its objects must be the local build's, and the peers' distccd logs
must show the client's jobs.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration import project
from tests.integration.distccd_jobs import kill_orphaned_distccd
from tests.integration.netbed import TestBed, Workstation
from tests.integration.peer_builds import builds_on_peers, hosts_lines
from tests.integration.pool import Daemon, sees_all, wait_until
from tests.integration.workstation_compilers import pretend_idle

pytestmark = [pytest.mark.integration, pytest.mark.netns]

NAMES = ("client", "north", "south")
PEERS = NAMES[1:]
#: A transient group of link-local scope: gossip never leaves the link.
GROUP = "ff12::7063"


@dataclass
class Pool6:
    """The IPv6-only pool: its daemons, and how they should know each other."""

    kind: str  # "global" or "link-local"
    base: Path
    daemons: dict[str, Daemon]

    def address_of(self, name: str) -> str:
        """The address the others should dial `name` at, as its peers write it."""
        ws = self.daemons[name].ws
        return ws.address if self.kind == "global" else f"{ws.link_local}%eth0"

    def client_lines(self) -> str:
        return hosts_lines(self.daemons["client"])


def _only_link_local(ws: Workstation) -> None:
    ws.run(["ip", "-6", "addr", "flush", "dev", "eth0", "scope", "global"])
    assert "scope global" not in ws.run(["ip", "-6", "addr", "show", "dev", "eth0"]).stdout


@pytest.fixture(scope="module", params=["global", "link-local"])
def pool6(request: pytest.FixtureRequest) -> Iterator[Pool6]:
    if os.geteuid() != 0:
        pytest.skip("network-namespace workstations need root")
    project.fetch(project.BROTLI)  # before the bed: the workstations have no route out
    base = Path(tempfile.mkdtemp(prefix="p2pcc-ipv6-"))
    base.chmod(0o755)  # distccd's user must reach the daemons' runtime directories
    try:
        with TestBed(ipv6_only=True) as bed:
            pool = Pool6(request.param, base, {})
            try:
                _start(bed, pool)
                yield pool
            finally:
                for daemon in pool.daemons.values():
                    print(f"--- {daemon.ws.name} log tail\n{daemon.log_text()[-2000:]}")
                bed.close()
                for daemon in pool.daemons.values():
                    kill_orphaned_distccd(daemon)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _start(bed: TestBed, pool: Pool6) -> None:
    for name in NAMES:
        ws = bed.add_workstation(name)
        if pool.kind == "link-local":
            _only_link_local(ws)
        pretend_idle(ws, pool.base)
        # Appended to the [gossip] table, after the key line Daemon writes there.
        pool.daemons[name] = Daemon(ws, pool.base / name, extra_config=f'group = "{GROUP}"\n')
    started = time.monotonic()
    for daemon in pool.daemons.values():
        daemon.start()
    wait_until(lambda: all(sees_all(d, NAMES) for d in pool.daemons.values()), 30, "full tables")
    print(f"\n{pool.kind}: full tables after {time.monotonic() - started:.1f} s")


def test_each_sees_the_others_at_their_ipv6_address(pool6: Pool6) -> None:
    for name, daemon in pool6.daemons.items():
        peers = daemon.peers_by_name()
        assert set(peers) == set(NAMES) - {name}
        for other, peer in peers.items():
            assert peer["liveness"] == "alive"
            assert peer["addresses"] == [pool6.address_of(other)], (pool6.kind, name, other)
    status = pool6.daemons["client"].status()
    assert status is not None
    assert status["counters"]["refused_addresses"] == {}


def test_a_build_compiles_on_the_peers(pool6: Pool6) -> None:
    wait_until(
        lambda: all(f"[{pool6.address_of(n)}]:3632/" in pool6.client_lines() for n in PEERS),
        60,
        "both peers in the client's hosts lines",
    )
    peers = {name: pool6.daemons[name] for name in PEERS}
    client = pool6.daemons["client"]
    jobs = builds_on_peers(client, peers, pool6.base, pool6.address_of("client"))
    print(f"\n{pool6.kind}: jobs per peer {jobs}")
