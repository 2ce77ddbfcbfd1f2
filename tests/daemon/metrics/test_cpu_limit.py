"""Reading our cgroup's CPU limit: from a fake tree, and from a real cgroup of this kernel."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from p2pcc.config.model import MetricsConfig
from p2pcc.core.metrics import GIB, LocalMetrics
from p2pcc.daemon.metrics.sampler import read_cpu_limit, serve_metrics
from tests.daemon.metrics.test_sampler import FakeProc

CPU_V1 = Path("/sys/fs/cgroup/cpu")
REPO = Path(__file__).resolve().parents[2]


def fake_tree(root: Path, membership: str, mounts: dict[str, str]) -> Path:
    """A /proc/self with `membership` as its cgroup file and one mountinfo line per
    (mount point under root: "TYPE SUPER_OPTIONS") entry; returns the fake /proc."""
    proc = root / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "cgroup").write_text(membership)
    lines = [
        f"{30 + index} 23 0:{40 + index} / {root / point} rw,relatime - {kind} cgroup {options}"
        for index, (point, (kind, options)) in enumerate(
            (point, spec.split()) for point, spec in mounts.items()
        )
    ]
    (proc / "self" / "mountinfo").write_text("\n".join(lines) + "\n")
    return proc


def test_a_v1_quota_in_our_cgroup(tmp_path: Path) -> None:
    proc = fake_tree(tmp_path, "1:cpu:/slow\n0::/\n", {"cpu": "cgroup rw,cpu"})
    (tmp_path / "cpu" / "slow").mkdir(parents=True)
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    (tmp_path / "cpu" / "slow" / "cpu.cfs_quota_us").write_text("15000\n")
    (tmp_path / "cpu" / "slow" / "cpu.cfs_period_us").write_text("100000\n")
    assert read_cpu_limit(proc) == 0.15


def test_a_parents_v2_limit_holds_for_its_child(tmp_path: Path) -> None:
    proc = fake_tree(tmp_path, "0::/user.slice/build\n", {"cg": "cgroup2 rw"})
    child = tmp_path / "cg" / "user.slice" / "build"
    child.mkdir(parents=True)
    (child / "cpu.max").write_text("max 100000\n")
    (child.parent / "cpu.max").write_text("150000 100000\n")  # the root has no cpu.max
    assert read_cpu_limit(proc) == 1.5


def test_no_limit_and_unreadable_files_mean_none(tmp_path: Path) -> None:
    assert read_cpu_limit(tmp_path / "missing") is None
    proc = fake_tree(tmp_path, "0::/gone\n1:cpu:/\n", {"cg": "cgroup2 rw", "cpu": "cgroup rw,cpu"})
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_bytes(b"\xff\xfe")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert read_cpu_limit(proc) is None


async def test_samples_under_a_limit(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    FakeProc(tmp_path)
    limits = iter([0.15, 0.15, None])
    samples: list[LocalMetrics] = []
    caplog.set_level("INFO", "p2pcc.daemon.metrics")
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(
                lambda task_status: serve_metrics(
                    MetricsConfig(job_memory=GIB, refresh=1.5),
                    samples.append,
                    distccd_pids=list,
                    proc_root=tmp_path,
                    cpus=lambda: 2,
                    cpu_limit=lambda: next(limits),
                    ticks_per_second=100,
                    task_status=task_status,
                )
            )
            await trio.sleep(3.1)
            nursery.cancel_scope.cancel()
    got = [(s.cpus, s.slots, s.cpu_limit, s.slot_speed) for s in samples]
    assert got == [(1, 0, 0.15, 0.15), (1, 0, 0.15, 0.15), (2, 2, None, 1.0)]
    assert [r.getMessage() for r in caplog.records] == [
        "cgroup CPU limit: 0.15 CPUs",
        "cgroup CPU limit: none",
    ]


@pytest.fixture
def throttled_cgroup() -> Iterator[Path]:
    """A real cgroup v1 `cpu` child held to 15 % of a CPU, with a child of its own."""
    if os.geteuid() != 0 or not (CPU_V1 / "cpu.cfs_quota_us").exists():
        pytest.skip("needs root and the cgroup v1 cpu controller")
    parent = CPU_V1 / f"p2pcc-test-limit-{uuid.uuid4().hex[:8]}"
    parent.mkdir()
    (parent / "inner").mkdir()
    period = int((CPU_V1 / "cpu.cfs_period_us").read_text())
    (parent / "cpu.cfs_quota_us").write_text(str(period * 15 // 100))
    try:
        yield parent
    finally:
        (parent / "inner").rmdir()
        parent.rmdir()


def limit_seen_in(cgroup: Path) -> str:
    """What `read_cpu_limit` says in a process that joins `cgroup` before starting."""
    probe = "from p2pcc.daemon.metrics.sampler import read_cpu_limit; print(read_cpu_limit())"
    join = 'echo $$ > "$0/cgroup.procs" && exec "$@"'
    result = subprocess.run(
        ["sh", "-c", join, str(cgroup), sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=True,
    )
    return result.stdout.strip()


def test_a_real_cgroup_and_its_parent(throttled_cgroup: Path) -> None:
    assert limit_seen_in(throttled_cgroup) == "0.15"
    assert limit_seen_in(throttled_cgroup / "inner") == "0.15"  # the parent's quota holds
