"""Local metrics: what this machine can offer peers, and how fast one of its slots is.

The daemon reads `/proc` and hands the text here; nothing in this module touches a file
or a clock.  Rules (reasons in docs/metrics.md):

* Foreign load is the 1-minute load average minus the jobs our distccd runs for peers,
  averaged the way the kernel averages load, so serving never makes a machine look busy.
  It is what we announce as `load`: served jobs compete with all of it.
* The owner's load is the foreign load less our own builds' compiles, averaged alike
  (`core.build_load`): a build is pool work, so it never withdraws slots.
* Slots = min(CPU slots, memory slots): CPUs minus the owner's load rounded half up, and the
  jobs that fit in available memory plus those already running; never below 0 or above
  `limits.MAX_SLOTS`.  A cgroup CPU limit (`core.cgroup`) caps CPU slots at the limit
  rounded half up, so less than half a CPU offers no slot, like a CPU the owner mostly uses.
* Under a limit, one slot runs at `slot_speed` = limit / its whole CPUs (at most 1) of a
  CPU, and the advertised power is scaled by it: a slot of a 0.6-CPU container is 0.6.
* A served job is a direct child of a distccd process that is not itself distccd (the
  compiler driver); its CPU is the sum over its live process subtree.
* Power = calibrated speed x a correction in [1/4, 1] learned from the CPU share served
  jobs really get versus the share the load model promises; it relaxes back to 1 when
  nothing is observed.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from p2pcc.core import limits
from p2pcc.core.build_load import owner_load
from p2pcc.core.cgroup import effective_cpus
from p2pcc.core.procfs import ProcessEntry

#: Bytes in a gibibyte (memory figures are in bytes).
GIB = 1024**3

#: Kernel load averages use a 60 s time constant for the 1-minute figure.
LOAD_TIME_CONSTANT = 60.0

#: Weight of one observation in the power correction (an exponential moving average).
POWER_BLEND_WEIGHT = 0.1

#: Bounds of the power correction and of any single observation's ratio, so a job that
#: waited on a swapping disk (or a stopped process) cannot make the node look dead.
MIN_CORRECTION = 0.25
#: Calibration measures an undisturbed compile: real jobs can only show we are slower.
MAX_CORRECTION = 1.0

#: Without new observations the correction halves its (logarithmic) distance to 1 every
#: 10 minutes, so a node that stopped getting jobs because it looked slow earns its
#: speed back.
CORRECTION_HALF_LIFE = 600.0

#: Observations covering less served job time than this are too coarse (CPU times come
#: in 10 ms clock ticks, 2% of this) to say anything and are ignored.
MIN_OBSERVED_SECONDS = 0.5

#: Power assumed before calibration, or when no compiler could be calibrated.
NEUTRAL_POWER = 1.0

DISTCCD_COMM = "distccd"

#: A process's key across samples: pids are reused, (pid, start time) is not.
JobKey = tuple[int, int]


@dataclass(frozen=True, slots=True)
class JobProgress:
    """Served jobs between two samples: wall time they ran, and what the load model expected.

    `expected_seconds` is the CPU time the jobs used divided by the CPU share the load
    model promised them, i.e. how long that work should have taken.
    """

    measured_seconds: float
    expected_seconds: float


@dataclass(frozen=True, slots=True)
class LocalMetrics:
    """One measurement of this machine, as gossiped in NodeStatus.

    `cpus` is how many CPUs served jobs can occupy at once: the affinity mask, narrowed
    to the CPU limit rounded up (a 1.5-CPU quota lets two jobs run, each at 0.75).
    """

    cpus: int
    load_raw: float  # 1-minute load average as the kernel reports it
    served_load: float  # our served jobs averaged like the load average
    foreign_load: float  # load_raw - served_load, never negative: the `load` we announce
    mem_available: int  # bytes
    jobs: int  # compile jobs our distccd runs right now
    slots: int  # slots offered to peers
    job_progress: JobProgress | None = None  # for PowerEstimate.observe
    cpu_limit: float | None = None  # the cgroup's CPU limit in CPUs; None = no limit
    slot_speed: float = 1.0  # the share of a CPU one slot gets under that limit
    build_load: float = 0.0  # our own builds' compiles, averaged like the load average


def parse_loadavg(text: str) -> float:
    """The 1-minute load average from `/proc/loadavg`; ValueError if malformed."""
    fields = text.split()
    if not fields:
        raise ValueError("empty /proc/loadavg")
    load = float(fields[0])
    if not (math.isfinite(load) and load >= 0):
        raise ValueError(f"bad load average {fields[0]!r}")
    return load


_MEMINFO_LINE = re.compile(r"^MemAvailable:\s+(\d+) kB$", re.MULTILINE)


def parse_meminfo(text: str) -> int:
    """`MemAvailable` from `/proc/meminfo`, in bytes; ValueError if absent."""
    match = _MEMINFO_LINE.search(text)
    if match is None:
        raise ValueError("no MemAvailable line in /proc/meminfo")
    return int(match.group(1)) * 1024


def _children_of(processes: Iterable[ProcessEntry]) -> dict[int, list[ProcessEntry]]:
    children: dict[int, list[ProcessEntry]] = {}
    for entry in processes:
        children.setdefault(entry.ppid, []).append(entry)
    return children


def served_jobs(
    processes: Iterable[ProcessEntry], distccd_pids: Iterable[int]
) -> list[ProcessEntry]:
    """The compile jobs distccd runs: its non-distccd, non-zombie children, by pid.

    distccd processes are the given pids and every descendant of theirs named distccd
    (the preforked workers); each job is one compiler driver forked by a worker.
    """
    processes = list(processes)
    children = _children_of(processes)
    known = {entry.pid for entry in processes}
    servers, pending = set(), [pid for pid in distccd_pids if pid in known]
    while pending:
        pid = pending.pop()
        if pid not in servers:
            servers.add(pid)
            pending += [e.pid for e in children.get(pid, ()) if e.comm == DISTCCD_COMM]
    jobs = [
        entry
        for pid in servers
        for entry in children.get(pid, ())
        if entry.comm != DISTCCD_COMM and entry.state != "Z"
    ]
    return sorted(jobs, key=lambda entry: entry.pid)


def job_cpu_ticks(
    processes: Iterable[ProcessEntry], distccd_pids: Iterable[int]
) -> dict[JobKey, int]:
    """Each served job's CPU so far: the sum over its live subtree (reaped ones are in cutime)."""
    processes = list(processes)
    children = _children_of(processes)
    totals: dict[JobKey, int] = {}
    for job in served_jobs(processes, distccd_pids):
        total, pending, seen = 0, [job], set()
        while pending:
            entry = pending.pop()
            if entry.pid in seen:  # a corrupt snapshot must not loop forever
                continue
            seen.add(entry.pid)
            total += entry.cpu_ticks
            pending += children.get(entry.pid, ())
        totals[(job.pid, job.start_ticks)] = total
    return totals


def expected_cpu_share(
    cpus: int, foreign_load: float, jobs: int, cpu_limit: float | None = None
) -> float:
    """The share of one CPU each served job should get: all runnable work splits the CPUs,
    and the jobs split the cgroup's CPU limit, if there is one, among themselves."""
    contenders = foreign_load + jobs
    share = 1.0 if contenders <= cpus else cpus / contenders
    if cpu_limit is not None and jobs > 0:
        share = min(share, cpu_limit / jobs)
    return share


def job_progress(
    before: Mapping[JobKey, int],
    after: Mapping[JobKey, int],
    elapsed: float,
    ticks_per_second: float,
    expected_share: float,
) -> JobProgress | None:
    """Progress of the jobs seen in both snapshots `elapsed` seconds apart, or None.

    None when no job spans both snapshots or they add up to less than
    MIN_OBSERVED_SECONDS of wall time.
    """
    deltas = [after[key] - before[key] for key in after.keys() & before.keys()]
    deltas = [delta for delta in deltas if delta >= 0]
    measured = elapsed * len(deltas)
    if measured < MIN_OBSERVED_SECONDS or expected_share <= 0:
        return None
    cpu_seconds = sum(deltas) / ticks_per_second
    return JobProgress(measured, cpu_seconds / expected_share)


@dataclass(frozen=True, slots=True)
class ServedLoad:
    """Our served jobs averaged with the kernel's 1-minute load time constant.

    Subtracting the instantaneous job count from a 1-minute average would make a node
    look busy for a minute after a burst of served jobs ends, and idle while they ramp up.
    """

    average: float
    at: float

    @classmethod
    def start(cls, jobs: int, now: float) -> ServedLoad:
        """A tracker that assumes the current jobs have been running for a while."""
        return cls(float(jobs), now)

    def advance(self, jobs: int, now: float) -> ServedLoad:
        """The average after `jobs` ran since the last sample (a clock going back counts as 0 s)."""
        decay = math.exp(-max(0.0, now - self.at) / LOAD_TIME_CONSTANT)
        return ServedLoad(self.average * decay + jobs * (1 - decay), max(now, self.at))


def round_half_up(value: float) -> int:
    """The nearest integer, halves rounded up (Python's round() goes to even)."""
    return math.floor(value + 0.5)


def limited_cpus(affinity: int, cpu_limit: float | None) -> int:
    """CPUs served jobs can occupy at once: the affinity mask, or the limit rounded up."""
    if cpu_limit is None:
        return affinity
    return max(1, min(affinity, math.ceil(cpu_limit)))


def slot_speed(affinity: int, cpu_limit: float | None) -> float:
    """The share of a CPU one slot gets when every slot the limit allows is busy.

    The limit's whole CPUs (rounded half up, at least 1) share it: 0.15 CPU gives one
    slot at 0.15, 1.5 two at 0.75, 2.4 two at 1 (a compile uses one CPU at most).
    """
    effective = effective_cpus(affinity, cpu_limit)
    return min(1.0, effective / max(1, round_half_up(effective)))


def slots_offered(
    cpus: int,
    mem_available: int,
    job_memory: int,
    owner_load: float,
    jobs: int = 0,
    *,
    cpu_limit: float | None = None,
) -> int:
    """Slots this machine offers peers, running jobs included.

    CPU slots: CPUs minus the owner's load, rounded half up, so background noise below half a
    CPU costs nothing; with a cgroup CPU limit, at most the limit rounded half up (the
    owner's load runs outside our cgroup, so the two caps are separate).  Memory slots:
    jobs that fit in available memory (floor: a job that does not fit swaps) plus those
    already running, whose memory is no longer available.
    """
    cpu_slots = round_half_up(cpus - owner_load)
    if cpu_limit is not None:
        cpu_slots = min(cpu_slots, round_half_up(cpu_limit))
    memory_slots = mem_available // job_memory + jobs
    return max(0, min(cpu_slots, memory_slots, limits.MAX_SLOTS))


def compute(
    *,
    cpus: int,
    load_raw: float,
    served_load: float,
    mem_available: int,
    jobs: int,
    job_memory: int,
    job_progress: JobProgress | None = None,
    cpu_limit: float | None = None,
    build_load: float = 0.0,
) -> LocalMetrics:
    """One LocalMetrics from raw readings; `cpus` is the affinity mask's count."""
    foreign = max(0.0, load_raw - served_load)
    owner = owner_load(foreign, build_load)
    return LocalMetrics(
        cpus=limited_cpus(cpus, cpu_limit),
        load_raw=load_raw,
        served_load=served_load,
        foreign_load=foreign,
        mem_available=mem_available,
        jobs=jobs,
        slots=slots_offered(cpus, mem_available, job_memory, owner, jobs, cpu_limit=cpu_limit),
        job_progress=job_progress,
        cpu_limit=cpu_limit,
        slot_speed=slot_speed(cpus, cpu_limit),
        build_load=build_load,
    )


def calibrated_power(reference_seconds: float, measured_seconds: float) -> float:
    """reference / measured, within (0, MAX_POWER]; 1.0 = as fast as the reference machine."""
    if not (reference_seconds > 0 and measured_seconds > 0):
        raise ValueError("calibration times must be > 0 seconds")
    return min(reference_seconds / measured_seconds, limits.MAX_POWER)


def node_power(per_compiler: Iterable[float]) -> float:
    """The single power a node advertises: the median over its compilers (NEUTRAL if none)."""
    values = sorted(per_compiler)
    return statistics.median(values) if values else NEUTRAL_POWER


def limited_power(power: float, slot_speed: float) -> float:
    """`power` for a slot that gets `slot_speed` of a CPU (clamped to [0, 1]), capped."""
    return min(power * min(1.0, max(0.0, slot_speed)), limits.MAX_POWER)


@dataclass(frozen=True, slots=True)
class PowerEstimate:
    """Calibrated power x a correction learned from real served jobs.

    The correction is an exponential moving average, in the log domain, of
    expected/measured job durations, each clamped to [MIN_CORRECTION, MAX_CORRECTION].
    """

    calibrated: float = NEUTRAL_POWER
    correction: float = 1.0
    samples: int = 0
    observed_at: float | None = None

    def correction_at(self, now: float) -> float:
        """The correction relaxed toward 1 for the time since the last observation."""
        if self.observed_at is None:
            return self.correction
        idle = max(0.0, now - self.observed_at)
        return float(self.correction ** (0.5 ** (idle / CORRECTION_HALF_LIFE)))

    def power(self, now: float) -> float:
        """The power to advertise at `now`."""
        return min(self.calibrated * self.correction_at(now), limits.MAX_POWER)

    def observe(
        self, measured_seconds: float, expected_seconds: float, now: float
    ) -> PowerEstimate:
        """Blend in served work that took `measured_seconds` but should have taken
        `expected_seconds`; observations under MIN_OBSERVED_SECONDS are ignored."""
        if not (measured_seconds >= MIN_OBSERVED_SECONDS and expected_seconds >= 0):
            return self
        ratio = min(MAX_CORRECTION, max(MIN_CORRECTION, expected_seconds / measured_seconds))
        current = math.log(self.correction_at(now))
        blended = (1 - POWER_BLEND_WEIGHT) * current + POWER_BLEND_WEIGHT * math.log(ratio)
        return PowerEstimate(self.calibrated, math.exp(blended), self.samples + 1, now)

    def observe_progress(self, progress: JobProgress | None, now: float) -> PowerEstimate:
        """`observe` a sample's job progress; unchanged when it has none."""
        if progress is None:
            return self
        return self.observe(progress.measured_seconds, progress.expected_seconds, now)

    def recalibrated(self, calibrated: float) -> PowerEstimate:
        """The same learned correction on top of a new calibration."""
        return PowerEstimate(calibrated, self.correction, self.samples, self.observed_at)
