"""Running real `p2pcc daemon`s on test-bed workstations and reading their status.

Each workstation gets its own configuration, runtime dir and node id under a temporary
directory; daemons are started through the bed, so the bed kills them whatever happens.
Timings are shortened (interval 0.5 s, suspect 1.5 s, dead 3 s) so liveness tests take
seconds; the defaults scale every figure by four.

Pools are keyed, as the daemon insists: unless a daemon is given a key file of its own,
it uses its bed's key (`bed_key`: one random key per test bed, so per test pool).  Only
tests about unkeyed pools ask for `insecure=True` (`gossip.insecure = true`).
`share_key` sets a pool's key up the way people do: `p2pcc keygen` on the first
workstation, its token piped into `p2pcc join` on the others.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from p2pcc.core.auth import format_key_line
from tests.integration.netbed import TestBed, Workstation

INTERVAL = 0.5
SUSPECT_AFTER = 1.5
DEAD_AFTER = 3.0
GOSSIP_PORT = 3634


@dataclass
class Daemon:
    """One workstation's daemon: its files, its process, and how to ask it things."""

    ws: Workstation
    home: Path
    extra_config: str = ""
    key_file: Path | None = None  # None: the bed's key (`bed_key`)
    insecure: bool = False  # an unkeyed pool (`gossip.insecure = true`), no key file
    own_cache: bool = False  # a cache of its own: calibrates its own speed (slow in tests)
    # Proving peers by a real compile (`[proofs]`): off unless a test is about it, so
    # that the proofs' own jobs and log lines are not taken for a build's or an attack's.
    proofs: bool = False
    process: subprocess.Popen[Any] | None = None
    log_files: list[Path] = field(default_factory=list)

    @property
    def config_path(self) -> Path:
        return self.home / "p2pcc.toml"

    @property
    def runtime_dir(self) -> Path:
        return self.home / "run"

    def write_config(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        key = (
            "insecure = true\n"
            if self.insecure
            else f'key_file = "{self.key_file or bed_key(self.ws.bed)}"\n'
        )
        self.config_path.write_text(
            f'runtime_dir = "{self.runtime_dir}"\n'
            f'[node]\nid_file = "{self.home / "node-id"}"\n'
            f'[gossip]\ninterface = "eth0"\nport = {GOSSIP_PORT}\ninterval = {INTERVAL}\n'
            f"suspect_after = {SUSPECT_AFTER}\ndead_after = {DEAD_AFTER}\n{key}"
            f"{self.extra_config}"
            # Last: extra_config may go on with [gossip] keys of its own.
            f"\n[proofs]\nenabled = {'true' if self.proofs else 'false'}\n"
        )

    def start(self) -> None:
        """Start (or restart) the daemon; its log goes to a new file each time."""
        self.write_config()
        log = self.home / f"daemon-{len(self.log_files)}.log"
        self.log_files.append(log)
        with log.open("w") as log_file:
            self.process = self.ws.start(
                [sys.executable, "-m", "p2pcc", "daemon", "-v", "--config", str(self.config_path)],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=cli_env(self.home, self.own_cache),
            )

    def stop(self) -> None:
        """Stop the daemon cleanly (SIGTERM: it leaves the pool) if it runs."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def cli(
        self, *args: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run `p2pcc ARGS --config ...` on this workstation (`input` on its stdin)."""
        return self.ws.run(
            [sys.executable, "-m", "p2pcc", *args, "--config", str(self.config_path)],
            check=check,
            timeout=30,
            env=cli_env(self.home),
            input=input,
        )

    def status(self) -> dict[str, Any] | None:
        """The daemon's status document, or None while it does not answer."""
        result = self.cli("status", "--json", check=False)
        if result.returncode != 0:
            return None
        document: dict[str, Any] = json.loads(result.stdout)
        return document

    def log_text(self) -> str:
        return "\n".join(path.read_text() for path in self.log_files if path.exists())

    def peers_by_name(self) -> dict[str, dict[str, Any]]:
        status = self.status()
        return {} if status is None else {peer["name"]: peer for peer in status["peers"]}


def bed_key(bed: TestBed) -> Path:
    """The key file of `bed`'s pool (made on first use, mode 0600): one key per test bed,
    gone with the bed."""
    path = bed.state_dir / "cluster.key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(format_key_line(os.urandom(32)) + "\n")
    return path


def share_key(daemons: Sequence[Daemon]) -> str:
    """Give `daemons` one new key as people do: `p2pcc keygen` on the first, its token
    piped into `p2pcc join` on each other one (each into its own `home/cluster.key`,
    named in its configuration).  Returns what join printed on the last one."""
    for daemon in daemons:
        daemon.key_file = daemon.home / "cluster.key"
        daemon.insecure = False
        daemon.write_config()
    token = daemons[0].cli("keygen").stdout
    assert token.startswith("p2pcc-key-1:"), token
    joined = ""
    for daemon in daemons[1:]:
        joined = daemon.cli("join", input=token).stdout
    return joined


def cli_env(home: Path, own_cache: bool = False) -> dict[str, str]:
    """The environment of a daemon or CLI: no stray P2PCC_ settings, and a fingerprint
    and calibration cache shared by the bed's workstations (they run the same
    binaries on the same CPU), or the workstation's own."""
    import os

    env = dict(os.environ)
    env["P2PCC_CACHE_DIR"] = str(home / "cache" if own_cache else home.parent / "cache")
    env.pop("P2PCC_CONFIG", None)
    env.pop("P2PCC_RUNTIME_DIR", None)
    return env


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll `predicate` every 50 ms until it returns something truthy; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def start_pool(
    bed: TestBed,
    home: Path,
    names: Sequence[str],
    key_file: Path | None = None,
    *,
    insecure: bool = False,
    timeout: float = 30,
    extra_config: Mapping[str, str] | None = None,
) -> Iterator[list[Daemon]]:
    """A daemon on a new workstation per name (with `extra_config[name]` in its file), every
    one seeing all the others alive (for a fixture: `yield from`); their log tails are
    printed afterwards, and on a slow start.  The pool's key is `key_file`, else the bed's;
    `insecure` makes it an unkeyed pool instead."""
    extra = extra_config or {}
    daemons = [
        Daemon(
            bed.add_workstation(name),
            home / name,
            extra.get(name, ""),
            key_file,
            insecure=insecure,
        )
        for name in names
    ]
    started = time.monotonic()
    for daemon in daemons:
        daemon.start()
    try:
        wait_until(lambda: all(sees_all(d, names) for d in daemons), timeout, "full tables")
    except AssertionError:
        for daemon in daemons:
            print(f"--- {daemon.ws.name}\n{daemon.log_text()[-3000:]}")
        raise
    print(
        f"\nstart to full table on {len(daemons)} workstations: {time.monotonic() - started:.2f} s"
    )
    try:
        yield daemons
    finally:
        for daemon in daemons:
            print(f"--- {daemon.ws.name} log tail\n{daemon.log_text()[-1500:]}")


def sees_all(daemon: Daemon, names: Sequence[str]) -> bool:
    """Whether `daemon` holds every other workstation of `names` alive."""
    peers = daemon.peers_by_name()
    others = {name for name in names if name != daemon.ws.name}
    return others <= {name for name, peer in peers.items() if peer["liveness"] == "alive"}
