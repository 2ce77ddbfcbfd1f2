"""What the p2pcc wrapper costs per compiler call, next to the compiler and to distcc.

    .venv/bin/python benchmarks/wrapper_overhead.py [--runs 200] [--python /usr/bin/python3]

Times a compile (`cc -c tiny.c`) and three calls that stay local — a query
(`cc --version`), a link step (`cc -o tiny tiny.o`) and an autoconf probe
(`cc -c conftest.c`) — each RUNS times, the variants interleaved so drift hits them
alike (after a warm-up round):

  (a) the compiler itself;
  (b) distcc's own masquerade (/usr/lib/distcc first on PATH), DISTCC_HOSTS=localhost;
  (c) the p2pcc link, state file fresh, no peer with this compiler: the wrapper execs
      the compiler;
  (d) the p2pcc link, state file listing a peer: the wrapper execs distcc.

(d)'s line is `localhost/2 127.0.0.1:9/2`: the wrapper sees a remote host and takes the
distcc path, and distcc, which fills hosts in list order, runs every one of these
sequential compiles in localhost's first slot and never connects anywhere.  (d) then
does exactly the work of (b) plus the wrapper, so (d) - (b) is the wrapper's own cost on
the distcc path, free of network and server noise, as (c) - (a) is on the local path.

Targets on the 2-core reference machine (issue 16): a call that stays local is settled
by the links' /bin/sh trampoline without starting Python, at most 2 ms over the compiler
((c) - (a) and (d) - (a)); a compile sent to distcc at most the interpreter's own start
(the reference row) + 1 ms over distcc's masquerade ((d) - (b)).

Processes are started with posix_spawn and reaped with wait4; the spawn cost is the
same for every variant and cancels out of the differences.  Besides wall time the table
shows CPU time (user + system, from wait4), which a busy machine disturbs much less, and
a reference row, `python -I -S -c pass` with the links' interpreter: nearly all of the
wrapper's cost is that interpreter starting.  The load average is printed before and
after: on a loaded 2-core machine every figure grows, the interpreter's start most.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from p2pcc import cli, statefile
from p2pcc.compilers.probe import lookup
from p2pcc.safe_files import replace_file
from p2pcc.statefile import stamp_of

#: A call that stays local: at most this much over the compiler itself.
LOCAL_TARGET_MS = 2.0
#: A compile sent to distcc: at most the interpreter's start plus this over distcc's own.
COMPILE_MARGIN_MS = 1.0
SYSTEM_PATH = "/usr/bin:/bin"
DISTCC_MASQUERADE = "/usr/lib/distcc"


def run_once(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(wall, CPU) milliseconds of one run; the run must succeed."""
    os.chdir(cwd)
    # Found on the variant's PATH, argv[0] left as typed: what a shell or make does
    # (posix_spawnp would search *our* PATH).
    program = shutil.which(argv[0], path=env["PATH"]) or argv[0]
    start = time.perf_counter()
    pid = os.posix_spawn(program, argv, env, file_actions=_quiet())
    _, status, usage = os.wait4(pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed (environment PATH={env['PATH']})")
    return elapsed * 1000, (usage.ru_utime + usage.ru_stime) * 1000


def _quiet() -> list[tuple[int, int, str, int, int]]:
    return [(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)]


def write_state(runtime: Path, hosts: str, env: dict[str, str]) -> None:
    """A state file for cc, gcc, c++ and g++ with `hosts`, as the daemon writes it."""
    runtime.mkdir(mode=0o755)  # whatever the umask: the wrapper trusts no group-writable one
    compilers, lines = {}, {}
    for name in ("cc", "gcc", "c++", "g++"):
        fingerprint = lookup(name, env)
        stamp = stamp_of(os.stat(fingerprint.command))
        compilers[fingerprint.command] = (stamp, fingerprint.id, fingerprint.remote_name)
        lines[fingerprint.id] = (4, hosts)
    text = statefile.render(time.time(), lines, compilers)
    replace_file(str(runtime / statefile.FILE_NAME), text.encode())


def base_environment(work: Path) -> dict[str, str]:
    """What every variant's environment holds, its DISTCC_DIR made; the state files
    `run-alone` (no peer in the line) and `run-peers` (one) written in `work`."""
    (work / "distcc-dir").mkdir()
    base = {
        "PATH": SYSTEM_PATH,
        "HOME": str(work),
        "LC_ALL": "C",
        "DISTCC_DIR": str(work / "distcc-dir"),
        "XDG_RUNTIME_DIR": str(work),
        "P2PCC_CACHE_DIR": str(work / "cache"),
    }
    write_state(work / "run-alone", "localhost/2", base)
    write_state(work / "run-peers", "localhost/2 127.0.0.1:9/2", base)
    return base


def prepare(work: Path, python: str | None) -> dict[str, dict[str, str]]:
    """Links, state files and the environment of each variant."""
    (work / "tiny.c").write_text(
        "int tiny(int x) { return x + 1; }\nint main(void) { return 0; }\n"
    )
    (work / "conftest.c").write_text("int main(void) { return 0; }\n")
    base = base_environment(work)
    config = work / "p2pcc.toml"
    config.write_text(f'runtime_dir = "{work / "run-alone"}"\n[wrapper]\nstate_max_age = 86400.0\n')
    os.environ["PATH"] = SYSTEM_PATH
    install = ["install-links", str(work / "links"), "--config", str(config)]
    if cli.main([*install, *(["--python", python] if python else [])]) != 0:
        raise SystemExit("install-links failed")
    links = f"{work / 'links'}:{SYSTEM_PATH}"
    return {
        "(a) compiler": base,
        "(b) distcc masquerade, localhost": base
        | {"PATH": f"{DISTCC_MASQUERADE}:{SYSTEM_PATH}", "DISTCC_HOSTS": "localhost"},
        "(c) p2pcc, no matching peer": base
        | {"PATH": links, "P2PCC_RUNTIME_DIR": str(work / "run-alone")},
        "(d) p2pcc, peers (distcc path)": base
        | {"PATH": links, "P2PCC_RUNTIME_DIR": str(work / "run-peers")},
    }


def measure(
    variants: dict[str, dict[str, str]],
    command: list[str],
    runs: int,
    work: Path,
    reference: list[str],
) -> dict[str, list[tuple[float, float]]]:
    """(wall, CPU) milliseconds of each run of `command` under each variant, and of the
    interpreter reference, interleaved."""
    for env in variants.values():  # warm-up: page cache, pyc files, distcc's lock files
        run_once(command, env, work)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    times[REFERENCE] = []
    for _ in range(runs):
        for name, env in variants.items():
            times[name].append(run_once(command, env, work))
        times[REFERENCE].append(run_once(reference, next(iter(variants.values())), work))
    return times


#: The row of the links' interpreter starting and doing nothing.
REFERENCE = "    python -I -S -c pass"


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1]


def report(
    title: str, times: dict[str, list[tuple[float, float]]], *, is_compile: bool
) -> list[str]:
    """The table of one command (`is_compile`: one sent to distcc in (d)); returns the
    targets missed."""
    names = [name for name in times if name != REFERENCE]
    wall = {name: [run[0] for run in runs] for name, runs in times.items()}
    cpu = {name: statistics.median(run[1] for run in runs) for name, runs in times.items()}
    median = {name: statistics.median(values) for name, values in wall.items()}
    if is_compile:
        base_of = {names[1]: names[0], names[2]: names[0], names[3]: names[1]}
        limits = {names[3]: median[REFERENCE] + COMPILE_MARGIN_MS}
    else:
        base_of = {names[1]: names[0], names[2]: names[0], names[3]: names[0]}
        limits = {names[2]: LOCAL_TARGET_MS, names[3]: LOCAL_TARGET_MS}
    print(f"\n{title}")
    print(f"  {'variant':<34} {'median':>8} {'p90':>8} {'cpu':>8}   wall overhead (cpu)")
    failed = []
    for name in [*names, REFERENCE]:
        line = f"  {name:<34} {median[name]:6.2f}ms {p90(wall[name]):6.2f}ms {cpu[name]:6.2f}ms"
        base = base_of.get(name)
        if base:
            extra = median[name] - median[base]
            line += f"   {extra:+6.2f} ms x{median[name] / median[base]:.2f} vs {base[:3]}"
            line += f" ({cpu[name] - cpu[base]:+.2f} ms)"
            if name in limits:
                ok = extra <= limits[name]
                line += f"  target <= {limits[name]:.2f} ms: "
                line += "met" if ok else f"MISSED by {extra - limits[name]:.2f} ms"
                if not ok:
                    failed.append(f"{title}: {name}")
        print(line)
    return failed


#: (title, command, whether (d) sends it to distcc).
COMMANDS = [
    ("cc -c tiny.c", ["cc", "-c", "tiny.c", "-o", "tiny.o"], True),
    ("cc --version", ["cc", "--version"], False),
    ("cc -o tiny tiny.o (link step)", ["cc", "-o", "tiny", "tiny.o"], False),
    ("cc -c conftest.c (autoconf probe)", ["cc", "-c", "conftest.c", "-o", "conftest.o"], False),
]


def load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="runs per variant (default 200)")
    parser.add_argument("--python", help="the interpreter for the links (install-links --python)")
    args = parser.parse_args()
    for program in ("cc", "distcc"):
        if not shutil.which(program, path=SYSTEM_PATH):
            raise SystemExit(f"needs {program} in {SYSTEM_PATH}")
    if not os.path.exists(f"{DISTCC_MASQUERADE}/cc"):
        raise SystemExit(f"needs distcc's masquerade directory {DISTCC_MASQUERADE}")
    with tempfile.TemporaryDirectory(prefix="p2pcc-bench-") as temporary:
        work = Path(temporary)
        variants = prepare(work, args.python)
        interpreter = args.python or sys.executable
        reference = [interpreter, "-I", "-S", "-c", "pass"]
        print(f"load average before: {load()}")
        print(f"{args.runs} runs per variant, {os.cpu_count()} CPUs, links run {interpreter}")
        failed = []
        for title, command, is_compile in COMMANDS:
            times = measure(variants, command, args.runs, work, reference)
            failed += report(title, times, is_compile=is_compile)
        os.chdir("/")
        print(f"\nload average after: {load()}")
    if failed:
        print(f"\ntargets missed: {'; '.join(failed)}")
        return 1
    print("\nall targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
