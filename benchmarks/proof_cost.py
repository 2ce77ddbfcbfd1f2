"""What one proof of a peer costs (p2pcc/core/proof.py, p2pcc/daemon/proof_run.py), next
to a plain local compile of the same tiny file, in the same run.

A plain distccd on 127.0.0.1 (user nobody, `--allow 127.0.0.1`, one slot) plays the
peer; `run_proof` proves it `--rounds` times, each round next to a `gcc-12 -O2 -c` of
the proof's source here.  Prints per round: the proof's wall time (local compile plus
distcc's run), distcc's run alone (the turnaround a proof reports), the local compile,
and the CPU time of the processes each started (this process's RUSAGE_CHILDREN; the
peer's side is distccd's own children, read from /proc after the run); then medians and
the ratio proof / local.  An hourly proof per peer and compiler costs the daemon about
the proof's CPU once an hour.  Needs root (distccd drops to nobody); run under the
shared lock:

    flock /tmp/p2pcc-heavy.lock .venv/bin/python benchmarks/proof_cost.py --rounds 20
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from p2pcc.core import proof
from p2pcc.core.proof import Outcome, ProofTarget
from p2pcc.daemon.proof_run import run_proof

COMPILER = "x86_64-linux-gnu-gcc-12"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def local_compile(scratch: Path) -> tuple[float, float]:
    """Wall and CPU seconds of `gcc-12 -O2 -c` of the proof's source here."""
    source = scratch / "p2pcc-proof.c"
    source.write_text(proof.SOURCE)
    cpu, started = children_cpu(), time.monotonic()
    argv = [COMPILER, *proof.FLAGS, "-c", str(source), "-o", str(scratch / "l.o")]
    subprocess.run(argv, check=True)
    return time.monotonic() - started, children_cpu() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="p2pcc-proof-bench-") as scratch_dir:
        scratch = Path(scratch_dir)
        scratch.chmod(0o755)
        distccd = subprocess.Popen(
            [
                "distccd",
                "--no-detach",
                "--daemon",
                "--listen",
                "127.0.0.1",
                "--port",
                str(port),
                "--allow",
                "127.0.0.1",
                "--jobs",
                "1",
                "--user",
                "nobody",
                "--log-stderr",
            ],
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_listening(port)
            server_start = _process_tree_cpu(distccd.pid)
            target = ProofTarget(
                b"\x01" * 16, "loopback", 1, "0" * 16, "c", COMPILER, f"127.0.0.1:{port}/1", True
            )
            rows = []
            for _ in range(args.rounds):
                local_wall, local_cpu = local_compile(scratch)
                cpu, started = children_cpu(), time.monotonic()
                result = trio.run(lambda: run_proof(target, distcc="distcc", env=dict(os.environ)))
                wall, spent = time.monotonic() - started, children_cpu() - cpu
                assert result.outcome is Outcome.OK, result
                rows.append((wall, result.seconds, local_wall, spent, local_cpu))
                print(
                    f"proof {wall * 1000:6.1f} ms (distcc {result.seconds * 1000:6.1f} ms), "
                    f"local {local_wall * 1000:5.1f} ms; CPU here: proof {spent * 1000:5.1f} ms, "
                    f"local {local_cpu * 1000:5.1f} ms"
                )
            server_cpu = _process_tree_cpu(distccd.pid) - server_start
        finally:
            distccd.terminate()
            distccd.wait(timeout=10)
    medians = [statistics.median(column) for column in zip(*rows, strict=True)]
    wall, turnaround, local_wall, spent, local_cpu = medians
    print(
        f"\nmedians over {args.rounds} rounds: proof {wall * 1000:.1f} ms wall "
        f"(distcc's run {turnaround * 1000:.1f} ms), local compile {local_wall * 1000:.1f} ms; "
        f"proof / local wall {wall / local_wall:.2f}"
    )
    print(
        f"CPU here per proof {spent * 1000:.1f} ms, per local compile {local_cpu * 1000:.1f} ms "
        f"(ratio {spent / local_cpu:.2f}); the peer's distccd and its compilers: "
        f"{server_cpu / args.rounds * 1000:.1f} ms per proof"
    )


def _wait_listening(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit("distccd did not listen")


def _process_tree_cpu(pid: int) -> float:
    """CPU seconds of distccd `pid` and its pre-forked workers, each with the compilers
    it waited for (utime, stime, cutime, cstime)."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if stat.parent.name == str(pid) or fields[1] == str(pid):
            ticks += sum(int(value) for value in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main()
