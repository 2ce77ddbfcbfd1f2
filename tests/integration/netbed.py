"""A test bed of workstations made from Linux namespaces on private bridges.

Each workstation gets its own network, UTS (hostname) and mount namespace, kept alive by
bind mounts so processes can be started in it at any time with `nsenter`.  The bridge
lives in a namespace of its own with no address and no uplink, so no test packet can
reach the machine's real network.  Names carry the creating process's PID: a bed left
behind by a killed test run is found and removed by the next one.

A bed starts with one LAN (bridge and subnet, tests/integration/lans.py): IPv4
10.213.7.0/24, or IPv6-only (`TestBed(ipv6_only=True)`: fd13:7:7::/64 and link-local
addresses).  `add_lan()` adds another bridge with a subnet of its own (10.213.8.0/24, …);
a router between LANs is tests/integration/router.py.  `add_workstation(name, lan=...)`
plugs a workstation into the LAN given (the first by default).

Requires root.  Every resource is released by `close()`, which is safe to call twice
and is called by the context manager even when the test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.integration.lans import Lan, ip, link_local_address, make_bridge, plug

PREFIX = "p2t"
SUBNET = "10.213.7"  # private, exists only on the bed's bridge
#: The ULA /64 of an IPv6-only LAN, by the subnet's number (fd13:7:7::, fd13:7:8::, …).
IPV6_PREFIX = "fd13:7:{}::"
STATE_ROOT = Path("/run/p2pcc-testbed")
CGROUP_CPU = Path("/sys/fs/cgroup/cpu")
#: The nftables table (family inet, in a workstation's namespace) of the injected faults;
#: it goes with the namespace, and `clear_faults` removes it earlier.
FAULT_TABLE = "p2t_faults"
_STALE = re.compile(rf"^{PREFIX}(\d+)-")


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _unmount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def remove_stale_beds() -> None:
    """Delete namespaces and mounts of earlier runs whose process is gone."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    for line in listed.stdout.splitlines():
        name = line.split()[0] if line.strip() else ""
        match = _STALE.match(name)
        if match and not pid_alive(int(match.group(1))):
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)
    if CGROUP_CPU.is_dir():
        for cgroup in CGROUP_CPU.glob(f"{PREFIX}*-*"):
            match = _STALE.match(cgroup.name)
            if match and not pid_alive(int(match.group(1))):
                _remove_cgroup(cgroup)
    if STATE_ROOT.is_dir():
        for bed_dir in STATE_ROOT.iterdir():
            if bed_dir.name.isdigit() and not pid_alive(int(bed_dir.name)):
                for ns_file in bed_dir.glob("*/*"):
                    _unmount(ns_file)
                _unmount(bed_dir)
                subprocess.run(["rm", "-rf", str(bed_dir)], check=False)


@dataclass
class Workstation:
    """One namespace workstation: run commands in it, start processes, cut its link."""

    bed: TestBed
    name: str
    index: int
    address: str  # IPv4, or on an IPv6-only LAN the global (ULA) address
    netns: str
    ns_dir: Path
    lan: Lan
    link_local: str | None = None  # IPv6-only LANs: eth0's link-local address, no scope
    processes: list[subprocess.Popen[Any]] = field(default_factory=list)
    cgroup: Path | None = None  # set by `throttle`: processes started later run in it

    def enter(self) -> list[str]:
        """The command prefix that runs a program inside this workstation."""
        if self.cgroup is not None:
            # The shell joins the cgroup, then execs nsenter: everything started in the
            # workstation from now on inherits the CPU limit.
            join = 'echo $$ > "$0" && exec "$@"'
            return ["sh", "-c", join, str(self.cgroup / "cgroup.procs"), *self._nsenter()]
        return self._nsenter()

    def _nsenter(self) -> list[str]:
        return [
            "nsenter",
            f"--net=/run/netns/{self.netns}",
            f"--uts={self.ns_dir / 'uts'}",
            f"--mount={self.ns_dir / 'mnt'}",
            "--",
        ]

    def run(
        self, args: Sequence[str], *, timeout: float = 60, check: bool = True, **kwargs: Any
    ) -> subprocess.CompletedProcess[str]:
        """Run a command to completion inside the workstation and return its result."""
        return subprocess.run(
            [*self.enter(), *args],
            timeout=timeout,
            check=check,
            capture_output=True,
            text=True,
            **kwargs,
        )

    def start(self, args: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start a long-running process in the workstation; the bed kills it on close."""
        process = subprocess.Popen([*self.enter(), *args], start_new_session=True, **kwargs)
        self.processes.append(process)
        return process

    def throttle(self, cpu_fraction: float | None) -> None:
        """Limit everything started in this workstation from now on to a share of one CPU
        (cgroup v1 cpu controller), making it a genuinely slow machine; None: a cgroup of
        its own with no limit (to count its tasks, tests/integration/own_load.py)."""
        cgroup = CGROUP_CPU / f"{PREFIX}{self.bed.run_id}-{self.name}"
        cgroup.mkdir(exist_ok=True)
        period = int((CGROUP_CPU / "cpu.cfs_period_us").read_text())
        quota = -1 if cpu_fraction is None else max(1000, int(period * cpu_fraction))
        (cgroup / "cpu.cfs_quota_us").write_text(str(quota))
        self.cgroup = cgroup

    def adopt_processes(self) -> None:
        """Move every process already running in this workstation's network namespace
        into its cgroup (`throttle` first), so they are limited and counted too."""
        assert self.cgroup is not None
        pids = subprocess.run(
            ["ip", "netns", "pids", self.netns], capture_output=True, text=True, check=True
        ).stdout.split()
        for pid in pids:
            try:
                (self.cgroup / "cgroup.procs").write_text(pid)
            except OSError:  # it ended meanwhile
                continue

    def throttled_periods(self) -> int:
        """How often the kernel has held this workstation back (`nr_throttled`)."""
        if self.cgroup is None:
            return 0
        for line in (self.cgroup / "cpu.stat").read_text().splitlines():
            if line.startswith("nr_throttled "):
                return int(line.split()[1])
        return 0

    def set_link(self, up: bool) -> None:
        """Plug or unplug this workstation's cable (its veth end on the bridge)."""
        ip("-n", self.lan.netns, "link", "set", f"v{self.index}", "up" if up else "down")

    # --- network faults (nftables in the workstation's namespace, input side) ----------

    def drop_udp(self, port: int, percent: int) -> None:
        """Lose `percent` % of the UDP datagrams arriving for `port`, each one at random
        (`numgen random`; netem is not available here): a lossy network, seen from here."""
        if not 0 <= percent <= 100:
            raise ValueError(f"percent must be 0..100, got {percent}")
        self._add_fault(f"udp-{port}", f"udp dport {port} numgen random mod 100 < {percent}")

    def allow_udp(self, port: int) -> None:
        """Remove `drop_udp(port, ...)`: datagrams for `port` arrive again."""
        self._remove_fault(f"udp-{port}")

    def block_multicast(self, group: str) -> None:
        """Drop every datagram to the multicast `group` that another workstation sent (our
        own looped-back copies still arrive): a switch that filters the group, while
        unicast and other groups (mDNS's 224.0.0.251) pass."""
        self._add_fault(f"group-{group}", f"ip daddr {group} ip saddr != {self.address}")

    def unblock_multicast(self, group: str) -> None:
        """Remove `block_multicast(group)`."""
        self._remove_fault(f"group-{group}")

    def fault_drops(self) -> dict[str, int]:
        """Packets each fault rule has dropped so far, by its name (`udp-3634`, …)."""
        drops: dict[str, int] = {}
        for rule in self._fault_rules():
            name = rule.get("comment", "")
            for statement in rule.get("expr", []):
                if "counter" in statement:
                    drops[name] = drops.get(name, 0) + int(statement["counter"]["packets"])
        return drops

    def clear_faults(self) -> None:
        """Remove every fault rule (the whole table); harmless when there is none."""
        self.run(["nft", "delete", "table", "inet", FAULT_TABLE], check=False)

    def _add_fault(self, name: str, match: str) -> None:
        self._remove_fault(name)  # one rule per name: a new percentage replaces the old
        chain = f"inet {FAULT_TABLE} input"
        self.run(["nft", "add", "table", "inet", FAULT_TABLE])
        hook = "{ type filter hook input priority 0; policy accept; }"
        self.run(["nft", f"add chain {chain} {hook}"])
        self.run(["nft", f'add rule {chain} {match} counter drop comment "{name}"'])

    def _remove_fault(self, name: str) -> None:
        for rule in self._fault_rules():
            if rule.get("comment") == name:
                handle = str(rule["handle"])
                self.run(["nft", "delete", "rule", "inet", FAULT_TABLE, "input", "handle", handle])

    def _fault_rules(self) -> list[dict[str, Any]]:
        listed = self.run(
            ["nft", "-j", "-a", "list", "chain", "inet", FAULT_TABLE, "input"], check=False
        )
        if listed.returncode != 0:  # no table or chain yet: no rule
            return []
        items = json.loads(listed.stdout)["nftables"]
        return [item["rule"] for item in items if "rule" in item]


class TestBed:
    """A bridge plus workstations; use as a context manager so it is always torn down."""

    __test__ = False  # not a pytest test class despite the name

    def __init__(self, *, ipv6_only: bool = False) -> None:
        remove_stale_beds()
        self.run_id = str(os.getpid())
        self.bridge_ns = f"{PREFIX}{self.run_id}-br"
        self.state_dir = STATE_ROOT / self.run_id
        self.workstations: list[Workstation] = []
        self.lans: list[Lan] = []
        #: Namespaces besides the workstations' and the LANs' (a router's): closed too.
        self.other_namespaces: list[str] = []
        self._closed = False
        try:
            self._make_state_dir()
            self.add_lan(ipv6_only=ipv6_only)
        except BaseException:
            self.close()
            raise

    def _make_state_dir(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        # Persistent mount/UTS namespaces are bind mounts: their parent must be private.
        subprocess.run(["mount", "--bind", str(self.state_dir), str(self.state_dir)], check=True)
        subprocess.run(["mount", "--make-private", str(self.state_dir)], check=True)

    def add_lan(self, *, ipv6_only: bool = False) -> Lan:
        """Another bridge with a private subnet of its own: the first is 10.213.7.0/24 (or
        fd13:7:7::/64), the next 10.213.8.0/24 (fd13:7:8::/64), and so on."""
        number = len(self.lans)
        netns = self.bridge_ns if number == 0 else f"{self.bridge_ns}{number + 1}"
        first_two, _, third = SUBNET.rpartition(".")
        octet = int(third) + number
        prefix = IPV6_PREFIX.format(octet) if ipv6_only else None
        lan = Lan(netns, None if ipv6_only else f"{first_two}.{octet}", prefix)
        self.lans.append(lan)
        make_bridge(lan)
        return lan

    def add_workstation(self, name: str, lan: Lan | None = None) -> Workstation:
        """Create a workstation named `name` (also its hostname) plugged into `lan`'s
        bridge (by default the bed's first LAN)."""
        lan = self.lans[0] if lan is None else lan
        index = len(self.workstations) + 1
        netns = f"{PREFIX}{self.run_id}-{name}"
        ns_dir = self.state_dir / name
        ns_dir.mkdir()
        for kind in ("mnt", "uts"):
            (ns_dir / kind).touch()
        ws = Workstation(self, name, index, lan.host_address(index + 10), netns, ns_dir, lan)
        self.workstations.append(ws)
        ip("netns", "add", netns)
        subprocess.run(
            [
                "unshare",
                f"--mount={ns_dir / 'mnt'}",
                f"--uts={ns_dir / 'uts'}",
                "--propagation",
                "private",
                "hostname",
                name,
            ],
            check=True,
        )
        plug(lan, netns, f"v{index}", index + 10)
        if lan.ipv6_only:
            ws.link_local = link_local_address(netns)
        return ws

    def close(self) -> None:
        """Kill every process started in the bed, then remove namespaces and mounts."""
        if self._closed:
            return
        self._closed = True
        for ws in self.workstations:
            for process in ws.processes:
                _kill_group(process)
        for ws in self.workstations:
            # What left its process group behind (a distccd in a session of its own whose
            # daemon was SIGKILLed, a detached helper) still lives in the namespace.
            _kill_namespace_processes(ws.netns)
            subprocess.run(["ip", "netns", "del", ws.netns], check=False, capture_output=True)
            for kind in ("mnt", "uts"):
                _unmount(ws.ns_dir / kind)
            if ws.cgroup is not None:
                _remove_cgroup(ws.cgroup)
        for netns in [*self.other_namespaces, *(lan.netns for lan in self.lans)]:
            _kill_namespace_processes(netns)
            subprocess.run(["ip", "netns", "del", netns], check=False, capture_output=True)
        _unmount(self.state_dir)
        subprocess.run(["rm", "-rf", str(self.state_dir)], check=False)

    def __enter__(self) -> TestBed:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _kill_namespace_processes(netns: str) -> None:
    """SIGKILL every process still in the network namespace, by pid."""
    listed = subprocess.run(
        ["ip", "netns", "pids", netns], check=False, capture_output=True, text=True
    )
    for pid in listed.stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


def _remove_cgroup(cgroup: Path) -> None:
    """Kill what is still in the cgroup (detached helpers), then remove it."""
    with contextlib.suppress(OSError):
        for pid in (cgroup / "cgroup.procs").read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
    for _ in range(50):  # the last killed processes leave the cgroup as they are reaped
        try:
            cgroup.rmdir()
        except OSError:
            time.sleep(0.05)
        else:
            return


def _kill_group(process: subprocess.Popen[Any], grace: float = 3.0) -> None:
    """SIGTERM the process group, SIGKILL it after `grace` seconds, and reap it."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=5)


@contextlib.contextmanager
def testbed(*names: str) -> Iterator[list[Workstation]]:
    """Workstations with the given names on one bridge, torn down on exit."""
    with TestBed() as bed:
        yield [bed.add_workstation(name) for name in names]
