"""The metrics task: exact samples at exact (virtual) times from a fake /proc, and the real one."""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
import trio.testing

from p2pcc.config.model import MetricsConfig
from p2pcc.core.metrics import GIB, JobProgress, LocalMetrics
from p2pcc.daemon.distccd.processes import read_processes
from p2pcc.daemon.metrics.sampler import available_cpus, serve_metrics
from tests.core.test_metrics import MEMINFO, STAT_CC1, STAT_DRIVER, STAT_MASTER, STAT_WORKER
from tests.integration.distccd_log_lines import JobRecord, parse_distccd_job_line

CONFIG = MetricsConfig(job_memory=GIB, refresh=1.5)
MEM_AVAILABLE = 24279916 * 1024


class FakeProc:
    """A /proc tree in a temporary directory, with files shaped like the real ones."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.set_load(0.26)
        (root / "meminfo").write_text(MEMINFO)
        (root / "self").mkdir()  # not a pid: skipped
        (root / "4242").mkdir()  # a process that exited before its stat was read
        for line in (STAT_MASTER, STAT_WORKER, STAT_DRIVER, STAT_CC1):
            self.write_stat(line)
        self.write_stat("1 (process_api) S 0 1 1 0 -1 0 0 0 0 0 10 20 0 0 20 0 1 0 5 0 0\n")

    def set_load(self, load: float) -> None:
        (self.root / "loadavg").write_text(f"{load:.2f} 0.39 0.27 1/87 30241\n")

    def write_stat(self, line: str) -> None:
        pid = line.split(" ", 1)[0]
        (self.root / pid).mkdir(exist_ok=True)
        (self.root / pid / "stat").write_text(line)

    def set_cc1_utime(self, ticks: int) -> None:
        self.write_stat(STAT_CC1.replace(" 66 4 0 0 ", f" {ticks} 4 0 0 "))

    def end_job(self) -> None:
        for pid in ("10070", "10071"):
            (self.root / pid / "stat").unlink()
            (self.root / pid).rmdir()


def test_read_processes_skips_non_pids_and_vanished_ones(tmp_path: Path) -> None:
    FakeProc(tmp_path)
    assert sorted(entry.pid for entry in read_processes(tmp_path)) == [
        1,
        10056,
        10058,
        10070,
        10071,
    ]


async def test_samples_at_exact_times(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    proc = FakeProc(tmp_path)
    samples: list[tuple[float, LocalMetrics]] = []

    def publish(sample: LocalMetrics) -> None:
        samples.append((trio.current_time(), sample))

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            start = trio.current_time()
            first = await nursery.start(
                lambda task_status: serve_metrics(
                    CONFIG,
                    publish,
                    distccd_pids=lambda: [10056],
                    proc_root=tmp_path,
                    cpus=lambda: 2,
                    ticks_per_second=100,
                    task_status=task_status,
                )
            )
            assert samples == [(start, first)]  # published before started() returned
            await trio.sleep_until(start + 0.75)
            proc.set_load(1.26)
            proc.set_cc1_utime(66 + 120)  # 1.2 s of CPU in the next 1.5 s
            await trio.sleep_until(start + 2.25)
            proc.end_job()
            await trio.sleep_until(start + 3.75)
            nursery.cancel_scope.cancel()

    served_after_ending = math.exp(-1.5 / 60)  # the one job, decayed for 1.5 s
    assert samples == [
        (start, LocalMetrics(2, 0.26, 1.0, 0.0, MEM_AVAILABLE, 1, 2)),
        (
            start + 1.5,
            LocalMetrics(
                cpus=2,
                load_raw=1.26,
                served_load=pytest.approx(1.0),
                foreign_load=pytest.approx(0.26),
                mem_available=MEM_AVAILABLE,
                jobs=1,
                slots=2,  # round(2 - 0.26)
                # 1.2 s of CPU where the load model promised a whole CPU for 1.5 s.
                job_progress=JobProgress(1.5, pytest.approx(1.2)),
            ),
        ),
        (
            start + 3.0,
            LocalMetrics(
                cpus=2,
                load_raw=1.26,
                served_load=pytest.approx(served_after_ending),
                foreign_load=pytest.approx(1.26 - served_after_ending),
                mem_available=MEM_AVAILABLE,
                jobs=0,
                slots=2,  # round(2 - 0.28)
            ),
        ),
    ]


async def test_a_failed_sample_is_skipped_and_logged(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    proc = FakeProc(tmp_path)
    times: list[float] = []
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            start = trio.current_time()
            await nursery.start(
                lambda task_status: serve_metrics(
                    CONFIG,
                    lambda sample: times.append(trio.current_time()),
                    distccd_pids=list,
                    proc_root=tmp_path,
                    task_status=task_status,
                )
            )
            (tmp_path / "meminfo").write_text("MemTotal: 1 kB\n")
            await trio.sleep_until(start + 2.0)
            (tmp_path / "meminfo").write_text(MEMINFO)
            proc.set_load(0.5)
            await trio.sleep_until(start + 3.5)
            nursery.cancel_scope.cancel()
    assert times == [start, start + 3.0]
    assert [record.getMessage() for record in caplog.records] == [
        "metrics sample skipped: no MemAvailable line in /proc/meminfo"
    ]


async def test_an_unreadable_proc_at_start_is_an_error(tmp_path: Path) -> None:
    with trio.fail_after(10), pytest.raises(FileNotFoundError):
        await serve_metrics(CONFIG, print, distccd_pids=list, proc_root=tmp_path / "missing")


async def test_the_real_proc() -> None:
    got: list[LocalMetrics] = []
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            first = await nursery.start(
                lambda task_status: serve_metrics(
                    CONFIG, got.append, distccd_pids=list, task_status=task_status
                )
            )
            nursery.cancel_scope.cancel()
    assert got == [first]
    assert first.cpus == available_cpus() == len(os.sched_getaffinity(0))
    assert first.mem_available > 0
    assert first.jobs == 0
    assert first.load_raw >= 0
    assert 0 <= first.slots <= first.cpus
    assert first.job_progress is None


def slow_source(statements: int = 4000) -> str:
    """One function big enough to keep cc1 busy for two seconds or more at -O2 (1,800
    statements took 1.1 s on the idle test machine: too short to span two samples)."""
    body = [
        f" if (a[{i % 97}] > {i}) s += a[{i * 7 % 89}] * {i} + (s >> {i % 13}); else s ^= {i};"
        for i in range(statements)
    ]
    return "int big(int *a, int n)\n{\n int s = n;\n" + "\n".join(body) + "\n return s;\n}\n"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def distccd_dir() -> Iterator[Path]:
    # Started as root, distccd opens its log as user distccd: pytest's tmp_path (0700
    # under /tmp/pytest-of-root) is out of its reach.
    directory = Path(tempfile.mkdtemp(prefix="p2pcc-test-distccd-", dir="/tmp"))
    directory.chmod(0o777)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


async def start_distccd(port: int, log_file: Path) -> trio.Process:
    """A distccd on loopback, returned once its log says it listens."""
    argv = ["distccd", "--daemon", "--no-detach", "--port", str(port), "--listen", "127.0.0.1"]
    argv += ["--allow", "127.0.0.1", "--jobs", "2", "--log-file", str(log_file)]
    process = await trio.lowlevel.open_process(
        [*argv, "--log-level", "info"], start_new_session=True
    )
    while "listening on" not in read_log(log_file):
        assert process.poll() is None, "distccd exited at start"
        await trio.sleep(0.02)
    return process


def read_log(log_file: Path) -> str:
    """What distccd logged so far ("" before it created the file)."""
    try:
        return log_file.read_text(errors="replace")
    except FileNotFoundError:
        return ""


async def logged_job(log_file: Path, source: str) -> JobRecord:
    """The job compiling `source` once distccd logged its summary line."""
    while True:
        records = [parse_distccd_job_line(line) for line in read_log(log_file).splitlines()]
        for record in records:
            if record is not None and record.source == source:
                return record
        await trio.sleep(0.1)


async def stop_distccd(process: trio.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with trio.move_on_after(5):
        await process.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    await process.wait()


@pytest.mark.integration
@pytest.mark.skipif(not shutil.which("distccd"), reason="needs distcc and distccd")
async def test_a_real_distccd_job_is_counted_measured_and_logged(
    tmp_path: Path, distccd_dir: Path
) -> None:
    port, log_file = free_port(), distccd_dir / "distccd.log"
    (tmp_path / "slow.c").write_text(slow_source())
    (tmp_path / "distcc").mkdir()
    client_env = {
        **os.environ,
        "DISTCC_HOSTS": f"127.0.0.1:{port}/2",
        "DISTCC_DIR": str(tmp_path / "distcc"),
        "DISTCC_FALLBACK": "0",  # a job that did not go to our distccd fails the test
    }
    samples_in, samples = trio.open_memory_channel[LocalMetrics](math.inf)
    compiled = trio.Event()

    async def compile_remotely() -> None:
        argv = ["timeout", "60", "distcc", "gcc", "-O2", "-c", "slow.c", "-o", "slow.o"]
        await trio.run_process(argv, cwd=tmp_path, env=client_env, capture_stderr=True)
        compiled.set()

    with trio.fail_after(40):
        process = await start_distccd(port, log_file)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(
                    lambda task_status: serve_metrics(
                        MetricsConfig(job_memory=GIB, refresh=0.6),
                        samples_in.send_nowait,
                        distccd_pids=lambda: [process.pid],
                        task_status=task_status,
                    )
                )
                nursery.start_soon(compile_remotely)
                seen: list[LocalMetrics] = []
                async for sample in samples:
                    seen.append(sample)
                    if compiled.is_set() and sample.jobs == 0:
                        break
                job = await logged_job(log_file, "slow.c")
                nursery.cancel_scope.cancel()
        finally:
            await stop_distccd(process)

    assert max(sample.jobs for sample in seen) == 1
    progress = [sample.job_progress for sample in seen if sample.job_progress]
    assert progress, "the job never spanned two samples"
    assert all(p.expected_seconds > 0 for p in progress)  # cc1 burned CPU
    assert (job.ok, job.compiler, job.client.split(":")[0]) == (
        True,
        "x86_64-linux-gnu-gcc",
        "127.0.0.1",
    )
    assert job.seconds > 0
    assert (tmp_path / "slow.o").stat().st_size > 0


async def test_own_build_compiles_are_announced_load_but_keep_the_slots(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    # A local compile (cc1 running, not under distccd) and a browser tab, both runnable,
    # next to the served job: the load average is 3.26 on 2 CPUs.
    proc = FakeProc(tmp_path)
    proc.write_stat("20000 (cc1) R 19990 1 1 0 -1 0 0 0 0 0 300 20 0 0 20 0 1 0 900 0 0\n")
    proc.write_stat("20010 (Web Content) R 1 1 1 0 -1 0 0 0 0 0 300 20 0 0 20 0 1 0 900 0 0\n")
    proc.set_load(3.26)
    samples: list[LocalMetrics] = []
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(
                lambda task_status: serve_metrics(
                    CONFIG,
                    samples.append,
                    distccd_pids=lambda: [10056],
                    proc_root=tmp_path,
                    cpus=lambda: 2,
                    ticks_per_second=100,
                    task_status=task_status,
                )
            )
            nursery.cancel_scope.cancel()
    (sample,) = samples
    # Announced: everything but the served job (peers' jobs compete with all of it).
    assert sample.foreign_load == pytest.approx(2.26)
    assert sample.build_load == 1.0  # the served job's cc1 is not counted twice
    # The owner's load is the browser alone: round(2 - 1.26) = 1 slot, not round(2 - 2.26) = 0.
    assert sample.slots == 1
