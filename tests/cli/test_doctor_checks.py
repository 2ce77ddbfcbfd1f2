"""Each doctor check on made-up inputs or real temporary files: what it finds and the fix."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any

import pytest

from p2pcc.cli import doctor_checks as doctor
from p2pcc.cli.doctor_checks import Finding, Level
from p2pcc.core.procfs import TCP_LISTEN, TcpSocket
from p2pcc.daemon.distccd.system import check_whitelist
from p2pcc.wrapper.lookup import ENTRY_NAME, MARKER, PYTHON_ENTRY_NAME

ADDRESS = ipaddress.ip_address("10.0.0.7")
GROUP = ipaddress.ip_address("239.192.74.70")


def levels(findings: list[Finding]) -> list[tuple[Level, str]]:
    return [(finding.level, finding.check) for finding in findings]


def test_a_finding_is_one_line_with_its_fix_unless_it_is_ok() -> None:
    assert doctor.fail("key", "mode 0644", "`chmod 600 k`").line() == (
        "FAIL  key: mode 0644; fix: `chmod 600 k`"
    )
    assert doctor.warn("peers", "none", "start some").line() == "warn  peers: none; fix: start some"
    assert doctor.ok("daemon", "running").line() == "ok    daemon: running"


def test_the_worst_level_is_the_exit_status() -> None:
    assert doctor.worst([]) is Level.OK
    assert doctor.worst([doctor.ok("a", ""), doctor.warn("b", "", "")]) == 1
    assert doctor.worst([doctor.fail("c", "", ""), doctor.warn("b", "", "")]) == 2


def test_missing_programs_fail_with_the_install_command() -> None:
    found = {"distccd": "/usr/bin/distccd"}
    findings = doctor.check_programs(found.get, "distcc")
    assert levels(findings) == [(Level.FAIL, "distcc"), (Level.OK, "distccd")]
    assert findings[0].message == "distcc (the client the compiler links run) is not on PATH"
    assert "apt install distcc" in findings[0].fix
    assert findings[1].message == "distccd is /usr/bin/distccd"


def test_config_and_daemon() -> None:
    assert doctor.check_config("/etc/p2pcc/p2pcc.toml", None).level is Level.OK
    broken = doctor.check_config("", "p2pcc.toml: gossip.port: expected an integer")
    assert (broken.level, broken.message) == (
        Level.FAIL,
        "p2pcc.toml: gossip.port: expected an integer",
    )
    assert "p2pcc config --check" in broken.fix
    down = doctor.check_daemon(None, "the p2pcc daemon is not running")
    assert (down.level, down.message) == (Level.FAIL, "the p2pcc daemon is not running")
    assert "systemctl start p2pcc" in down.fix
    status = {"node": {"name": "ws7", "state": "paused", "serving": True}}
    assert doctor.check_daemon(status, "").line() == (
        "ok    daemon: running as ws7: paused, distccd serving"
    )


def listening(address: str, port: int = 3632) -> TcpSocket:
    return TcpSocket(ipaddress.ip_address(address), port, TCP_LISTEN, 1234)


@pytest.mark.parametrize("address", ["10.0.0.7", "0.0.0.0", "::"])  # noqa: S104
def test_distccd_listening_where_peers_dial_is_ok(address: str) -> None:
    finding = doctor.check_distccd_listening([listening(address)], [ADDRESS], 3632, True)
    assert finding.line() == "ok    distccd listening: on 10.0.0.7 port 3632, where peers connect"


def test_distccd_on_loopback_only_or_another_port_fails() -> None:
    sockets = [listening("127.0.0.1"), listening("10.0.0.7", 3633)]
    finding = doctor.check_distccd_listening(sockets, [ADDRESS], 3632, manage=False)
    assert finding.level is Level.FAIL
    assert finding.message == "port 3632 listens only on 127.0.0.1; peers dial 10.0.0.7"
    assert "--listen 10.0.0.7 --port 3632" in finding.fix
    nothing = doctor.check_distccd_listening([], [ADDRESS], 3632, manage=True)
    assert nothing.message == "port 3632 listens nowhere; peers dial 10.0.0.7"
    assert "start the daemon" in nothing.fix


def test_the_whitelist_is_checked_on_a_real_directory(tmp_path: Path) -> None:
    (tmp_path / "x86_64-linux-gnu-gcc-12").symlink_to("/bin/true")
    names = ["x86_64-linux-gnu-gcc-12", "clang-14"]
    findings = doctor.check_whitelist(names, check_whitelist(names, str(tmp_path)))
    assert levels(findings) == [(Level.FAIL, "whitelist"), (Level.OK, "whitelist")]
    assert findings[0].message == (
        f"clang-14 is not in distccd's compiler whitelist {tmp_path}, so peers' jobs for it "
        "would fail"
    )
    assert findings[0].fix.startswith("run `update-distcc-symlinks` as root")
    assert f"{tmp_path}/clang-14`" in findings[0].fix
    assert findings[1].message == "distccd may run x86_64-linux-gnu-gcc-12"
    assert levels(doctor.check_whitelist([], [])) == [(Level.WARN, "whitelist")]


def test_the_group_must_be_joined_on_the_gossip_interface() -> None:
    all_hosts = ipaddress.ip_address("224.0.0.1")
    groups = {"lo": {all_hosts}, "eth0": {GROUP, all_hosts}}
    assert doctor.check_multicast(groups, "eth0", GROUP, True).line() == (
        "ok    multicast: group 239.192.74.70 joined on eth0"
    )
    wrong = doctor.check_multicast(groups, "eth1", GROUP, True)
    assert (wrong.level, wrong.message) == (
        Level.FAIL,
        "the daemon runs but group 239.192.74.70 is not joined on eth1 (joined on eth0 instead)",
    )
    assert "gossip.interface" in wrong.fix
    assert doctor.check_multicast({}, "eth0", GROUP, False).level is Level.WARN


def status(**node: Any) -> dict[str, Any]:
    return {"node": node, "peers": [], "counters": {"drops": {}}}


def test_own_packets_seen_prove_multicast_loops_back() -> None:
    seen = status()
    seen["counters"]["drops"]["own"] = 12
    assert doctor.check_own_packets(seen, GROUP, 3634).line() == (
        "ok    own packets: 12 of our own datagrams came back: multicast works here"
    )
    unseen = doctor.check_own_packets(status(), GROUP, 3634)
    assert unseen.level is Level.WARN
    assert (
        unseen.fix
        == "allow UDP to 239.192.74.70 port 3634 in this machine's firewall (nftables/iptables)"
    )
    assert doctor.check_own_packets(None, GROUP, 3634).level is Level.WARN


def test_cutoff_says_whether_hanging_jobs_are_cut_loose() -> None:
    able = doctor.check_cutoff(status(cutoff_problem=None))
    assert able.line() == (
        "ok    vanished peers: jobs hanging on a vanished peer are cut loose at once"
    )
    unable = doctor.check_cutoff(
        status(cutoff_problem="SOCK_DESTROY answers: Operation not permitted")
    )
    assert unable.level is Level.WARN
    assert unable.message == (
        "jobs hanging on a vanished peer wait out DISTCC_IO_TIMEOUT (300 s): "
        "SOCK_DESTROY answers: Operation not permitted"
    )
    assert "CAP_NET_ADMIN" in unable.fix
    assert doctor.check_cutoff(None).level is Level.WARN


def test_a_shared_node_id_is_reported_until_the_two_are_peers() -> None:
    assert doctor.check_duplicate_id(status(duplicate_id=None)).line() == (
        "ok    node id: no other machine gossips under this node's id"
    )
    shared = {
        "address": "10.0.0.2",
        "since": 1795438056.3,
        "shared_id": "c1" * 16,
        "new_id_here": False,
        "healed": False,
    }
    stuck = doctor.check_duplicate_id(status(duplicate_id=shared))
    assert stuck.level is Level.WARN
    assert stuck.message == (
        f"the machine at 10.0.0.2 uses this node's id {'c1' * 16} too (cloned from one disk "
        "image?), so the two cannot see each other until that machine takes a new id"
    )
    assert "delete its node.id_file" in stuck.fix
    assert "disk image" in stuck.fix
    healed = doctor.check_duplicate_id(
        status(duplicate_id={**shared, "new_id_here": True, "healed": True})
    )
    assert healed.line() == (
        f"ok    node id: the machine at 10.0.0.2 used this node's id {'c1' * 16} too (cloned "
        "from one disk image?); this node took a new id and the two are peers now"
    )
    assert doctor.check_duplicate_id(None).level is Level.WARN


GCC = {
    "fingerprint": "be03ec3c49bc7685",
    "names": ["gcc", "cc"],
    "family": "gcc",
    "version": "12.2.0",
}
CLANG = {
    "fingerprint": "0123456789abcdef",
    "names": ["clang"],
    "family": "clang",
    "version": "14.0.6",
}


def test_peers_and_how_many_match_each_compiler() -> None:
    document = status(compilers=[GCC, CLANG])
    document["peers"] = [
        {"name": "ws2", "liveness": "alive", "compilers": [GCC["fingerprint"]], "ranks": {}},
        {
            "name": "ws3",
            "liveness": "alive",
            "compilers": [GCC["fingerprint"]],
            "ranks": {GCC["fingerprint"]: 1},
        },
        {"name": "ws4", "liveness": "dead", "compilers": [CLANG["fingerprint"]], "ranks": {}},
    ]
    findings = doctor.check_peers(document, 3634)
    assert [f.line() for f in findings[:2]] == [
        "ok    peers: 2 live peer(s): ws2, ws3",
        "ok    matches: gcc/cc (be03ec3c49bc7685): 2 peer(s) have exactly it, 1 take jobs now",
    ]
    assert findings[2].level is Level.WARN
    assert findings[2].message == (
        "clang (0123456789abcdef): no peer has exactly this compiler, so its jobs stay here"
    )
    assert findings[2].fix.startswith("install clang 14.0.6 (the same build) on peers")


def test_no_live_peer_is_a_warning_with_the_firewall_hint() -> None:
    document = status(compilers=[GCC])
    document["peers"] = [{"name": "ws9", "liveness": "suspect", "ranks": {}}]
    (finding,) = doctor.check_peers(document, 3634)
    assert (finding.level, finding.message) == (Level.WARN, "no live peer seen (1 silent)")
    assert "UDP port 3634" in finding.fix


def make_link_dir(directory: Path, *names: str) -> Path:
    directory.mkdir()
    (directory / MARKER).write_text("")
    entry = directory / ENTRY_NAME
    entry.write_text("#!/bin/sh\nexit 1\n")
    entry.chmod(0o755)
    (directory / PYTHON_ENTRY_NAME).write_text("")
    for name in names:
        (directory / name).symlink_to(ENTRY_NAME)
    return directory


def make_compiler_dir(directory: Path, *names: str) -> Path:
    directory.mkdir()
    for name in names:
        (directory / name).write_text("#!/bin/sh\n")
        (directory / name).chmod(0o755)
    return directory


def test_a_link_directory_first_in_path_is_ok(tmp_path: Path) -> None:
    links = make_link_dir(tmp_path / "links", "cc", "gcc")
    system = make_compiler_dir(tmp_path / "bin", "cc", "gcc")
    assert doctor.check_links(f"{links}:{system}").line() == (
        f"ok    links: {links} is first in PATH for cc, gcc"
    )


def test_no_link_directory_is_a_warning_naming_install_links(tmp_path: Path) -> None:
    finding = doctor.check_links(f"{make_compiler_dir(tmp_path / 'bin', 'gcc')}:/nonexistent")
    assert finding.level is Level.WARN
    assert "p2pcc install-links" in finding.fix


def test_a_link_directory_behind_the_compilers_fails(tmp_path: Path) -> None:
    links = make_link_dir(tmp_path / "links", "gcc")
    system = make_compiler_dir(tmp_path / "bin", "gcc")
    finding = doctor.check_links(f"{system}:{links}")
    assert (
        finding.message == f"{links} comes after {system} in PATH: gcc runs {system}/gcc directly"
    )
    assert finding.fix == f'put it first: `export PATH="{links}:$PATH"` (in your shell profile)'


def test_links_that_lead_elsewhere_or_a_missing_entry_script_fail(tmp_path: Path) -> None:
    links = make_link_dir(tmp_path / "links", "gcc")
    (links / "g++").symlink_to("/usr/bin/distcc")
    finding = doctor.check_links(str(links))
    assert (finding.level, finding.message) == (
        Level.FAIL,
        f"in {links}, g++ do not lead to {ENTRY_NAME}",
    )
    (links / ENTRY_NAME).unlink()
    assert doctor.check_links(str(links)).message == (
        f"{links / ENTRY_NAME} is missing or not executable"
    )


def test_links_of_an_older_p2pcc_are_a_warning(tmp_path: Path) -> None:
    links = make_link_dir(tmp_path / "links", "gcc")
    (links / PYTHON_ENTRY_NAME).unlink()
    (links / ENTRY_NAME).write_text("#!/usr/bin/python3 -IS\nimport sys\n")
    finding = doctor.check_links(str(links))
    assert finding.level is Level.WARN
    assert "made by an older p2pcc: every compiler call starts Python" in finding.message
    assert "p2pcc install-links" in finding.fix


def test_the_cluster_key(tmp_path: Path) -> None:
    assert doctor.check_key(None).level is Level.WARN
    assert "unauthenticated" in doctor.check_key(None).message
    key = tmp_path / "cluster.key"
    assert doctor.check_key(key).message == f"{key}: No such file or directory"
    key.write_text("k\n")
    key.chmod(0o644)
    loose = doctor.check_key(key)
    assert (loose.level, loose.fix) == (Level.FAIL, f"`chmod 600 {key}`")
    key.chmod(0o600)
    assert doctor.check_key(key).line() == f"ok    key: {key} (mode 0600) authenticates the pool"
    assert doctor.check_key(key, readable=False).level is Level.WARN
    bad = doctor.check_key(key, "k: line 1: not a key")
    assert (bad.level, bad.message) == (Level.FAIL, "k: line 1: not a key")
    os.chmod(key, 0o400)
    assert doctor.check_key(key).level is Level.OK
