"""`p2pcc doctor`'s checks: each a plain function from what it inspects to findings.

A finding is a level (ok, warn, fail), the check's name, what was found and, unless it
is ok, the fix.  The checks take their inputs as arguments (the status document, what
/proc says, PATH, a key file's path) so each is tested on made-up or temporary inputs;
`p2pcc.cli.doctor_cmd` gathers the real ones.  docs/doctor.md lists every check.
"""

from __future__ import annotations

import enum
import os
import stat
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from p2pcc.core.distccd_args import WhitelistProblem
from p2pcc.core.procfs import TCP_LISTEN, IPAddress, TcpSocket, listeners
from p2pcc.wrapper.lookup import ENTRY_NAME, MARKER, PYTHON_ENTRY_NAME
from p2pcc.wrapper.trampoline import is_trampoline


class Level(enum.IntEnum):
    """How bad a finding is; the exit status of `p2pcc doctor` is the worst one."""

    OK = 0
    WARN = 1
    FAIL = 2

    @property
    def label(self) -> str:
        return {Level.OK: "ok", Level.WARN: "warn", Level.FAIL: "FAIL"}[self]


@dataclass(frozen=True, slots=True)
class Finding:
    """One check's result: its level, name, what was found and how to fix it."""

    level: Level
    check: str
    message: str
    fix: str = ""

    def line(self) -> str:
        """The finding as one line of output."""
        text = f"{self.level.label:<4}  {self.check}: {self.message}"
        return f"{text}; fix: {self.fix}" if self.fix and self.level else text


def ok(check: str, message: str) -> Finding:
    return Finding(Level.OK, check, message)


def warn(check: str, message: str, fix: str) -> Finding:
    return Finding(Level.WARN, check, message, fix)


def fail(check: str, message: str, fix: str) -> Finding:
    return Finding(Level.FAIL, check, message, fix)


def worst(findings: Iterable[Finding]) -> Level:
    """The highest level among `findings` (OK when there are none)."""
    return max((finding.level for finding in findings), default=Level.OK)


INSTALL_DISTCC = "install distcc (Debian/Ubuntu: `apt install distcc`)"
START_DAEMON = "start it: `systemctl start p2pcc` (or `p2pcc daemon` in a terminal)"


# --- programs ---------------------------------------------------------------------------------


def check_programs(which: Callable[[str], str | None], distcc: str) -> list[Finding]:
    """The distcc client (`wrapper.distcc`) and distccd are installed."""
    findings = []
    for check, program, role in (
        ("distcc", distcc, "the client the compiler links run"),
        ("distccd", "distccd", "the server that runs peers' jobs here"),
    ):
        found = which(program)
        if found:
            findings.append(ok(check, f"{program} is {found}"))
        else:
            findings.append(fail(check, f"{program} ({role}) is not on PATH", INSTALL_DISTCC))
    return findings


# --- configuration and daemon -----------------------------------------------------------------


def check_config(source: str, error: str | None) -> Finding:
    """The configuration file loads (`p2pcc config --check`)."""
    if error is None:
        return ok("config", f"{source} is valid")
    return fail("config", error, "correct the file; `p2pcc config --check` checks it again")


def check_daemon(status: Mapping[str, Any] | None, error: str) -> Finding:
    """The daemon answers on its control socket."""
    if status is None:
        return fail("daemon", error, START_DAEMON)
    node = status.get("node", {})
    state = node.get("state", "?")
    serving = "serving" if node.get("serving") else "not serving"
    return ok("daemon", f"running as {node.get('name', '?')}: {state}, distccd {serving}")


# --- distccd -----------------------------------------------------------------------------------


def check_distccd_listening(
    sockets: Sequence[TcpSocket], addresses: Sequence[IPAddress], port: int, manage: bool
) -> Finding:
    """distccd listens on an address peers dial (the gossip interface's) and the port."""
    shown = ", ".join(str(address) for address in addresses) or "no address"
    for address in addresses:
        if listeners(sockets, address, port):
            return ok("distccd listening", f"on {address} port {port}, where peers connect")
    elsewhere = sorted(
        {str(s.address) for s in sockets if s.port == port and s.state == TCP_LISTEN}
    )
    found = f"only on {', '.join(elsewhere)}" if elsewhere else "nowhere"
    fix = (
        "the daemon starts distccd itself (distccd.manage = true): start the daemon, or read "
        "its log for why distccd stopped"
        if manage
        else f"start distccd with `--listen {addresses[0] if addresses else 'ADDRESS'} "
        f"--port {port}` and an --allow list, or set distccd.manage = true"
    )
    return fail("distccd listening", f"port {port} listens {found}; peers dial {shown}", fix)


def check_whitelist(
    remote_names: Sequence[str], problems: Sequence[WhitelistProblem]
) -> list[Finding]:
    """distccd's compiler whitelist allows each local compiler's canonical remote name."""
    if not remote_names:
        return [warn("whitelist", "no local compiler found to check", "see `p2pcc fingerprint`")]
    refused = {problem.remote_name: problem.message for problem in problems}
    findings = []
    for message in refused.values():
        found, _, fix = message.partition(": ")
        findings.append(fail("whitelist", found, fix))
    allowed = [name for name in dict.fromkeys(remote_names) if name not in refused]
    if allowed:
        findings.append(ok("whitelist", f"distccd may run {', '.join(allowed)}"))
    return findings


# --- multicast ---------------------------------------------------------------------------------


def check_multicast(
    groups: Mapping[str, set[IPAddress]], interface: str, group: IPAddress, daemon_up: bool
) -> Finding:
    """The gossip group is joined on the gossip interface."""
    if group in groups.get(interface, set()):
        return ok("multicast", f"group {group} joined on {interface}")
    if not daemon_up:
        return warn("multicast", f"group {group} not joined on {interface}", START_DAEMON)
    elsewhere = sorted(name for name, joined in groups.items() if group in joined)
    where = f" (joined on {', '.join(elsewhere)} instead)" if elsewhere else ""
    return fail(
        "multicast",
        f"the daemon runs but group {group} is not joined on {interface}{where}",
        "set gossip.interface to the interface of the office network and restart the daemon",
    )


def check_own_packets(status: Mapping[str, Any] | None, group: IPAddress, port: int) -> Finding:
    """Our own multicast datagrams come back to us (counted as `drops.own`)."""
    if status is None:
        return warn("own packets", "cannot tell: the daemon is not running", START_DAEMON)
    own = status.get("counters", {}).get("drops", {}).get("own", 0)
    if own > 0:
        return ok("own packets", f"{own} of our own datagrams came back: multicast works here")
    return warn(
        "own packets",
        f"none of our own datagrams to {group} came back: multicast may be filtered here",
        f"allow UDP to {group} port {port} in this machine's firewall (nftables/iptables)",
    )


CUTOFF_FIX = (
    "run the daemon as the system service (it keeps CAP_NET_ADMIN), with `ss` (iproute2) "
    "installed; or export DISTCC_IO_TIMEOUT=60 for builds"
)


def check_cutoff(status: Mapping[str, Any] | None) -> Finding:
    """The daemon can abort our distcc connections to a peer that vanished mid-job
    (`node.cutoff_problem` is null), so such a build loses seconds, not minutes."""
    if status is None:
        return warn("vanished peers", "cannot tell: the daemon is not running", START_DAEMON)
    problem = status.get("node", {}).get("cutoff_problem")
    if problem is None:
        return ok("vanished peers", "jobs hanging on a vanished peer are cut loose at once")
    return warn(
        "vanished peers",
        f"jobs hanging on a vanished peer wait out DISTCC_IO_TIMEOUT (300 s): {problem}",
        CUTOFF_FIX,
    )


DUPLICATE_ID_FIX = (
    "if it lasts, stop p2pcc on one of the two machines, delete its node.id_file "
    "(/var/lib/p2pcc/node-id for the system service) and start it again; and delete node-id "
    "and incarnation from the disk image machines are cloned from"
)


def check_duplicate_id(status: Mapping[str, Any] | None) -> Finding:
    """No other machine gossips under this node's id (`node.duplicate_id`), or it did
    and one of the two has taken a new id since."""
    if status is None:
        return warn("node id", "cannot tell: the daemon is not running", START_DAEMON)
    shared = status.get("node", {}).get("duplicate_id")
    if shared is None:
        return ok("node id", "no other machine gossips under this node's id")
    address, node_id = shared.get("address"), shared.get("shared_id")
    renewer = "this node" if shared.get("new_id_here") else "that machine"
    if shared.get("healed"):
        return ok(
            "node id",
            f"the machine at {address} used this node's id {node_id} too (cloned from one "
            f"disk image?); {renewer} took a new id and the two are peers now",
        )
    return warn(
        "node id",
        f"the machine at {address} uses this node's id {node_id} too (cloned from one disk "
        f"image?), so the two cannot see each other until {renewer} takes a new id",
        DUPLICATE_ID_FIX,
    )


# --- peers ------------------------------------------------------------------------------------

PEERS_FIX = (
    "run p2pcc on the other workstations with the same gossip.group, gossip.port and "
    "cluster key, and let UDP port {port} through the firewalls"
)


def check_peers(status: Mapping[str, Any] | None, port: int) -> list[Finding]:
    """Peers are seen, and how many of them match each local compiler exactly."""
    if status is None:
        return [warn("peers", "cannot tell: the daemon is not running", START_DAEMON)]
    peers = [peer for peer in status.get("peers", []) if isinstance(peer, Mapping)]
    alive = [peer for peer in peers if peer.get("liveness") == "alive"]
    if not alive:
        seen = f" ({len(peers)} silent)" if peers else ""
        return [warn("peers", f"no live peer seen{seen}", PEERS_FIX.format(port=port))]
    findings = [ok("peers", f"{len(alive)} live peer(s): {_names(alive)}")]
    for compiler in status.get("node", {}).get("compilers", []):
        fingerprint = compiler.get("fingerprint", "")
        matching = [peer for peer in alive if fingerprint in peer.get("compilers", [])]
        usable = [peer for peer in matching if fingerprint in peer.get("ranks", {})]
        what = f"{'/'.join(compiler.get('names', []))} ({fingerprint})"
        if matching:
            findings.append(
                ok(
                    "matches",
                    f"{what}: {len(matching)} peer(s) have exactly it, {len(usable)} take jobs now",
                )
            )
        else:
            findings.append(
                warn(
                    "matches",
                    f"{what}: no peer has exactly this compiler, so its jobs stay here",
                    f"install {compiler.get('family', '')} {compiler.get('version', '')} "
                    "(the same build) on peers; `p2pcc fingerprint` compares them",
                )
            )
    return findings


def _names(peers: Sequence[Mapping[str, Any]]) -> str:
    names = [str(peer.get("name", "?")) for peer in peers[:5]]
    return ", ".join(names) + (", ..." if len(peers) > 5 else "")


# --- compiler links ---------------------------------------------------------------------------

LINKS_FIX = "`p2pcc install-links`, then put its directory first in PATH"


def check_links(path_value: str) -> Finding:
    """A p2pcc link directory is on PATH, its links lead to the wrapper, and each link
    comes first on PATH for its name."""
    entries = path_value.split(":")
    link_dirs = [entry for entry in entries if entry and Path(entry, MARKER).exists()]
    if not link_dirs:
        return warn("links", "no p2pcc link directory on PATH: compiles bypass p2pcc", LINKS_FIX)
    directory = Path(link_dirs[0])
    entry = directory / ENTRY_NAME
    if not os.access(entry, os.X_OK):
        return fail("links", f"{entry} is missing or not executable", "`p2pcc install-links`")
    ours = (MARKER, ENTRY_NAME, PYTHON_ENTRY_NAME)
    links = sorted(p.name for p in directory.iterdir() if p.name not in ours)
    astray = [name for name in links if not _same_file(directory / name, entry)]
    if astray:
        return fail(
            "links",
            f"in {directory}, {', '.join(astray)} do not lead to {ENTRY_NAME}",
            "`p2pcc install-links` (it rewrites them)",
        )
    for name in links:
        found = _first_on_path(name, entries)
        if found is not None and found != directory / name:
            return fail(
                "links",
                f"{directory} comes after {found.parent} in PATH: {name} runs {found} directly",
                f'put it first: `export PATH="{directory}:$PATH"` (in your shell profile)',
            )
    if not is_trampoline(directory):
        return warn(
            "links",
            f"the links in {directory} were made by an older p2pcc: every compiler call "
            "starts Python, even those that stay local",
            "`p2pcc install-links` (it upgrades them)",
        )
    return ok("links", f"{directory} is first in PATH for {', '.join(links) or 'no compiler'}")


def _same_file(path: Path, other: Path) -> bool:
    try:
        return os.path.samefile(path, other)
    except OSError:
        return False


def _first_on_path(name: str, entries: Sequence[str]) -> Path | None:
    for entry in entries:
        candidate = Path(entry or ".", name)
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


# --- cluster key ------------------------------------------------------------------------------


def check_key(
    key_file: Path | None, read_error: str | None = None, *, readable: bool = True
) -> Finding:
    """The cluster key is set, exists and is readable only by its owner; `read_error` is
    why it did not load (None when it did), `readable` false when this user may not read
    it (as it should be for anyone but the daemon's user)."""
    if key_file is None:
        return warn(
            "key",
            "no cluster key: the pool is unauthenticated, anyone on the network can join it",
            "`p2pcc keygen -o /etc/p2pcc/cluster.key`, copy the file to every node and set "
            "gossip.key_file",
        )
    try:
        mode = stat.S_IMODE(key_file.stat().st_mode)
    except OSError as error:
        return fail("key", f"{key_file}: {error.strerror}", "create it with `p2pcc keygen -o`")
    if mode & 0o077:
        return fail(
            "key",
            f"{key_file} has mode {mode:04o}: others may read the cluster key",
            f"`chmod 600 {key_file}`",
        )
    if not readable:
        return warn(
            "key",
            f"{key_file} (mode {mode:04o}) is not readable by this user, so not checked further",
            "run `p2pcc doctor` as the daemon's user (root for the system daemon)",
        )
    if read_error is not None:
        return fail("key", read_error, "check the file; `p2pcc keygen` makes a valid one")
    return ok("key", f"{key_file} (mode {mode:04o}) authenticates the pool")
