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
`p2pcc` build every workstation's load average is let fall below 0.3 (at most 150 s),
so the previous mode's load does not look like busy desktop owners.

The ideal is the three builds' work over the pool's capacity (4 x 0.5 CPU), the work
measured two ways before and after the modes in the same run: the CPU seconds of one
local build (`make -j2` in the unthrottled `sched`, its cgroup's cpuacct counter), and
issue 13's "each alone": one local build's wall time alone on the half-CPU workstation
`d` (daemons stopped) times its half CPU.  The pool's CPU busy %
is the four workstations' cpuacct counters over capacity x window (the first start to
the last end).  Jobs served per workstation come from the distccd logs (icecream: the
clients' icecc logs).  Needs root; run under the shared lock:

    flock /tmp/p2pcc-heavy.lock .venv/bin/python benchmarks/concurrent_clients.py
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration import bench_builds, icecream, project
from tests.integration.concurrent_pool import (
    CLIENTS,
    CPU_SHARE,
    NAMES,
    ModeResult,
    Pool,
    Reference,
    open_pool,
    reference_work,
    run_mode,
)

PREFIX = "CONCURRENT-FIGURE: "
MODES = ("p2pcc", "hand", "icecream")


def figure(text: str) -> None:
    print(PREFIX + text, flush=True)


def report(result: ModeResult) -> None:
    """One mode's figures as it ends: makespans, their spread, busy %, jobs."""
    spans = result.makespans
    each = "  ".join(f"{name} {spans[name]:6.1f} s" for name in CLIENTS)
    figure(f"{result.mode:8} makespans {each}  ({result.jobs_note})")
    last = "  ".join(f"{name} {result.last_object.get(name, 0):6.1f} s" for name in CLIENTS)
    figure(f"{result.mode:8} last object  {last}  (written, after each build's start)")
    figure(
        f"{result.mode:8} mean {statistics.mean(spans.values()):6.1f} s"
        f"  max/min {max(spans.values()) / min(spans.values()):.2f}"
        f"  pool CPU busy {result.busy:.0%} over {result.window:.1f} s"
    )
    served = "  ".join(f"{name} {result.served.get(name, 0):3}" for name in NAMES)
    local = "  ".join(f"{name} {result.local.get(name, 0):3}" for name in CLIENTS)
    figure(f"{result.mode:8} jobs served by distccd/iceccd: {served};  compiled at home: {local}")
    daemons = "  ".join(f"{name} {result.daemon_cpu.get(name, 0):5.1f}" for name in NAMES)
    figure(f"{result.mode:8} daemons' CPU-s (helpers they ran included): {daemons}")
    busy = "  ".join(f"{name} {result.busy_by_station.get(name, 0):.0%}" for name in NAMES)
    figure(f"{result.mode:8} each workstation busy (to the end of the last build): {busy}")
    if result.cpu_by_command:
        top = sorted(result.cpu_by_command.items(), key=lambda item: -item[1])[:14]
        split = "  ".join(f"{name} {seconds:.1f}" for name, seconds in top)
        figure(f"{result.mode:8} CPU-s by command (exited processes, whole machine): {split}")
    if result.lines:
        figure(f"{result.mode:8} gcc lines the wrappers read: {result.lines}")
    if result.measured:
        figure(f"{result.mode:8} peers as the clients measured them at the end: {result.measured}")
    if not result.complete:
        figure(f"{result.mode:8} INCOMPLETE: a build failed or left objects missing")


def summarize(results: dict[str, list[ModeResult]], ideals: dict[str, float]) -> None:
    """Each mode over the rounds: mean makespan, spread, ratios to both ideals, busy %."""
    cpu, alone = ideals["cpu"], ideals["alone"]
    for mode, runs in results.items():
        for number, result in enumerate(runs, 1):
            spans = result.makespans.values()
            mean = statistics.mean(spans)
            figure(
                f"summary r{number} {mode:8} mean {mean:6.1f} s  mean/ideal {mean / cpu:.2f}"
                f" (alone {mean / alone:.2f})  max/ideal {max(spans) / cpu:.2f}"
                f" (alone {max(spans) / alone:.2f})  max/min {max(spans) / min(spans):.2f}"
                f"  busy {result.busy:.0%}"
            )
        if len(runs) > 1:
            means = [statistics.mean(r.makespans.values()) for r in runs]
            overall = statistics.mean(means)
            figure(
                f"summary {mode:8} over the rounds: {overall:.1f} s, {overall / cpu:.2f}"
                f" (alone {overall / alone:.2f})"
            )


def run(pool: Pool, rounds: int, modes: tuple[str, ...]) -> dict[str, list[ModeResult]]:
    results: dict[str, list[ModeResult]] = {mode: [] for mode in modes}
    for number in range(rounds):
        order = modes if number % 2 == 0 else modes[::-1]
        for mode in order:
            result = run_mode(pool, mode, f"r{number + 1}-{mode}", figure)
            report(result)
            results[mode].append(result)
    return results


def ideals_of(references: list[Reference]) -> dict[str, float]:
    """The ideal makespan of three builds, two ways (each from the mean of the run's
    references: the same build's CPU seconds vary by up to 20 % on this shared machine).

    * `cpu`: three local builds' CPU seconds (unthrottled) over the pool's capacity;
    * `alone`: three times one build's wall time alone on a half-CPU workstation, times
      its share, over the capacity: the issue's definition ("each alone"), which counts
      what a build costs on such a workstation, make and throttling included.
    """
    capacity = len(NAMES) * CPU_SHARE
    work = statistics.mean(r.cpu_seconds for r in references)
    alone = statistics.mean(r.alone_seconds for r in references)
    ideals = {"cpu": 3 * work / capacity, "alone": 3 * alone * CPU_SHARE / capacity}
    figure(
        f"local builds: {', '.join(f'{r.cpu_seconds:.1f}' for r in references)} CPU-s"
        f" unthrottled; alone on a half-CPU workstation"
        f" {', '.join(f'{r.alone_seconds:.1f}' for r in references)} s"
    )
    figure(
        f"ideal for three builds on {len(NAMES)} x {CPU_SHARE} CPU: by CPU seconds"
        f" 3 x {work:.1f} / {capacity} = {ideals['cpu']:.1f} s;"
        f" by a build alone 3 x {alone:.1f} x {CPU_SHARE} / {capacity} = {ideals['alone']:.1f} s"
    )
    return ideals


def main() -> None:
    options = bench_builds.bench_options(__doc__ or "", MODES, pool_options=True)
    modes = tuple(m for m in options.modes.split(",") if m)
    if "icecream" in modes and not icecream.installed():
        figure("icecream: icecc is not installed here; running the other modes only")
        modes = tuple(m for m in modes if m != "icecream")
    project.fetch(project.BORINGSSL)  # before the bed: the workstations have no route out
    home = Path(tempfile.mkdtemp(prefix="p2pcc-concurrent-"))
    home.chmod(0o755)
    try:
        weight = options.local_weight
        extra = "" if weight is None else f"[ranking]\nlocal_weight = {weight}\n"
        if extra:
            figure(f"every daemon with ranking.local_weight = {weight}")
        with open_pool(home, figure, extra) as pool:
            pool.by_command = options.by_command
            references = [reference_work(pool, "reference-before")]
            first = references[0]
            figure(
                f"local build before: {first.cpu_seconds:.1f} CPU-s unthrottled,"
                f" {first.alone_seconds:.1f} s alone on a half-CPU workstation"
            )
            results = run(pool, options.rounds, modes)
            references.append(reference_work(pool, "reference-after"))
            summarize(results, ideals_of(references))
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
