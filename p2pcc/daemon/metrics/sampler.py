"""The metrics task: read `/proc` every `metrics.refresh` seconds and publish LocalMetrics.

All reading happens here and all arithmetic in `p2pcc.core.metrics`.  `/proc` is read
synchronously: a scan costs ~30 microseconds per process (a few ms on a workstation),
and a worker thread would let trio's test clock jump while it runs.  The cgroup CPU limit
(`p2pcc.core.cgroup`) is read every sample too: a few small files, and `systemctl
set-property` or a container runtime can change it while we run.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

import trio

from p2pcc.config.model import MetricsConfig
from p2pcc.core import cgroup, metrics
from p2pcc.core.build_load import LOAD_STATES, pool_processes
from p2pcc.core.metrics import JobKey, LocalMetrics, ServedLoad
from p2pcc.core.procfs import ProcessEntry, parse_proc_stat
from p2pcc.daemon.distccd.processes import read_processes

log = logging.getLogger("p2pcc.daemon.metrics")


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, which containers and taskset narrow)."""
    return len(os.sched_getaffinity(0))


def read_cpu_limit(proc_root: Path = Path("/proc")) -> float | None:
    """The tightest CPU limit of our cgroup and its parents, in CPUs; None when there is
    none or it cannot be read (a limit we cannot see must not starve the node)."""
    try:
        membership = (proc_root / "self" / "cgroup").read_text(errors="replace")
        mountinfo = (proc_root / "self" / "mountinfo").read_text(errors="replace")
    except OSError:
        return None
    directories = cgroup.limit_directories(membership, mountinfo)
    return cgroup.tightest(_read_limit(Path(d.path), d.version) for d in directories)


def _read_limit(directory: Path, version: cgroup.CgroupVersion) -> float | None:
    try:
        if version is cgroup.CgroupVersion.V2:
            return cgroup.parse_cpu_max((directory / cgroup.V2_MAX).read_text())
        quota = (directory / cgroup.V1_QUOTA).read_text()
        return cgroup.parse_cfs(quota, (directory / cgroup.V1_PERIOD).read_text())
    except (OSError, UnicodeDecodeError):  # the root has no cpu.max; a cgroup may vanish
        return None


def clock_ticks_per_second() -> int:
    """The unit of CPU times in `/proc/<pid>/stat` (USER_HZ, 100 on Linux)."""
    return os.sysconf("SC_CLK_TCK")


class MetricsSampler:
    """Takes one sample at a time, keeping what the next one needs (averages, CPU snapshot)."""

    def __init__(
        self,
        config: MetricsConfig,
        distccd_pids: Callable[[], Iterable[int]],
        *,
        proc_root: Path,
        cpus: Callable[[], int],
        cpu_limit: Callable[[], float | None],
        ticks_per_second: float,
    ) -> None:
        self._config = config
        self._distccd_pids = distccd_pids
        self._proc_root = proc_root
        self._cpus = cpus
        self._cpu_limit = cpu_limit
        self._limit_seen: float | None = None
        self._ticks_per_second = ticks_per_second
        self._served_load: ServedLoad | None = None
        self._build_load: ServedLoad | None = None
        self._job_cpu: dict[JobKey, int] = {}
        self._sampled_at: float | None = None

    def sample(self, now: float) -> LocalMetrics:
        """Read `/proc` once and turn it into LocalMetrics; OSError/ValueError if unreadable."""
        load = metrics.parse_loadavg((self._proc_root / "loadavg").read_text())
        mem_available = metrics.parse_meminfo((self._proc_root / "meminfo").read_text())
        processes = read_processes(self._proc_root)
        pids = list(self._distccd_pids())
        job_cpu = metrics.job_cpu_ticks(processes, pids)
        jobs = len(job_cpu)
        self._served_load = _averaged(self._served_load, jobs, now)
        pool_work = len(self._ours(pool_processes(processes, pids))) + self._own_threads()
        self._build_load = _averaged(self._build_load, pool_work, now)
        affinity, limit = self._cpus(), self._cpu_limit()
        if limit != self._limit_seen:
            self._limit_seen = limit
            log.info("cgroup CPU limit: %s", "none" if limit is None else f"{limit:.2f} CPUs")
        sample = metrics.compute(
            cpus=affinity,
            load_raw=load,
            served_load=self._served_load.average,
            mem_available=mem_available,
            jobs=jobs,
            job_memory=self._config.job_memory,
            cpu_limit=limit,
            build_load=self._build_load.average,
        )
        progress = None
        if self._sampled_at is not None:
            share = metrics.expected_cpu_share(affinity, sample.foreign_load, jobs, limit)
            elapsed = now - self._sampled_at
            progress = metrics.job_progress(
                self._job_cpu, job_cpu, elapsed, self._ticks_per_second, share
            )
        self._job_cpu, self._sampled_at = job_cpu, now
        return dataclasses.replace(sample, job_progress=progress)

    def _own_threads(self) -> int:
        """The daemon's own threads that are runnable now, this one left out (it runs
        the sample): pool machinery, not the owner's load."""
        me, runnable = threading.get_native_id(), 0
        try:
            tasks = os.listdir(self._proc_root / "self" / "task")
        except OSError:
            return 0
        for tid in tasks:
            try:
                stat = (self._proc_root / "self" / "task" / tid / "stat").read_text()
                entry = parse_proc_stat(stat)
            except (OSError, ValueError):
                continue
            runnable += entry.pid != me and entry.state in LOAD_STATES
        return runnable

    def _ours(self, entries: list[ProcessEntry]) -> list[ProcessEntry]:
        """The `entries` in our network namespace: one machine is one namespace, and in
        a test bed of namespace workstations (one kernel, one pid space) a compile in
        another workstation is not our build.  A process we may not look into (another
        user's, under a daemon not run as root) is not counted: its load stays the
        owner's, which errs toward giving the owner the machine."""
        own = _network_namespace(self._proc_root / "self")
        if own is None:
            return entries
        return [e for e in entries if _network_namespace(self._proc_root / str(e.pid)) == own]


def _averaged(average: ServedLoad | None, count: int, now: float) -> ServedLoad:
    """`average` advanced by `count` running now (started at `count` the first time)."""
    return ServedLoad.start(count, now) if average is None else average.advance(count, now)


def _network_namespace(process: Path) -> str | None:
    """The network namespace of a /proc process directory (`net:[4026531840]`), or None."""
    try:
        return os.readlink(process / "ns" / "net")
    except OSError:
        return None


async def serve_metrics(
    config: MetricsConfig,
    publish: Callable[[LocalMetrics], None],
    *,
    distccd_pids: Callable[[], Iterable[int]],
    proc_root: Path = Path("/proc"),
    cpus: Callable[[], int] = available_cpus,
    cpu_limit: Callable[[], float | None] | None = None,
    ticks_per_second: float | None = None,
    task_status: trio.TaskStatus[LocalMetrics] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Publish a sample now (before `started`), then one every `config.refresh` seconds.

    Samples are due at start + k x refresh; one that comes due while an earlier one ran
    late is skipped rather than sent in a burst.  A failed first sample raises (the
    daemon cannot advertise anything); a later failure is logged and that sample skipped.
    `cpu_limit` defaults to reading our cgroup's limit through `proc_root`.
    """
    sampler = MetricsSampler(
        config,
        distccd_pids,
        proc_root=proc_root,
        cpus=cpus,
        cpu_limit=cpu_limit or (lambda: read_cpu_limit(proc_root)),
        ticks_per_second=ticks_per_second or clock_ticks_per_second(),
    )
    due = trio.current_time()
    first = sampler.sample(due)
    publish(first)
    task_status.started(first)
    while True:
        due += config.refresh
        now = trio.current_time()
        while due <= now:
            due += config.refresh
        await trio.sleep_until(due)
        now = trio.current_time()
        try:
            sample = sampler.sample(now)
        except (OSError, ValueError) as error:
            log.warning("metrics sample skipped: %s", error)
            continue
        publish(sample)
