"""What the p2pcc links cost an autotools `./configure`, against configure without them.

    .venv/bin/python benchmarks/configure_overhead.py [--runs 8] [--no-profile]

Runs libsodium's configure (as PyNaCl's sdist bundles it, fetched and checked by
tests/integration/project.py; `--disable-shared --enable-minimal`, as the build test
runs it) RUNS times in each of three variants, interleaved so that drift hits them alike
(after a warm-up round of each):

  (a) no links: `gcc` is the compiler;
  (b) the links first in PATH, state file fresh, no peer with this compiler;
  (c) the links first in PATH, state file listing a peer (`localhost/2 127.0.0.1:9/2`,
      as benchmarks/wrapper_overhead.py): a call the wrapper finds distributable takes
      the distcc path, and distcc runs configure's sequential compiles in localhost's
      first slot, never connecting anywhere.

It prints each variant's median and spread of wall and CPU time (user + system of the
whole configure, from wait4) and the ratios (b)/(a) and (c)/(a): of the medians, judged
against the issue's target (within 5 %); the median of each round's own ratio, which
the drift between rounds of a shared machine disturbs less; and the ratio of the fastest
runs, the least disturbed by others' work.

Then, unless `--no-profile`, it counts what reaches what in one more configure of each
kind: every compiler call (a logging `gcc`/`cc` first in PATH, no links), and the calls
that reach the links' Python wrapper (the links installed with a logging interpreter),
grouped by the wrapper's own verdict (`p2pcc.wrapper.args`): the trampoline settles
the others in `sh` without starting Python.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.wrapper_overhead import REFERENCE, SYSTEM_PATH, base_environment, load
from benchmarks.wrapper_overhead import measure as measure_calls
from benchmarks.wrapper_overhead import prepare as overhead_variants
from p2pcc import cli
from p2pcc.wrapper.args import classify
from tests.integration.project import LIBSODIUM, LIBSODIUM_CONFIGURE, extract

#: The issue's target: configure through the links within 5 % of configure without.
TARGET_RATIO = 1.05


def configure_once(tree: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one `./configure` in `tree`; it must succeed."""
    argv = ["/bin/sh", "-c", f"cd {shlex.quote(str(tree))} && exec {LIBSODIUM_CONFIGURE}"]
    quiet = [(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)]
    start = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, env, file_actions=quiet)
    _, status, usage = os.wait4(pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"configure failed in {tree} (PATH={env['PATH']}); see its config.log")
    return elapsed, usage.ru_utime + usage.ru_stime


def install_links(work: Path, name: str, python: str | None) -> Path:
    """`p2pcc install-links` into work/NAME, run by `python` (default: ours)."""
    links = work / name
    config = work / "p2pcc.toml"
    config.write_text(f'runtime_dir = "{work / "run-alone"}"\n[wrapper]\nstate_max_age = 86400.0\n')
    argv = ["install-links", str(links), "--config", str(config)]
    said = io.StringIO()
    with contextlib.redirect_stdout(said), contextlib.redirect_stderr(said):
        failed = cli.main([*argv, *(["--python", python] if python else [])]) != 0
    if failed:
        raise SystemExit(f"install-links failed: {said.getvalue()}")
    return links


def prepare(work: Path) -> dict[str, dict[str, str]]:
    """The environment of each variant, with the state files and links they use."""
    base = base_environment(work)
    os.environ["PATH"] = SYSTEM_PATH
    links = f"{install_links(work, 'links', None)}:{SYSTEM_PATH}"
    return {
        "(a) no links": base,
        "(b) links, no matching peer": base
        | {"PATH": links, "P2PCC_RUNTIME_DIR": str(work / "run-alone")},
        "(c) links, peers (distcc path)": base
        | {"PATH": links, "P2PCC_RUNTIME_DIR": str(work / "run-peers")},
    }


def measure(
    variants: dict[str, dict[str, str]], tree: Path, runs: int
) -> dict[str, list[tuple[float, float]]]:
    """(wall, CPU) seconds of each variant's runs, interleaved after a warm-up round."""
    for env in variants.values():
        configure_once(tree, env)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    for run in range(runs):
        for name, env in variants.items():
            times[name].append(configure_once(tree, env))
        print(f"  round {run + 1}/{runs} done, load {load()}", flush=True)
    return times


def report(times: dict[str, list[tuple[float, float]]]) -> bool:
    """Print the table; whether every variant with links met the target."""
    names = list(times)
    base = names[0]
    wall = {n: statistics.median(t[0] for t in times[n]) for n in names}
    cpu = {n: statistics.median(t[1] for t in times[n]) for n in names}
    print(f"\n  {'variant':<32} {'wall':>7} {'min..max':>15} {'cpu':>7}   ratios to (a)")
    met = True
    for name in names:
        walls = [t[0] for t in times[name]]
        line = f"  {name:<32} {wall[name]:6.2f}s {min(walls):6.2f}..{max(walls):6.2f}s"
        line += f" {cpu[name]:6.2f}s"
        if name != base:
            ratio = wall[name] / wall[base]
            # Each round runs the variants back to back: a round's ratio is spared the
            # drift between rounds, which on a shared machine dwarfs what is measured.
            paired = statistics.median(
                mine[0] / theirs[0] for mine, theirs in zip(times[name], times[base], strict=True)
            )
            fastest = min(walls) / min(t[0] for t in times[base])
            line += f"   wall x{ratio:.3f}, paired x{paired:.3f}, fastest x{fastest:.3f}"
            line += f", cpu x{cpu[name] / cpu[base]:.3f}"
            ok = ratio <= TARGET_RATIO
            line += "  target <= x1.05: " + ("met" if ok else f"MISSED by {ratio - 1.05:.1%}")
            met = met and ok
        print(line)
    return met


def logging_program(path: Path, real: str, log: Path) -> None:
    """An executable sh script at `path` that appends its arguments to `log`, then execs
    `real` with them."""
    path.write_text(
        "#!/bin/sh\n"
        f"printf '%s\\n' \"$*\" >> {shlex.quote(str(log))}\n"
        f'exec {shlex.quote(real)} "$@"\n'
    )
    path.chmod(0o755)


def profile(work: Path, tree: Path, variants: dict[str, dict[str, str]]) -> tuple[int, int]:
    """Count every compiler call of one configure, and those that reach Python (most of
    the variants with links); print them, and return both counts."""
    calls = work / "compiler-calls.log"
    shims = work / "counting-shims"
    shims.mkdir()
    for name in ("gcc", "cc"):
        logging_program(shims / name, f"/usr/bin/{name}", calls)
    configure_once(tree, variants["(a) no links"] | {"PATH": f"{shims}:{SYSTEM_PATH}"})
    total = len(calls.read_text().splitlines())

    python_calls = work / "python-calls.log"
    interpreter = work / "logging-python"
    logging_program(interpreter, sys.executable, python_calls)
    links = install_links(work, "profiled-links", str(interpreter))
    python_calls.unlink(missing_ok=True)  # install-links ran it too
    started = 0
    for name in ("(b) links, no matching peer", "(c) links, peers (distcc path)"):
        env = variants[name] | {"PATH": f"{links}:{SYSTEM_PATH}"}
        configure_once(tree, env)
        lines = python_calls.read_text().splitlines() if python_calls.exists() else []
        python_calls.unlink(missing_ok=True)
        verdicts = collections.Counter(_verdict(line) for line in lines)
        print(f"\n  {name}: {len(lines)} of configure's {total} compiler calls start Python")
        for verdict, count in verdicts.most_common():
            print(f"    {count:5}  {verdict}")
        started = max(started, len(lines))
    return total, started


def estimate(work: Path, calls: int, python_calls: int, configure_seconds: float) -> None:
    """Print what the links should cost configure from its call counts and the costs of
    one call, measured now as benchmarks/wrapper_overhead.py does: each call pays the
    trampoline over the compiler (`cc --version`, (c) - (a)); each that starts Python
    also pays an interpreter start (`python -I -S -c pass`).  Noise from other work on
    the machine hits these 100-run medians of milliseconds far less than configures."""
    work.mkdir()
    said = io.StringIO()  # install-links' report and advice on PATH
    with contextlib.redirect_stdout(said), contextlib.redirect_stderr(said):
        variants = overhead_variants(work, None)
    command = ["cc", "--version"]
    times = measure_calls(variants, command, 100, work, [sys.executable, "-I", "-S", "-c", "pass"])
    median = {name: statistics.median(run[0] for run in runs) for name, runs in times.items()}
    names = list(variants)
    per_call = (median[names[2]] - median[names[0]]) / 1000
    python_start = median[REFERENCE] / 1000
    cost = calls * per_call + python_calls * python_start
    print(
        f"\n  estimate: {calls} calls x {per_call * 1000:.2f} ms (trampoline) + {python_calls} x "
        f"{python_start * 1000:.2f} ms (Python start) = {cost:.3f} s, "
        f"x{1 + cost / configure_seconds:.3f} of (a)'s fastest run, {configure_seconds:.2f} s"
    )


def _verdict(logged: str) -> str:
    """The wrapper's verdict on one logged call (`-I -S ENTRY LINK ARGS…`)."""
    words = logged.split()  # configure's probes have no spaces inside arguments
    args = words[4:]
    distributable, why = classify(args)
    return "distributable: " + " ".join(args[-3:]) if distributable else f"local: {why}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=8, help="runs per variant (default 8)")
    parser.add_argument("--no-profile", action="store_true", help="skip the call counts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="p2pcc-bench-configure-") as temporary:
        work = Path(temporary)
        tree = extract(LIBSODIUM, work / "src")
        variants = prepare(work)
        print(f"load average before: {load()}")
        print(f"libsodium's {LIBSODIUM_CONFIGURE}, {args.runs} runs per variant, interleaved")
        times = measure(variants, tree, args.runs)
        met = report(times)
        if not args.no_profile:
            calls, python_calls = profile(work, tree, variants)
            fastest = min(run[0] for run in times["(a) no links"])
            estimate(work / "calls", calls, python_calls, fastest)
        print(f"\nload average after: {load()}")
    print("\n" + ("target met" if met else "target missed"))
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
