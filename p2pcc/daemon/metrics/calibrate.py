"""Power calibration: time a fixed compile with each offered compiler, once per compiler.

Each compiler compiles `benchmark_source()` at -O2 `runs` times; the fastest CPU time
(user + system of the compiler and its cc1/as, from wait4) against the reference
machine's figure for that compiler gives its power (docs/metrics.md).  CPU time and the
fastest run, because the result is cached until the compiler or the machine changes: a
calibration run while the owner builds something must not brand the machine slow for
months.  What load really costs served jobs is learned at run time
(`core.metrics.PowerEstimate`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Protocol

import trio

from p2pcc.core.metrics import calibrated_power
from p2pcc.core.node import LocalNode
from p2pcc.safe_files import replace_file

log = logging.getLogger("p2pcc.daemon.calibrate")

#: Bumped whenever benchmark_source() or the compile flags change: cached times of
#: another benchmark mean nothing.
BENCH_VERSION = 1
CACHE_FILE = "power"
CACHE_HEADER = f"p2pcc-power 1 bench-{BENCH_VERSION}"
#: (compiler, machine) pairs remembered in the cache file, newest last.
MAX_CACHE_ENTRIES = 64
#: Functions in the benchmark: about 0.2 s of CPU at -O2 on the reference machine.
BENCH_FUNCTIONS = 12
#: A compiler that takes longer than this for all its runs is broken or the machine is
#: swapping; either way it is left uncalibrated rather than holding up the daemon.
CALIBRATION_TIMEOUT = 30.0
#: Bytes of a failing compiler's stderr quoted in the log.
STDERR_EXCERPT = 300

#: Fastest of 15 runs of the benchmark, CPU seconds, on the reference machine (a
#: 2-vCPU AMD EPYC VM, Debian 12), per (family, language, major version).  Compilers
#: differ by a third on the same machine (gcc 12 vectorizes at -O2, gcc 11 does not),
#: so each is compared with itself and power means the machine's speed, not the compiler's.
REFERENCE_SECONDS: dict[tuple[str, str, str], float] = {
    ("gcc", "c", "11"): 0.150,
    ("gcc", "c", "12"): 0.200,
    ("gcc", "c++", "11"): 0.160,
    ("gcc", "c++", "12"): 0.205,
    ("clang", "c", "14"): 0.152,
    ("clang", "c++", "14"): 0.155,
}
#: For a family nobody measured: gcc 12 compiling C.
DEFAULT_REFERENCE = REFERENCE_SECONDS["gcc", "c", "12"]

#: A cache entry: (fingerprint id, machine key).
CacheKey = tuple[str, str]


class Calibratable(Protocol):
    """What calibration needs of a compiler; `core.fingerprint.Fingerprint` has it all."""

    @property
    def id(self) -> str: ...
    @property
    def command(self) -> str: ...
    @property
    def family(self) -> str: ...
    @property
    def language(self) -> str: ...
    @property
    def major(self) -> str: ...


def benchmark_source(functions: int = BENCH_FUNCTIONS) -> str:
    """The benchmark translation unit: loops, switches and pointer chasing for the optimizer.

    It includes no header, so every machine compiles exactly the same text, and it is
    valid C and C++.
    """
    parts = [
        "/* p2pcc calibration benchmark: generated, no headers, valid C and C++. */",
        "struct cell { int key; unsigned weight; struct cell *next; };",
    ]
    parts += [_benchmark_function(index) for index in range(functions)]
    return "\n".join(parts) + "\n"


def _benchmark_function(i: int) -> str:
    return f"""
static unsigned step_{i}(unsigned s, int k)
{{
    switch ((s + {i}u + (unsigned)k) % 7u) {{
    case 0: return s * {2 * i + 3}u + {i}u;
    case 1: return (s >> 3) ^ (s << {i % 5 + 1});
    case 2: return s + (unsigned)k * {i + 7}u;
    case 3: return s ^ 0x9e3779b9u;
    case 4: return (s * s) >> {i % 11 + 2};
    case 5: return s - (unsigned)k;
    default: return s | {i}u;
    }}
}}

unsigned bench_{i}(struct cell *cells, int count, const int *table, int size)
{{
    unsigned acc = {i}u;
    int j, k;
    for (j = 0; j < count; j++) {{
        struct cell *c = &cells[j];
        for (k = 0; k < size; k++) {{
            acc = step_{i}(acc, table[(k * {i % 13 + 1}) % size]);
            if (c->key > table[k]) c->weight += acc & 0xffu;
            else if (c->next && c->next->key == k) acc += c->next->weight;
        }}
        c->key = (int)(acc % {i + 101}u);
    }}
    return acc;
}}"""


def reference_seconds(family: str, language: str, major: str) -> float:
    """The reference time for a compiler: its own entry, else the nearest major version
    of the same family and language, else DEFAULT_REFERENCE."""
    exact = REFERENCE_SECONDS.get((family, language, major))
    if exact is not None:
        return exact
    kin = [
        (key[2], value) for key, value in REFERENCE_SECONDS.items() if key[:2] == (family, language)
    ]
    if not kin or not major.isdigit():
        return DEFAULT_REFERENCE
    return min(kin, key=lambda entry: abs(int(entry[0]) - int(major)))[1]


def machine_key_of(machine_id: str, cpu_model: str) -> str:
    """16 hex characters naming this machine and its CPU model.

    A cache on a home directory shared over NFS must not hand one workstation's speed to
    another, and a VM moved to other hardware must recalibrate.
    """
    digest = hashlib.sha256(f"{machine_id.strip()}\n{cpu_model.strip()}".encode())
    return digest.hexdigest()[:16]


def local_machine_key() -> str:
    """The machine key from /etc/machine-id and the first CPU's model name."""
    texts = []
    for path in (Path("/etc/machine-id"), Path("/proc/cpuinfo")):
        try:
            texts.append(path.read_text(errors="replace"))
        except OSError:
            texts.append("")
    models = [line for line in texts[1].splitlines() if line.startswith("model name")]
    return machine_key_of(texts[0], models[0].partition(":")[2] if models else "")


def parse_power_cache(text: str) -> dict[CacheKey, float]:
    """(fingerprint id, machine key) -> benchmark CPU seconds; {} for another format or
    benchmark.  Lines are "<id>\t<machine>\t<seconds>\t<runs...>"; a bad line is skipped."""
    lines = text.splitlines()
    if not lines or lines[0] != CACHE_HEADER:
        return {}
    entries: dict[CacheKey, float] = {}
    for line in lines[1:]:
        fields = line.split("\t")
        try:
            seconds = float(fields[2])
        except (IndexError, ValueError):
            continue
        if len(fields[0]) == 16 and len(fields[1]) == 16 and 0 < seconds < 1e6:  # NaN fails
            entries[fields[0], fields[1]] = seconds
    return entries


def render_power_cache(
    entries: Mapping[CacheKey, float], runs: Mapping[CacheKey, list[float]]
) -> str:
    """The cache file for `entries` (oldest first, MAX_CACHE_ENTRIES newest kept); `runs`
    adds each new calibration's individual times, for people reading the file."""
    lines = [CACHE_HEADER]
    for (fingerprint, machine), seconds in list(entries.items())[-MAX_CACHE_ENTRIES:]:
        measured = " ".join(f"{value:.6f}" for value in runs.get((fingerprint, machine), []))
        lines.append(f"{fingerprint}\t{machine}\t{seconds:.6f}\t{measured}".rstrip())
    return "\n".join(lines) + "\n"


def parse_measurements(text: str) -> tuple[list[float], str]:
    """CPU seconds of each successful run reported by the measuring helper, and why it
    stopped early ("" when every run succeeded)."""
    seconds: list[float] = []
    for line in text.splitlines():
        code, _, value = line.partition(" ")
        if code == "error":
            return seconds, value
        if code != "0":
            return seconds, f"exit status {code}"
        seconds.append(float(value))
    return seconds, ""


#: Runs argv `runs` times and prints "<exit status> <user+system seconds>" per run
#: (or "error <reason>"), stopping at the first failure.  wait4's rusage covers the
#: compiler driver and the cc1/as it waited for; trio's process API does not expose it.
_MEASURE = """\
import os, sys
runs, err, argv = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
           (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
           (os.POSIX_SPAWN_OPEN, 2, err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)]
for _ in range(runs):
    try:
        pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=actions)
    except OSError as error:
        print("error", error.strerror, flush=True)
        break
    _, status, usage = os.wait4(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    print(code, usage.ru_utime + usage.ru_stime, flush=True)
    if code:
        break
"""


async def _kill_group(process: trio.Process) -> None:
    # The helper leads its own session: kill the compiler it spawned along with it.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


async def measure(compiler: Calibratable, runs: int) -> list[float] | None:
    """CPU seconds of `runs` benchmark compiles, or None (logged) if the compiler failed."""
    suffix = ".cc" if compiler.language == "c++" else ".c"
    with tempfile.TemporaryDirectory(prefix="p2pcc-calibrate-") as workdir:
        source, stderr = Path(workdir, "bench" + suffix), Path(workdir, "stderr")
        source.write_text(benchmark_source())
        argv = [compiler.command, "-O2", "-c", str(source), "-o", str(Path(workdir, "bench.o"))]
        helper = [sys.executable, "-I", "-S", "-c", _MEASURE, str(runs), str(stderr), *argv]
        with trio.move_on_after(CALIBRATION_TIMEOUT) as scope:
            result = await trio.run_process(
                helper,
                capture_stdout=True,
                capture_stderr=True,
                check=False,
                start_new_session=True,
                deliver_cancel=_kill_group,
            )
        if scope.cancelled_caught:
            log.warning(
                "calibration of %s took over %gs: skipped", compiler.command, CALIBRATION_TIMEOUT
            )
            return None
        seconds, failure = parse_measurements(result.stdout.decode(errors="replace"))
        if failure or len(seconds) != runs:
            excerpt = stderr.read_bytes()[:STDERR_EXCERPT] if stderr.exists() else result.stderr
            detail = excerpt.decode(errors="replace").strip().replace("\n", " | ")
            why = ": ".join(part for part in (failure or "no result", detail) if part)
            log.warning("calibration of %s failed: %s", compiler.command, why)
            return None
        return seconds


async def calibrate(
    compilers: Iterable[Calibratable],
    cache_dir: Path,
    *,
    runs: int = 3,
    machine: str | None = None,
) -> dict[str, float]:
    """Power of each compiler (fingerprint id -> power), from the cache when it has one.

    Compilers are measured one after another, so they do not slow each other down.  A
    compiler that fails is left out (and retried at the next start); a cache that cannot
    be written is logged and the results are still returned.  `machine` defaults to
    `local_machine_key()`.
    """
    machine = machine or local_machine_key()
    cache_path = cache_dir / CACHE_FILE
    cached = _read_cache(cache_path)
    powers: dict[str, float] = {}
    new_runs: dict[CacheKey, list[float]] = {}
    for compiler in {c.id: c for c in compilers}.values():
        key = (compiler.id, machine)
        seconds = cached.get(key)
        if seconds is None:
            measured = await measure(compiler, runs) or [0.0]
            # Interference only ever adds time; rounded as the cache stores it, so a
            # cached calibration gives exactly the power a fresh one did.
            seconds = round(min(measured), 6)
            if seconds <= 0:  # failed (logged), or a "compiler" that does no work
                continue
            new_runs[key] = measured
            cached[key] = seconds
            log.info("calibrated %s (%s): %.3fs of CPU", compiler.command, compiler.id, seconds)
        reference = reference_seconds(compiler.family, compiler.language, compiler.major)
        powers[compiler.id] = calibrated_power(reference, seconds)
    if new_runs:
        _write_cache(cache_path, render_power_cache(cached, new_runs))
    return powers


def _read_cache(path: Path) -> dict[CacheKey, float]:
    try:
        return parse_power_cache(path.read_text(errors="replace"))
    except FileNotFoundError:
        return {}
    except OSError as error:
        log.warning("calibration cache %s unreadable, recalibrating: %s", path, error)
        return {}


def _write_cache(path: Path, text: str) -> None:
    """Replace the cache atomically, so a concurrent reader sees the old or the new file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(path, text.encode(), mode=0o600)
    except OSError as error:
        log.warning("calibration cache %s not written: %s", path, error)


async def calibrate_node(node: LocalNode, cache_dir: Path) -> None:
    """Calibrate (or recall) every compiler the node offers and adopt the node's power.

    A first calibration takes seconds, so this runs beside the other tasks and the node
    advertises the neutral power until it finishes."""
    offered = [c.fingerprint for c in node.compilers if not c.withheld]
    powers = await calibrate(offered, cache_dir)
    power = node.recalibrate(powers.values(), trio.current_time())
    log.info("power index %.2f from %d compilers (CPU limit included)", power, len(powers))
