"""`p2pcc doctor`: check this machine's p2pcc set-up and say how to fix what is wrong.

Gathers the real inputs (configuration, the daemon's status, /proc, PATH, the key file)
and runs the checks of `p2pcc.cli.doctor_checks` on them; one line per finding.  Exit status: 0
when all is well, 1 when there are warnings, 2 when something fails (docs/doctor.md).
With `--peers` it proves the peers instead (`p2pcc.cli.doctor_peers`): only the
configuration, the daemon and one line per peer and compiler.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from p2pcc.cli import doctor_checks as doctor
from p2pcc.cli.doctor_checks import Finding
from p2pcc.cli.doctor_guard import check_guard
from p2pcc.cli.doctor_keys import check_pool_key
from p2pcc.cli.door_report import check_door
from p2pcc.cli.seed_report import seed_findings
from p2pcc.config import Config, config_from_mapping, load_config
from p2pcc.control_client import DaemonNotRunningError, control_socket_path, send_request
from p2pcc.core.control_protocol import StatusRequest
from p2pcc.core.distccd_args import WHITELIST_DIR
from p2pcc.core.errors import P2pccError
from p2pcc.core.procfs import IPAddress, parse_proc_net_igmp
from p2pcc.daemon.distccd.system import check_whitelist, tcp_sockets
from p2pcc.netinfo import IPInterface, gossip_interface

#: Seconds the doctor waits for the daemon's status.
STATUS_TIMEOUT = 5.0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `doctor` command."""
    parser = sub.add_parser(
        "doctor",
        help="check this machine's set-up and explain how to fix it",
        description="Check distcc, distccd, the compiler whitelist, the daemon, multicast, "
        "peers, the compiler links on PATH and the cluster key; one line each. Exit status "
        "0: all ok, 1: warnings, 2: failures.",
    )
    parser.add_argument("--config", metavar="FILE", help="read this file instead of searching")
    parser.add_argument(
        "--peers",
        action="store_true",
        help="instead, send a tiny compile to every peer offering one of this machine's "
        "compilers and compare the object with a local compile; one line per peer and compiler",
    )
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    """Print one line per finding; the exit status is the worst level."""
    checks = run_peer_checks if args.peers else run_checks
    findings = checks(args.config, dict(os.environ))
    for finding in findings:
        print(finding.line())
    counts = {level: sum(f.level is level for f in findings) for level in doctor.Level}
    print(
        f"{counts[doctor.Level.OK]} ok, {counts[doctor.Level.WARN]} warning(s), "
        f"{counts[doctor.Level.FAIL]} failure(s)"
    )
    return int(doctor.worst(findings))


def run_checks(
    config_file: str | None, env: Mapping[str, str], whitelist_dir: str = WHITELIST_DIR
) -> list[Finding]:
    """Every check, on this machine's real inputs."""
    config, config_finding = _load(config_file, env)
    findings = [config_finding]
    path = env.get("PATH", os.defpath)
    findings += doctor.check_programs(
        lambda name: shutil.which(name, path=path), config.wrapper.distcc
    )
    status, daemon_error = _status(config)
    findings.append(doctor.check_daemon(status, daemon_error))
    interface, addresses, interface_error = _interface(config, status)
    if interface_error:
        findings.append(
            doctor.fail("interface", interface_error, "set gossip.interface in the configuration")
        )
    if addresses:
        findings.append(
            doctor.check_distccd_listening(
                tcp_sockets(), addresses, config.distccd.port, config.distccd.manage
            )
        )
    remote_names = _remote_names(status, config, env)
    findings += doctor.check_whitelist(remote_names, check_whitelist(remote_names, whitelist_dir))
    group = config.gossip.group
    if interface:
        groups = parse_proc_net_igmp(_read("/proc/net/igmp"), _read("/proc/net/igmp6"))
        findings.append(doctor.check_multicast(groups, interface, group, status is not None))
    findings.append(doctor.check_own_packets(status, group, config.gossip.port))
    findings += doctor.check_peers(status, config.gossip.port)
    findings += seed_findings(config, _interface_addresses(config))
    findings.append(doctor.check_cutoff(status))
    findings.append(check_door(status, shutil.which("nft", path=f"{path}:/usr/sbin:/sbin")))
    findings.append(check_guard(status, config.distccd.user))
    findings.append(doctor.check_duplicate_id(status))
    findings.append(doctor.check_links(path))
    findings.append(check_pool_key(config, status))
    return findings


def run_peer_checks(config_file: str | None, env: Mapping[str, str]) -> list[Finding]:
    """The configuration, the daemon, and a proof of every peer it lists."""
    config, config_finding = _load(config_file, env)
    status, daemon_error = _status(config)
    findings = [config_finding, doctor.check_daemon(status, daemon_error)]
    if status is not None:
        from p2pcc.cli.doctor_peers import prove_peers  # trio is only needed here

        findings += prove_peers(status, config.wrapper.distcc, env)
    return findings


def _load(config_file: str | None, env: Mapping[str, str]) -> tuple[Config, Finding]:
    try:
        config = load_config(config_file, dict(env))
    except P2pccError as error:
        # Go on with the defaults so the other checks still say something useful.
        return config_from_mapping({}, None), doctor.check_config("", str(error))
    return config, doctor.check_config(str(config.source or "defaults"), None)


def _status(config: Config) -> tuple[dict[str, Any] | None, str]:
    try:
        return send_request(
            control_socket_path(config), StatusRequest(), timeout=STATUS_TIMEOUT
        ), ""
    except DaemonNotRunningError as error:
        return None, str(error).partition("; ")[0]  # the fix is the finding's own
    except P2pccError as error:
        return None, str(error)


def _interface(
    config: Config, status: Mapping[str, Any] | None
) -> tuple[str, list[IPAddress], str]:
    """The gossip interface's name, the addresses peers dial, and an error if unknown."""
    try:
        info = gossip_interface(config.gossip.interface)
    except P2pccError as error:
        return "", _status_addresses(status), str(error)
    addresses = [a.ip for a in info.addresses if not a.ip.is_link_local]
    return info.name, _status_addresses(status) or addresses, ""


def _interface_addresses(config: Config) -> tuple[IPInterface, ...]:
    """The gossip interface's addresses; none when it is unknown (a finding says why)."""
    try:
        return gossip_interface(config.gossip.interface).addresses
    except P2pccError:
        return ()


def _status_addresses(status: Mapping[str, Any] | None) -> list[IPAddress]:
    if status is None:
        return []
    found = []
    for text in status.get("node", {}).get("addresses", []):
        try:
            found.append(ipaddress.ip_address(text))
        except ValueError:
            continue
    return found


def _remote_names(
    status: Mapping[str, Any] | None, config: Config, env: Mapping[str, str]
) -> list[str]:
    """The canonical remote names of this machine's compilers: from the daemon when it
    runs, else fingerprinted here (cached)."""
    if status is not None:
        compilers: Sequence[Mapping[str, Any]] = status.get("node", {}).get("compilers", [])
        return [str(c.get("remote_name")) for c in compilers if c.get("remote_name")]
    from p2pcc.daemon.compilers import find_compilers  # probing is only needed here

    names = (*config.compilers.offer, *config.compilers.extra)
    return [c.fingerprint.remote_name for c in find_compilers(names, dict(env))]


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""
