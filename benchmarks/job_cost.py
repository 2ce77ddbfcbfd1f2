"""What one distributed compile costs in CPU, next to the same compile done at home.

Of the CPU a distributed build uses, how much is distribution itself: the client's
preprocessing and sending, distccd's receiving and answering, p2pcc's job guard and its
bubblewrap sandbox?  The same compiles, one at a time (nothing overlaps), each source
in the three ways in turn (rounds alternate the order, the machine's drift is shared):

* `local`: `gcc-12 -c` here;
* `distcc`: `distcc gcc-12 -c` to a plain distccd on 127.0.0.1 (one slot, user nobody);
* `guarded`: the same to a distccd behind p2pcc's job guard and sandbox, put in place
  as the daemon does (`guard_files.prepare_guard`: DISTCC_CMDLIST, TMPDIR its job dir).

The compiles: the first 80 sorted C sources of BoringSSL's libcrypto without `bcm.c`
(11 CPU-s alone; tests/integration/project.py), `-O2 -g` and its include flags.  Every
job must go remote (DISTCC_FALLBACK=0, a fresh DISTCC_DIR per run) and distccd's log
must show it compiled, through the guard script exactly in `guarded`.  Client CPU is
this process's RUSAGE_CHILDREN; server CPU a cgroup v1 cpuacct group per distccd (bwrap's
children, in their own pid namespace, never reach distccd's rusage).  Prints CPU-s per
mode and round (client, server, total), wall time, total / local of the same round,
then median ratios.  Needs root; run under the shared lock:

    flock /tmp/p2pcc-heavy.lock .venv/bin/python benchmarks/job_cost.py --rounds 2
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pwd
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from p2pcc.daemon.distccd.guard_files import prepare_guard
from tests.integration import bench_builds, cpu_account, project
from tests.integration.cpu_account import CGROUP_CPUACCT
from tests.integration.distccd_log_lines import JobRecord, parse_distccd_job_line
from tests.integration.project import Tree

PREFIX = "JOB-COST-FIGURE: "
PROJECT = project.BORINGSSL
COMPILER = "gcc-12"
LEFT_OUT = "bcm.c"
MODES = ("local", "distcc", "guarded")
PORTS = {"distcc": 3640, "guarded": 3641}
SERVER_USER = "nobody"
ENV = {"PATH": "/usr/bin:/bin"}
COMPILE_TIMEOUT = 120.0
SERVER_TIMEOUT = 10.0  # to start listening, to stop, to log a job's summary


def figure(text: str) -> None:
    print(PREFIX + text, flush=True)


@dataclass
class Server:
    """A distccd on 127.0.0.1, started in a cpuacct group of its own."""

    mode: str
    port: int
    process: subprocess.Popen[bytes]
    group: Path
    log: Path

    def cpu_seconds(self) -> float:
        return int((self.group / "cpuacct.usage").read_text()) / 1e9

    def jobs(self) -> list[JobRecord]:
        """Jobs logged with a compiler (not the readiness probe's empty connection)."""
        lines = self.log.read_text(errors="replace").splitlines()
        return [r for r in map(parse_distccd_job_line, lines) if r is not None and r.compiler]


@dataclass
class Cost:
    mode: str
    client: float  # CPU-s of this process's children (the compiles); server: distccd's group
    server: float
    wall: float

    @property
    def total(self) -> float:
        return self.client + self.server


def options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n", maxsplit=1)[0])
    parser.add_argument("--rounds", type=int, default=2, help="rounds of every mode (default 2)")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated subset")
    parser.add_argument("--files", type=int, default=80, help="sources compiled (default 80)")
    chosen = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root: it makes cgroups and runs distccd as user nobody")
    if not cpu_account.available():
        raise SystemExit(f"needs the cgroup v1 cpuacct controller at {CGROUP_CPUACCT}")
    return chosen


def children_cpu() -> float:
    return sum(resource.getrusage(resource.RUSAGE_CHILDREN)[:2])  # user + system


def wait_listening(server: Server) -> None:
    deadline = time.monotonic() + SERVER_TIMEOUT
    while time.monotonic() < deadline and server.process.poll() is None:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", server.port), 1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"distccd for {server.mode} is not listening on {server.port}")


def server_dir(home: Path, mode: str, user: pwd.struct_passwd) -> tuple[Path, dict[str, str]]:
    """distccd's directory for `mode` (its log file made for its user) and environment:
    the daemon's guard in `guarded`, else a job directory (TMPDIR) alike."""
    distccd_dir = home / f"{mode}-server" / "distccd"
    distccd_dir.mkdir(parents=True)
    (distccd_dir / "distccd.log").touch()
    os.chown(distccd_dir / "distccd.log", user.pw_uid, user.pw_gid)
    if mode == "guarded":
        return distccd_dir, {**ENV, **prepare_guard(distccd_dir, user, ENV)}
    (distccd_dir / "jobs").mkdir(mode=0o700)
    os.chown(distccd_dir / "jobs", user.pw_uid, user.pw_gid)
    return distccd_dir, {**ENV, "TMPDIR": str(distccd_dir / "jobs")}


@contextlib.contextmanager
def running_server(home: Path, mode: str) -> Iterator[Server]:
    """A distccd for `mode` in a new cgroup until the block ends; then stopped by its
    PID, what is left in the group killed, the group removed."""
    port = PORTS[mode]
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            raise RuntimeError(f"port {port} on 127.0.0.1 is taken")
    distccd_dir, env = server_dir(home, mode, pwd.getpwnam(SERVER_USER))
    log = distccd_dir / "distccd.log"
    argv = ["distccd", "--no-detach", "--daemon", "--listen", "127.0.0.1", "--port", str(port)]
    argv += ["--allow", "127.0.0.1/32", "--jobs", "1", "--user", SERVER_USER]
    argv += ["--log-file", str(log), "--log-level", "info"]
    group = CGROUP_CPUACCT / f"p2pcc-jobcost-{os.getpid()}-{mode}"
    group.mkdir()
    try:
        with subprocess.Popen(
            cpu_account.joined(group, argv), env=env, start_new_session=True
        ) as process:
            try:
                server = Server(mode, port, process, group, log)
                wait_listening(server)
                yield server
            finally:
                process.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(SERVER_TIMEOUT)
                cpu_account.remove_group(group)  # SIGKILL to distccd too if it still runs
    finally:
        cpu_account.remove_group(group)


def client_env(run_dir: Path, server: Server | None) -> dict[str, str]:
    """The compiles' environment: a scratch TMPDIR, and for distcc only that server."""
    scratch = run_dir / "tmp"
    scratch.mkdir(parents=True)
    env = {**ENV, "TMPDIR": str(scratch)}
    if server is not None:
        (run_dir / "distcc-dir").mkdir()
        env["DISTCC_DIR"] = str(run_dir / "distcc-dir")
        env["DISTCC_HOSTS"] = f"127.0.0.1:{server.port}/1"
        env["DISTCC_FALLBACK"] = "0"
    return env


def compile_one(mode: str, tree: Tree, source: str, obj: Path, env: dict[str, str]) -> None:
    """RuntimeError when the compile fails or leaves no object."""
    argv = [COMPILER, "-O2", "-g", *PROJECT.flags.split(), "-c", source, "-o", str(obj)]
    argv = argv if mode == "local" else ["distcc", *argv]
    done = subprocess.run(
        argv, cwd=tree.path, env=env, capture_output=True, timeout=COMPILE_TIMEOUT, check=False
    )
    if done.returncode != 0 or not obj.is_file() or obj.stat().st_size == 0:
        tail = done.stderr.decode(errors="replace")[-2000:]
        raise RuntimeError(f"{mode}: {source} failed ({done.returncode}): {tail}")


def check_served(server: Server, before: int, sources: list[str]) -> None:
    """Wait until distccd has logged a job for every source; RuntimeError unless each
    compiled, through the guard script exactly when the server is `guarded`."""
    deadline = time.monotonic() + SERVER_TIMEOUT
    while len(server.jobs()) < before + len(sources) and time.monotonic() < deadline:
        time.sleep(0.1)
    jobs = server.jobs()[before:]
    served = [j for j in jobs if j.ok and ("/guard/" in j.compiler) == (server.mode == "guarded")]
    if len(served) != len(sources) or len(jobs) != len(sources):
        raise RuntimeError(f"{server.mode}: {len(jobs)} jobs logged, {len(served)} as expected")


def measure_round(
    base: Path, tree: Tree, sources: list[str], order: tuple[str, ...], servers: dict[str, Server]
) -> dict[str, Cost]:
    """One round: each source compiled in every mode of `order` in turn (the machine's
    drift falls on all modes alike); each mode's CPU and wall time."""
    dirs = {m: base / m for m in order}
    envs = {m: client_env(dirs[m], servers.get(m)) for m in order}
    logged = {m: len(server.jobs()) for m, server in servers.items()}
    server_before = {m: server.cpu_seconds() for m, server in servers.items()}
    costs = {m: Cost(m, 0.0, 0.0, 0.0) for m in order}
    for index, source in enumerate(sources):
        for mode in order:
            client_before, started = children_cpu(), time.monotonic()
            compile_one(mode, tree, source, dirs[mode] / f"{index}.o", envs[mode])
            costs[mode].wall += time.monotonic() - started
            costs[mode].client += children_cpu() - client_before
    for mode, server in servers.items():
        check_served(server, logged[mode], sources)
        costs[mode].server = server.cpu_seconds() - server_before[mode]
    return costs


def report(cost: Cost, local: Cost | None, label: str) -> None:
    ratio = f"{cost.total / local.total:.3f}" if local else "-"
    figure(
        f"{label} {cost.mode:8} client {cost.client:6.2f} server {cost.server:6.2f}"
        f" total {cost.total:6.2f} CPU-s  wall {cost.wall:6.1f} s  total/local {ratio}"
    )


def summarize(rounds: list[dict[str, Cost]]) -> None:
    for mode in rounds[0]:
        totals = ", ".join(f"{r[mode].total:.2f}" for r in rounds)
        line = f"summary {mode:8} total CPU-s per round {totals}"
        if "local" in rounds[0]:
            ratios = [r[mode].total / r["local"].total for r in rounds]
            spread = ", ".join(f"{x:.3f}" for x in ratios)
            line += f"; total/local median {statistics.median(ratios):.3f} (per round {spread})"
        figure(line)


def run(home: Path, tree: Tree, sources: list[str], modes: tuple[str, ...], rounds: int) -> None:
    results: list[dict[str, Cost]] = []
    with contextlib.ExitStack() as stack:
        servers = {m: stack.enter_context(running_server(home, m)) for m in modes if m in PORTS}
        for number in range(1, rounds + 1):
            order = modes if number % 2 else modes[::-1]
            costs = measure_round(home / f"round-{number}", tree, sources, order, servers)
            for mode in order:
                report(costs[mode], costs.get("local"), f"round {number}")
            results.append({m: costs[m] for m in modes})
    summarize(results)


def main() -> None:
    chosen = options()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # to clean up as on ^C
    modes = tuple(m for m in chosen.modes.split(",") if m)
    if unknown := set(modes) - set(MODES):
        raise SystemExit(f"unknown modes {sorted(unknown)}; known: {', '.join(MODES)}")
    project.fetch(PROJECT)
    home = Path(tempfile.mkdtemp(prefix="p2pcc-job-cost-", dir="/dev/shm"))
    home.chmod(0o755)  # distccd's user must reach its directories
    try:
        tree, _ = bench_builds.fresh(home, "tree", PROJECT)
        compiled = (s for s in tree.sources if s.endswith(".c") and Path(s).name != LEFT_OUT)
        sources = sorted(compiled)[: chosen.files]
        figure(
            f"{len(sources)} sources of {PROJECT.requirement} ({sources[0]} .. {sources[-1]}),"
            f" {COMPILER} -O2 -g {PROJECT.flags}, each source in turn in {', '.join(modes)}"
        )
        run(home, tree, sources, modes, chosen.rounds)
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
