"""Several developers at once (issue 13, deliverable 4(b)): three clients, one pool.

Four namespace workstations `a`, `b`, `c`, `d`, each held to half a CPU by a cgroup v1
quota that its daemon can read (the bed's cgroup hierarchy stays visible), each showing
its daemon a load average of its own (tests/integration/own_load.py: namespaces share
`/proc/loadavg`), one keyed pool.  `a`, `b` and `c` build the same real project at the
same moment (BoringSSL's libcrypto from grpcio's sdist: 234 C files, -O2 -g), each with
a fresh tree and DISTCC_DIR, three ways in one run (rounds alternate the order):

* `p2pcc`: `p2pcc build make` through each client's own links, whatever -j it picks;
* `hand`: distcc's masquerade with the list everyone writes when everyone lists
  everyone, one slot each (half a CPU per machine): `localhost/1 X:3632/1 Y:3632/1
  Z:3632/1`, and `make -j4`: one job per slot in the line, since distcc queues a job on
  its slot locks anyway and more would only preprocess ahead on the client's half CPU;
* `icecream`: Debian's icecc 1.4, the scheduler in a fifth, unthrottled workstation
  (`sched`, a machine of its own as offices give it), an iceccd with `-m 1` (what a
  user sets for half a CPU) in each of the four workstations' cgroups, and `make -j4`,
  the cluster's slot count, as icecream's documentation advises.  Skipped, saying so,
  where icecc is not installed (setup does not install it: its package starts a
  daemon on the real network).

During `hand` and `icecream` the p2pcc daemons are stopped (SIGSTOP; distccd keeps
serving): an office using those has no p2pcc daemon eating its half CPUs.  Before a
`p2pcc` build every workstation's load average is let fall below 0.5 (at most 150 s),
so the previous mode's load does not look like busy desktop owners.

The ideal is the three builds' CPU work over the pool's capacity (4 x 0.5 CPU); the work
is one local build's CPU seconds measured in the same run (`make -j2` in `sched`, its
cgroup's cpuacct counter).  The pool's CPU busy % is the four workstations' cpuacct
counters over capacity x window (the first start to the last end).  Jobs served per
workstation come from the distccd logs (icecream: the clients' icecc logs).  Needs root;
run under the shared lock:

    flock /tmp/p2pcc-heavy.lock .venv/bin/python benchmarks/concurrent_clients.py
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration import icecream, project
from tests.integration.concurrent_pool import (
    CLIENTS,
    CPU_SHARE,
    NAMES,
    ModeResult,
    Pool,
    open_pool,
    reference_work,
    run_mode,
)

PREFIX = "CONCURRENT-FIGURE: "
MODES = ("p2pcc", "hand", "icecream")


def figure(text: str) -> None:
    print(PREFIX + text, flush=True)


def report(result: ModeResult, ideal: float) -> None:
    """One mode's figures: makespans, their spread, the ratio to the ideal, busy %."""
    spans = result.makespans
    mean = statistics.mean(spans.values())
    spread = max(spans.values()) / min(spans.values())
    each = "  ".join(f"{name} {spans[name]:6.1f} s" for name in CLIENTS)
    figure(f"{result.mode:8} makespans {each}  ({result.jobs_note})")
    figure(
        f"{result.mode:8} mean {mean:6.1f} s  max/min {spread:.2f}"
        f"  mean/ideal {mean / ideal:.2f}  max/ideal {max(spans.values()) / ideal:.2f}"
        f"  pool CPU busy {result.busy:.0%} over {result.window:.1f} s"
    )
    served = "  ".join(f"{name} {result.served.get(name, 0):3}" for name in NAMES)
    local = "  ".join(f"{name} {result.local.get(name, 0):3}" for name in CLIENTS)
    figure(f"{result.mode:8} jobs served by distccd/iceccd: {served};  compiled at home: {local}")
    if not result.complete:
        figure(f"{result.mode:8} INCOMPLETE: a build failed or left objects missing")


def summarize(results: dict[str, list[ModeResult]], ideal: float) -> None:
    """Each mode over the rounds: mean makespan, spread, ratio to the ideal, busy %."""
    for mode, runs in results.items():
        if not runs:
            continue
        means = [statistics.mean(r.makespans.values()) for r in runs]
        spreads = [max(r.makespans.values()) / min(r.makespans.values()) for r in runs]
        busy = [r.busy for r in runs]
        figure(
            f"summary {mode:8} mean makespan {statistics.mean(means):6.1f} s"
            f" ({', '.join(f'{m:.1f}' for m in means)})"
            f"  mean/ideal {statistics.mean(means) / ideal:.2f}"
            f"  max/min {', '.join(f'{s:.2f}' for s in spreads)}"
            f"  busy {', '.join(f'{b:.0%}' for b in busy)}"
        )


def run(pool: Pool, rounds: int, modes: tuple[str, ...], ideal: float) -> None:
    results: dict[str, list[ModeResult]] = {mode: [] for mode in modes}
    for number in range(rounds):
        order = modes if number % 2 == 0 else modes[::-1]
        for mode in order:
            result = run_mode(pool, mode, f"r{number + 1}-{mode}", figure)
            report(result, ideal)
            results[mode].append(result)
    summarize(results, ideal)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=1, help="rounds of every mode (default 1)")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated subset")
    options = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root: it makes network namespaces and cgroups")
    modes = tuple(m for m in options.modes.split(",") if m)
    if "icecream" in modes and not icecream.installed():
        figure("icecream: icecc is not installed here; running the other modes only")
        modes = tuple(m for m in modes if m != "icecream")
    project.fetch(project.BORINGSSL)  # before the bed: the workstations have no route out
    home = Path(tempfile.mkdtemp(prefix="p2pcc-concurrent-"))
    home.chmod(0o755)
    try:
        with open_pool(home, figure) as pool:
            work = reference_work(pool)
            ideal = 3 * work / (len(NAMES) * CPU_SHARE)
            figure(
                f"one local build: {work:.1f} CPU-s; ideal for three builds on"
                f" {len(NAMES)} x {CPU_SHARE} CPU: {ideal:.1f} s"
            )
            run(pool, options.rounds, modes, ideal)
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
