"""What the daemon decides about the distccd it runs, as pure functions of plain data.

The supervisor (`p2pcc.daemon.distccd.supervisor`) reads the machine (interface
addresses, the compiler whitelist, distccd's log) and hands the text or values to these
functions, which build distccd's command line, derive its allow list, judge the
whitelist, schedule restarts and explain its exits.  (Its process tree and sockets are
read with `p2pcc.core.procfs`.)  Rules kept here: distccd never runs without an explicit
`--allow` (with none, Debian's distccd 3.4 accepts any address) and never with a `/0`
network; it never runs as root; restart delays grow exponentially up to a cap and start
over once distccd has stayed up.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface

#: Where distccd looks up the compiler names it may run (the CVE-2004-2687 fix): one
#: executable entry per name, on Debian a symlink `NAME -> ../../bin/distcc`.
WHITELIST_DIR = "/usr/lib/distcc"

#: distccd's log level: "info" logs one line per finished job, with its duration.
LOG_LEVEL = "info"

#: distccd's exit statuses (distcc's exitcode.h) that a supervisor can explain.
_EXIT_REASONS = {
    101: "bad arguments",
    102: "could not listen on its port (another distccd, or the system's distcc service, "
    "holds it: stop that one or set distccd.manage = false)",
    105: "out of memory",
    107: "input/output error",
    112: "could not switch to its user (does distccd.user exist?)",
    114: "busy",
}


def distccd_argv(
    binary: str,
    *,
    listen: str,
    port: int,
    allow: Sequence[IPNetwork],
    jobs: int,
    nice: int,
    log_file: str,
    pid_file: str,
    user: str | None,
) -> list[str]:
    """The distccd command line; `user` is given only when we run as root."""
    if not allow:
        raise ValueError("distccd needs at least one --allow network: with none it accepts anyone")
    if any(network.prefixlen == 0 for network in allow):
        raise ValueError("distccd must not allow a /0 network")
    if jobs < 1:
        raise ValueError(f"distccd needs at least one job slot, got {jobs}")
    if user == "root":
        raise ValueError("distccd must not run as root")
    argv = [binary, "--daemon", "--no-detach", "--listen", listen, "--port", str(port)]
    for network in allow:
        argv += ["--allow", str(network)]
    argv += ["--jobs", str(jobs), "--nice", str(nice)]
    argv += ["--log-file", log_file, "--log-level", LOG_LEVEL, "--pid-file", pid_file]
    if user is not None:
        argv += ["--user", user]
    return argv


def default_allow(
    addresses: Iterable[IPInterface], pool_networks: Iterable[IPNetwork] = ()
) -> tuple[IPNetwork, ...]:
    """The networks of an interface's addresses, then those where other pool members live
    (`gossip.networks`), in order, without duplicates or /0."""
    networks = [address.network for address in addresses] + list(pool_networks)
    return tuple(dict.fromkeys(network for network in networks if network.prefixlen > 0))


def resolve_jobs(configured: int, slots: int) -> int:
    """distccd's `--jobs`: the configured limit, or (0) the current slot count, at least 1."""
    return configured if configured > 0 else max(1, slots)


# --- the compiler whitelist --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WhitelistProblem:
    """An offered compiler distccd would refuse to run, and what to do about it."""

    remote_name: str
    message: str


def whitelist_problems(
    remote_names: Iterable[str], entries: Collection[str], *, directory: str, link_target: str
) -> list[WhitelistProblem]:
    """One problem per remote name without an entry in distccd's whitelist, in order."""
    problems = []
    for name in dict.fromkeys(remote_names):
        if name in entries:
            continue
        message = (
            f"{name} is not in distccd's compiler whitelist {directory}, so peers' jobs for it "
            f"would fail: run `update-distcc-symlinks` as root (it lists the compilers it finds "
            f"in /usr/bin), or add it: `ln -s {link_target} {directory}/{name}`"
        )
        problems.append(WhitelistProblem(name, message))
    return problems


# --- restarts ------------------------------------------------------------------------------


class Backoff:
    """Delays before restarting a process that died: initial, doubling, capped; a run that
    lasted `reset_after` seconds starts the schedule over."""

    def __init__(
        self, initial: float, maximum: float, reset_after: float, factor: float = 2.0
    ) -> None:
        if not 0 < initial <= maximum or factor < 1 or reset_after < 0:
            raise ValueError("need 0 < initial <= maximum, factor >= 1, reset_after >= 0")
        self.initial = initial
        self.maximum = maximum
        self.reset_after = reset_after
        self.factor = factor
        self._failures = 0
        self._started_at: float | None = None

    def started(self, now: float) -> None:
        """The process was (re)started at `now`."""
        self._started_at = now

    def failed(self, now: float) -> float:
        """The process died at `now`: seconds to wait before the next start."""
        if self._started_at is not None and now - self._started_at >= self.reset_after:
            self._failures = 0
        delay = min(self.maximum, self.initial * self.factor**self._failures)
        if delay < self.maximum:
            self._failures += 1
        return delay


def explain_exit(returncode: int) -> str:
    """A distccd exit status in words, e.g. "status 102: could not listen on its port"."""
    if returncode < 0:
        return f"killed by signal {-returncode}"
    reason = _EXIT_REASONS.get(returncode)
    return f"status {returncode}: {reason}" if reason else f"status {returncode}"


#: distccd's log line: `distccd[PID] (function) SEVERITY message`; rs_log's severities.
_LOG_ERROR = re.compile(r"distccd\[(\d+)\] \(\w+\) (?:EMERGENCY! |ALERT! |CRITICAL! |ERROR: )(.*)")


def last_error(log_text: str, pid: int) -> str | None:
    """The last error (or worse) message process `pid` wrote in a piece of distccd's log."""
    found = None
    for line in log_text.splitlines():
        match = _LOG_ERROR.search(line)
        if match and int(match.group(1)) == pid:
            found = match.group(2).strip()
    return found


# --- the environment distccd runs in ------------------------------------------------------


def server_path(path: str, excluded: Collection[str]) -> str:
    """`path` without the excluded directories (compiler masquerades) or relative entries.

    distccd runs compilers by name through PATH: a masquerade directory there (distcc's
    own, or p2pcc's wrapper) would send a peer's job on to yet another machine.
    """
    kept = [entry.rstrip("/") or "/" for entry in path.split(":") if entry.startswith("/")]
    dropped = {entry.rstrip("/") or "/" for entry in excluded}
    return ":".join(dict.fromkeys(entry for entry in kept if entry not in dropped))
