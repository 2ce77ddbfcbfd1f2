"""The office of the real-build tests: four namespace workstations, their daemons, builds.

* `client`: gcc-12, the machine's default, with `p2pcc install-links` done; it also
  offers gcc-11 (`[compilers] extra`) so that `CC=gcc-11` builds can go out, and treats
  its state file as stale after 4 s, so a crashed daemon is noticed quickly;
* `peer12`: gcc-12 too, default compiler lists (so it does not offer gcc-11);
* `mixed`: `gcc`, `cc`, `g++` … run gcc-11, the real gcc-12 keeps its versioned names
  and is offered through `[compilers] extra`;
* `pure11`: every gcc name runs gcc-11, `x86_64-linux-gnu-gcc-12` included, and its
  `[compilers] extra` lists the gcc-12 names as on `mixed`.

Each runs a real `p2pcc daemon` serving with its own distccd.  The bed shares one kernel,
so each workstation sees an idle `/proc/loadavg` of its own: otherwise every build would
make all daemons offer 0 slots for a minute after it.  Builds run `make` in the client,
each with a fresh tree, a DISTCC_DIR that does not exist yet (the wrapper must make it)
and a session of its own (a build is what the wrapper warns once for).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from p2pcc import statefile
from p2pcc.control_client import send_request
from p2pcc.core.control_protocol import RemeasureRequest, StatusRequest
from p2pcc.core.errors import P2pccError
from p2pcc.core.ranking import straggler_threshold
from tests.integration import project, workstation_compilers
from tests.integration.distccd_jobs import (
    jobs_since,
    kill_orphaned_distccd,
    log_marks,
    serving,
)
from tests.integration.distccd_log_lines import JobRecord
from tests.integration.netbed import TestBed
from tests.integration.pool import Daemon, cli_env, wait_until
from tests.integration.project import Tree

NAMES = ("client", "peer12", "mixed", "pure11")
PEERS = NAMES[1:]
GCC12 = "x86_64-linux-gnu-gcc-12"
GXX12 = "x86_64-linux-gnu-g++-12"
GCC11 = "x86_64-linux-gnu-gcc-11"
#: The peers whose gcc-12 is exactly the client's, and whose gcc-11 is its gcc-11.
GCC12_PEERS, GCC11_PEERS = ("peer12", "mixed"), ("pure11", "mixed")
STATE_MAX_AGE = 4.0
GCC12_NAMES = f'[compilers]\nextra = ["gcc-12", "g++-12", "{GCC12}", "{GXX12}"]\n'
EXTRA_CONFIG = {
    "client": f'[wrapper]\nstate_max_age = {STATE_MAX_AGE}\n[compilers]\nextra = ["gcc-11"]\n',
    "mixed": GCC12_NAMES,
    "pure11": GCC12_NAMES,  # its admin believes they are gcc-12
}
JOBS = 8
LOCAL_JOBS = len(os.sched_getaffinity(0))  # more gains a local build nothing
BUILD_TIMEOUT = 240.0
#: The part of brotli the quick builds compile: 10 small objects in a few seconds.
QUICK = ("c/common", "c/dec")
#: How long `wait_in_line` waits for a peer before it restarts it if a straggler.
RESTART_AFTER = 20.0
#: The file that alone takes 10 of brotli's 23 CPU-seconds: most builds leave it out
#: (30 objects in half the time), so that a module of real builds fits in minutes.
SLOWEST = ("c/enc/backward_references.c",)


@dataclass
class Build:
    """One finished `make`: how it ended and how long it took."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float
    distcc_log: Path

    def warnings(self) -> list[str]:
        """The p2pcc wrapper's messages on stderr."""
        return [line for line in self.stderr.splitlines() if line.startswith("p2pcc: ")]

    def explain(self) -> str:
        log = self.distcc_log.read_text()[-3000:] if self.distcc_log.exists() else ""
        return f"exit {self.returncode}\n{self.stderr[-3000:]}\n--- distcc log\n{log}"


@dataclass
class Office:
    """The bed, its four daemons, the client's link directory and the local builds."""

    base: Path
    daemons: dict[str, Daemon]
    links: Path
    references: dict[tuple[str, ...], Tree] = field(default_factory=dict)
    builds: int = 0

    @property
    def client(self) -> Daemon:
        return self.daemons["client"]

    def ready(self) -> dict[str, Any]:
        """Restart any daemon that is not running; the client's status once every peer
        is in a DISTCC_HOSTS line of the client's (alive, serving, matching something).

        The client forgets what its jobs measured of the peers first (`p2pcc
        remeasure`): four workstations and their builds share two CPUs here, and a
        verdict one test's build drew from that noise would otherwise keep a good peer
        out of the next test's lines for minutes."""
        since = time.time()
        for daemon in self.daemons.values():
            if daemon.process is None or daemon.process.poll() is not None:
                daemon.start()
        wait_until(lambda: remeasure_all(self.client), 60, "the client to remeasure its peers")
        try:
            wait_until(partial(self._all_peers_listed, since), 60, "every peer to be usable")
        except AssertionError:
            self.explain()
            raise
        status = self.client.status()
        assert status is not None
        return status

    def explain(self) -> None:
        """Print what decides the client's lines: each daemon's log tail, how the client
        sees each peer, and its hosts lines (for a wait on the lines that timed out)."""
        for name, daemon in self.daemons.items():
            print(f"--- {name}'s daemon log\n{daemon.log_text()[-3000:]}")
        status = control_status(self.client)
        shown = ("liveness", "state", "slots", "jobs", "load", "power", "delivered", "ranks")
        for peer in [] if status is None else status["peers"]:
            seen = {key: peer.get(key) for key in shown}
            print(f"--- the client sees {peer['name']}: {seen} turnaround {peer.get('turnaround')}")
        if status is not None:
            node = status["node"]
            print(f"--- the client itself: { {k: node[k] for k in shown if k in node} }")
        print(f"--- the client's hosts: {None if status is None else status['hosts']}")

    def _all_peers_listed(self, since: float) -> bool:
        # Polls the state file, not `p2pcc status`: a CLI call per poll would cost a
        # Python start-up each, CPU that the builds of this 2-core machine are short of.
        state = statefile.read(str(self.client.runtime_dir / statefile.FILE_NAME))
        if state is None or state[0] < since:  # none, or left by a daemon now gone
            return False
        listed = " ".join(line for _, line in state[1].values())
        return all(f" {self.daemons[n].ws.address}:" in f" {listed}" for n in PEERS)

    @property
    def state_path(self) -> Path:
        """The client's state file, which its wrapper reads on every compile."""
        return self.client.runtime_dir / statefile.FILE_NAME

    def listed(self, name: str) -> bool | None:
        """Whether workstation `name` is in any DISTCC_HOSTS line of the client's state
        file now; None while there is no readable state file."""
        state = statefile.read(str(self.state_path))
        if state is None:
            return None
        address = f"{self.daemons[name].ws.address}:"
        return any(
            word.startswith(address) for _, line in state[1].values() for word in line.split()
        )

    def _line(self, fingerprint: str) -> tuple[int, str]:
        """The client's -j and hosts line for `fingerprint` in its state file now."""
        state = statefile.read(str(self.state_path))
        return (0, "") if state is None else state[1].get(fingerprint, (0, ""))

    def in_line(self, fingerprint: str, name: str) -> bool:
        """Whether workstation `name` is in the client's hosts line for `fingerprint` now."""
        return f" {self.daemons[name].ws.address}:" in f" {self._line(fingerprint)[1]}"

    def hosts_line(self, fingerprint: str) -> str:
        """The client's -j and hosts line for `fingerprint` now, each peer by its name."""
        jobs, line = self._line(fingerprint)
        for name, daemon in self.daemons.items():
            line = line.replace(f"{daemon.ws.address}:", f"{name}:")
        return f"-j{jobs} {line}"

    def wait_in_line(self, fingerprint: str, names: tuple[str, ...], timeout: float = 90) -> None:
        """Wait until every one of `names` is in the client's line for `fingerprint`, which
        a test of where jobs go needs.

        A peer out of the line after `RESTART_AFTER` as a straggler (`straggler`) is
        restarted, once; out for any other reason, it fails the test at `timeout`.  Its
        daemon lowers the power it announces when the jobs it served ran slower than
        its load predicted (docs/metrics.md), and builds here often make that so: four
        workstations share two CPUs, each sees a load of its own, and the others'
        builds take the CPUs it predicts from.  The correction wears off over tens of
        minutes without jobs, and until then the straggler rule can hold a peer that
        served the last build out of a line whose other hosts did not (seen: after the
        C and C++ builds, mixed announced 0.55 and pure11 and the client 0.95; a CI run
        found mixed out of the gcc-11 line for 90 s).  A new daemon starts from its
        calibration."""
        try:
            for name in names:
                self._wait_in_line(fingerprint, name, timeout)
        except AssertionError:
            self.explain()
            raise

    def _wait_in_line(self, fingerprint: str, name: str, timeout: float) -> None:
        started = time.monotonic()
        looked = restarted = 0.0

        def in_line_or_restarted() -> bool:
            nonlocal looked, restarted
            if self.in_line(fingerprint, name):
                return True
            now = time.monotonic()
            if not restarted and now > max(started + RESTART_AFTER, looked + 1):
                looked = now  # a status request a second at most
                if (power := self.straggler(fingerprint, name)) is not None:
                    print(f"restarting {name}, a straggler of the line at power {power:.2f}")
                    self.daemons[name].stop()
                    self.daemons[name].start()
                    restarted = now
            return False

        wait_until(in_line_or_restarted, timeout, f"{name} in the line")

    def straggler(self, fingerprint: str, name: str) -> float | None:
        """The power `name` announces, when the client's status shows the straggler rule
        (p2pcc/core/ranking.py) keeping it out of the line for `fingerprint`: its power
        times what it delivered below the threshold the rule computes over the hosts that
        could run the line, the client included (None otherwise).  The memory factor is
        left out: 1 on these roomy workstations."""
        status = control_status(self.client)
        if status is None:
            return None
        speeds = {
            peer["name"]: (peer["power"], peer["power"] * min(1.0, peer["delivered"]))
            for peer in status["peers"]
            if fingerprint in peer["compilers"]
            and (peer["liveness"], peer["state"]) == ("alive", "active")
            and peer["slots"] > 0
        }
        if name not in speeds:
            return None
        threshold = straggler_threshold([s for _, s in speeds.values()] + [status["node"]["power"]])
        power, speed = speeds[name]
        return power if speed < threshold else None

    def wait_listed(
        self, name: str, listed: bool, timeout: float, *, since: float | None = None
    ) -> float:
        """Wait until `name` is (listed=True) or is not (False) in the client's hosts
        lines, polling the state file; the seconds it took since `since` (a
        `time.monotonic()` reading, such as the moment of a fault), or since the call."""
        started = time.monotonic() if since is None else since
        what = f"{name} to {'join' if listed else 'leave'} the client's hosts lines"
        wait_until(lambda: self.listed(name) is listed, timeout, what)
        return time.monotonic() - started

    def wait_for_job_on(self, name: str, make: subprocess.Popen[Any], timeout: float = 60) -> None:
        """Wait until `name`'s distccd serves a job of the running build `make`; fail if
        the build ends first (a fault injected then would hit no build)."""
        ws = self.daemons[name].ws
        wait_until(lambda: serving(ws) > 0 or make.poll() is not None, timeout, f"a job on {name}")
        assert make.poll() is None, f"the build ended before {name} got a job"

    def build_again_using(self, name: str) -> list[JobRecord]:
        """A short build (brotli's QUICK part, DISTCC_FALLBACK=0) that must succeed with
        the local build's objects; the jobs `name` compiled in it, which proves that a
        recovered peer is used again when the list is not empty."""
        reference = self.reference(project.BROTLI, "gcc", leave_out=SLOWEST)
        tree = self.fresh_tree(project.BROTLI, only=QUICK)
        marks = self.log_marks()
        build = self.build(tree, "gcc", links=self.links, DISTCC_FALLBACK="0")
        assert_same_objects(build, tree, reference)
        return self.jobs_since(marks)[name]

    def log_marks(self) -> dict[str, int]:
        """Where each workstation's distccd log ends now."""
        return log_marks(self.daemons)

    def jobs_since(self, marks: dict[str, int]) -> dict[str, list[JobRecord]]:
        """The client's jobs each workstation's distccd logged after `marks`."""
        jobs = jobs_since(self.daemons, marks, self.client.ws)
        summary = (f"{n} {len(j)} {sorted({r.compiler for r in j})}" for n, j in jobs.items())
        print("jobs: " + ", ".join(summary))  # seen with pytest -s
        return jobs

    def fresh_tree(
        self,
        tree_project: project.Project,
        *,
        only: tuple[str, ...] | None = None,
        leave_out: tuple[str, ...] = (),
    ) -> Tree:
        """A new unpacked tree to build (see `project.unpack`)."""
        self.builds += 1
        where = self.base / f"build-{self.builds}"
        return project.unpack(tree_project, where, only=only, leave_out=leave_out)

    def build(self, tree: Tree, compiler: str, *, links: Path | None, **extra_env: str) -> Build:
        """`make -jN CC=compiler` in the client with `links` first in PATH; without
        links (None), a local build with one job per CPU."""
        argv, env, log = self._build_setup(tree, compiler, links, extra_env)
        started = time.monotonic()
        result = self.client.ws.run(
            argv, env=env, check=False, timeout=BUILD_TIMEOUT + 30, start_new_session=True
        )
        build = Build(
            result.returncode, result.stdout, result.stderr, time.monotonic() - started, log
        )
        print(f"\n{tree.project.requirement} {compiler} links={links}: {build.seconds:.1f} s")
        return build

    def start_build(
        self, tree: Tree, compiler: str, *, links: Path, **extra_env: str
    ) -> tuple[subprocess.Popen[Any], Callable[[], Build]]:
        """Start a build like `build` in the background: its process, and a function
        that waits for it to end and returns it."""
        argv, env, log = self._build_setup(tree, compiler, links, extra_env)
        return self._start(argv, env, log, f"{tree.project.requirement} {compiler}")

    def start_p2pcc_build(
        self, tree: Tree, compiler: str
    ) -> tuple[subprocess.Popen[Any], Callable[[], Build]]:
        """Start `p2pcc build -v make` in the client, through its links and with no -j
        (the live one), like `start_build`; its output is the finished build's stderr."""
        _, env, log = self._build_setup(tree, compiler, None, {})
        env["P2PCC_CACHE_DIR"] = cli_env(self.client.home)["P2PCC_CACHE_DIR"]
        make = ["make", "-C", str(tree.path), f"{tree.project.compiler_variable}={compiler}"]
        argv = ["timeout", "-k", "5", str(BUILD_TIMEOUT), sys.executable, "-m", "p2pcc"]
        argv += ["build", "-v", "--config", str(self.client.config_path)]
        argv += ["--links", str(self.links), "--compiler", compiler, *make]
        return self._start(argv, env, log, f"p2pcc build {tree.project.requirement}")

    def _start(
        self, argv: list[str], env: dict[str, str], log: Path, label: str
    ) -> tuple[subprocess.Popen[Any], Callable[[], Build]]:
        output = self.output_path
        started = time.monotonic()
        with output.open("w") as out:
            process = self.client.ws.start(argv, env=env, stdout=out, stderr=subprocess.STDOUT)

        def finish() -> Build:
            returncode = process.wait(timeout=BUILD_TIMEOUT + 30)
            seconds = time.monotonic() - started
            print(f"\n{label} in the background: {seconds:.1f} s")
            return Build(returncode, "", output.read_text(), seconds, log)

        return process, finish

    @property
    def output_path(self) -> Path:
        """Where the output of the newest build started in the background goes."""
        return self.base / f"build-{self.builds}.out"

    def _build_setup(
        self, tree: Tree, compiler: str, links: Path | None, extra_env: dict[str, str]
    ) -> tuple[list[str], dict[str, str], Path]:
        env = build_env(links, self.base / f"distcc-dir-{self.builds}")
        log = self.base / f"distcc-{self.builds}.log"
        env.update(DISTCC_LOG=str(log), **extra_env)
        jobs = JOBS if links else LOCAL_JOBS
        return project.make_command(tree, compiler, jobs, BUILD_TIMEOUT), env, log

    def reference(
        self, tree_project: project.Project, compiler: str, *, leave_out: tuple[str, ...] = ()
    ) -> Tree:
        """The project built by `compiler` in the client without links (once per module)."""
        key = (tree_project.requirement, compiler, *leave_out)
        if key not in self.references:
            tree = self.fresh_tree(tree_project, leave_out=leave_out)
            built = self.build(tree, compiler, links=None)
            assert built.returncode == 0, built.explain()
            self.references[key] = tree
        return self.references[key]


def assert_same_objects(build: Build, tree: Tree, reference: Tree) -> None:
    """The build succeeded, left every object, and each is the local build's, code for code."""
    assert build.returncode == 0, build.explain()
    assert set(project.objects(tree.path)) == tree.object_names
    assert project.differing_objects(tree.path, reference.path) == []


def fingerprint(status: dict[str, Any], name: str) -> str:
    """The fingerprint of the client's compiler `name`, from its status."""
    found = (c["fingerprint"] for c in status["node"]["compilers"] if name in c["names"])
    return str(next(found))


def control_status(daemon: Daemon) -> dict[str, Any] | None:
    """A daemon's status document straight from its control socket (a unix socket is
    reachable from outside the workstation's namespaces, and this costs no CLI start-up);
    None while it does not answer."""
    try:
        return send_request(daemon.runtime_dir / "control", StatusRequest(), timeout=5)
    except (OSError, P2pccError):
        return None


def remeasure_all(daemon: Daemon) -> dict[str, Any] | None:
    """Have `daemon` forget what its jobs measured of every peer; its answer, None while
    it does not answer."""
    try:
        return send_request(daemon.runtime_dir / "control", RemeasureRequest(), timeout=5)
    except (OSError, P2pccError):
        return None


def peer_entry(observer: Daemon, name: str) -> dict[str, Any] | None:
    """How `observer`'s daemon sees workstation `name` now (its entry in the status
    document's peers); None when it does not list it or does not answer."""
    status = control_status(observer)
    peers = [] if status is None else status["peers"]
    return next((peer for peer in peers if peer["name"] == name), None)


def build_env(links: Path | None, distcc_dir: Path) -> dict[str, str]:
    """The environment of a build: ours without p2pcc, distcc and make settings, the
    links first in PATH, and a DISTCC_DIR that does not exist yet (the wrapper makes it)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("P2PCC_", "DISTCC_", "_DISTCC", "MAKE", "MFLAGS"))
    }
    if links is not None:
        env["PATH"] = f"{links}:{env['PATH']}"
    env["DISTCC_DIR"] = str(distcc_dir)
    return env


@contextlib.contextmanager
def open_office(*, proofs: bool = False) -> Iterator[Office]:
    """The office, ready, with the client's links installed; torn down on exit.
    `proofs`: the daemons prove their peers by a real compile (`[proofs]`)."""
    for needed in (project.BROTLI, project.FASTTEXT, project.LIBSODIUM, project.NINJA):
        project.fetch(needed)  # before the bed: the workstations have no route to PyPI
    base = Path(tempfile.mkdtemp(prefix="p2pcc-real-builds-"))
    base.chmod(0o755)  # distccd's user must reach the daemons' runtime directories
    try:
        with TestBed() as bed:
            office = _furnish(bed, base, proofs)
            try:
                started = time.monotonic()
                office.ready()
                print(f"\nfour daemons ready after {time.monotonic() - started:.1f} s")
                install_links(office.client, office.links, office.client.config_path)
                yield office
            finally:
                bed.close()
                for daemon in office.daemons.values():
                    kill_orphaned_distccd(daemon)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _furnish(bed: TestBed, base: Path, proofs: bool) -> Office:
    """The workstations with their compilers, and (not yet started) daemons."""
    stations = {name: bed.add_workstation(name) for name in NAMES}
    for ws in stations.values():
        workstation_compilers.pretend_idle(ws, base)
    layers = base / "layers"
    workstation_compilers.shadow_usr_bin(
        stations["mixed"], workstation_compilers.MIXED, layers / "mixed"
    )
    workstation_compilers.shadow_usr_bin(
        stations["pure11"], workstation_compilers.PURE11, layers / "pure11"
    )
    daemons = {
        name: Daemon(
            ws, base / name / "home", extra_config=EXTRA_CONFIG.get(name, ""), proofs=proofs
        )
        for name, ws in stations.items()
    }
    return Office(base, daemons, base / "links")


def install_links(daemon: Daemon, links: Path, config: Path) -> None:
    """`p2pcc install-links DIR --config FILE`, run in the daemon's workstation."""
    daemon.ws.run(
        [sys.executable, "-m", "p2pcc", "install-links", str(links), "--config", str(config)],
        env=cli_env(daemon.home),
    )
    assert (links / "gcc").is_symlink()
    assert (links / "g++").is_symlink()
