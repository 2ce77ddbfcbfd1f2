"""The scheduling check: p2pcc against a hand-written DISTCC_HOSTS, with a slow peer.

The demo's cluster (tests/integration/cluster.py): `client`, `fast`, `slow` (held to
15 % of one CPU by a cgroup) and `old` (gcc-11 under every gcc name).  The same real
project, Google's brotli (31 C files), is built in the client with the same `make -jN`:

* p2pcc: the compiler links first in PATH; the daemons pick the hosts;
* static: distcc's masquerade (/usr/lib/distcc first in PATH) with what a user writes by
  hand, every gcc-12 machine with equal slots: `localhost/2 FAST:3632/2 SLOW:3632/2`;
* static-fast: the same without the slow peer (`localhost/2 FAST:3632/2`), which tells
  how much of the difference is leaving the slow peer out.

Prints each build's time, the ratio, and the jobs each workstation compiled per slot it
was given (from the distccd logs; p2pcc's slots are the most any DISTCC_HOSTS line of
the client gave it during the build).  Rounds alternate the order (p2pcc first, then
static first...).  Needs root; run under the shared lock on a busy machine:

    flock /tmp/p2pcc-heavy.lock .venv/bin/python benchmarks/scheduling.py --rounds 2
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

from tests.integration.cluster import Build, Cluster, build, open_cluster

PREFIX = "SCHED-FIGURE: "
WORKSTATIONS = ("client", "fast", "slow", "old")


def figure(text: str) -> None:
    print(PREFIX + text, flush=True)


def report(result: Build) -> None:
    """One build's figures."""
    figure(f"{result.mode:6} build {result.seconds:6.1f} s  (exit {result.returncode})")
    for name in WORKSTATIONS:
        done, slots = result.jobs[name], result.slots.get(name, 0)
        per_slot = f"{done / slots:.2f} per slot" if slots else "no slot given"
        seconds, source = result.longest.get(name, (0.0, ""))
        longest = f", longest {seconds:.1f} s ({Path(source).name})" if source else ""
        figure(f"{result.mode:6}   {name:6} {done:3} jobs on {slots} slots: {per_slot}{longest}")


def run(cluster: Cluster, rounds: int, jobs: int) -> dict[str, list[Build]]:
    """`rounds` builds of each kind, alternating which goes first."""
    modes = ("p2pcc", "static", "static-fast")
    results: dict[str, list[Build]] = {mode: [] for mode in modes}
    for number in range(rounds):
        order = modes if number % 2 == 0 else modes[::-1]
        for mode in order:
            result = build(cluster, mode, jobs)
            if result.returncode != 0:
                print(result.output[-3000:])
                raise SystemExit(f"the {mode} build failed with status {result.returncode}")
            figure(f"round {number + 1} {mode} hosts: {result.hosts}")
            report(result)
            results[mode].append(result)
    return results


def summarize(results: dict[str, list[Build]]) -> None:
    """Median times, the ratio, and jobs per slot summed over the rounds."""
    median = {
        mode: statistics.median(r.seconds for r in builds) for mode, builds in results.items()
    }
    times = ", ".join(f"{mode} {seconds:.1f} s" for mode, seconds in median.items())
    for mode, builds in results.items():
        figure(f"{mode} times: " + ", ".join(f"{r.seconds:.1f} s" for r in builds))
    figure(f"median over {len(results['p2pcc'])} round(s): {times}")
    figure(f"ratio static / p2pcc = {median['static'] / median['p2pcc']:.2f}")
    figure(f"ratio static-fast / p2pcc = {median['static-fast'] / median['p2pcc']:.2f}")
    for mode, builds in results.items():
        for name in ("client", "fast", "slow"):
            done = sum(r.jobs[name] for r in builds)
            given = sum(r.slots.get(name, 0) for r in builds)
            per_slot = f"{done / given:.2f} per slot" if given else "no slot given"
            figure(f"{mode:6} {name}: {done} jobs on {given} slot(s) in all: {per_slot}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=1, help="builds of each kind (default 1)")
    parser.add_argument("--jobs", type=int, default=6, help="make -j for both (default 6)")
    options = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root: it makes network namespaces")
    home = Path(tempfile.mkdtemp(prefix="p2pcc-scheduling-"))
    home.chmod(0o755)
    try:
        with open_cluster(home, step=lambda text: print(f"== {text}", flush=True)) as cluster:
            for name, peer in cluster.peers().items():
                figure(
                    f"client sees {name}: cpus {peer['cpus']} slots {peer['slots']}"
                    f" power {peer['power']:.2f}"
                )
            recommended = cluster.p2pcc("jobs").strip()
            figure(f"make -j{options.jobs} for both; p2pcc recommends -j{recommended}")
            summarize(run(cluster, options.rounds, options.jobs))
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
