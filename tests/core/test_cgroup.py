"""The cgroup CPU limit: which files to read, and what their text says."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pcc.core import cgroup
from p2pcc.core.cgroup import CgroupMount, CgroupVersion, LimitDirectory, Membership

V1 = CgroupVersion.V1
V2 = CgroupVersion.V2

#: This machine's own files (Debian 12 guest, cgroup v1 with a v2 hierarchy beside it),
#: inside a test-bed workstation throttled with `Workstation.throttle`.
BED_CGROUP = """\
9:name=systemd:/
8:pids:/
4:memory:/process_api/990cffa234068b1616f800d1457d3909
3:cpuset:/
2:cpuacct:/
1:cpu:/p2pcc-1a2b-slow
0::/
"""
BED_MOUNTINFO = """\
23 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""

#: A systemd machine on pure cgroup v2, our daemon in its service's cgroup.
V2_CGROUP = "0::/system.slice/p2pcc.service\n"
V2_MOUNTINFO = (
    "29 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4"
    " - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n"
)

#: Docker without a cgroup namespace: the mount shows only the container's part.
DOCKER_CGROUP = "12:cpu,cpuacct:/docker/0123abcd\n11:memory:/docker/0123abcd\n"
DOCKER_MOUNTINFO = (
    "713 705 0:30 /docker/0123abcd /sys/fs/cgroup/cpu,cpuacct ro,nosuid master:12"
    " - cgroup cgroup rw,cpu,cpuacct\n"
)


def test_proc_cgroup_lines() -> None:
    assert cgroup.parse_proc_cgroup("1:cpu,cpuacct:/a/b\n0::/\nnot a line\nx:cpu:/\n") == [
        Membership(("cpu", "cpuacct"), "/a/b"),
        Membership((), "/"),
    ]


def test_mountinfo_keeps_cgroup_mounts_only() -> None:
    assert cgroup.parse_mountinfo(BED_MOUNTINFO) == [
        CgroupMount("/", "/sys/fs/cgroup/cpu", V1, ("rw", "cpu")),
        CgroupMount("/", "/sys/fs/cgroup/cpuacct", V1, ("rw", "cpuacct")),
        CgroupMount("/", "/sys/fs/cgroup/memory", V1, ("rw", "memory")),
        CgroupMount("/", "/sys/fs/cgroup/unified", V2, ()),
    ]


def test_mountinfo_optional_fields_and_escapes() -> None:
    line = "40 31 0:37 /a\\040b /mnt/my\\040cgroups rw shared:9 master:2 - cgroup2 none rw\n"
    assert cgroup.parse_mountinfo(line) == [CgroupMount("/a b", "/mnt/my cgroups", V2, ())]


@pytest.mark.parametrize(
    "line",
    ["", "short line", "1 2 3 4 5 6 - cgroup", "1 2 3 4 5 6 no separator cgroup x y"],
)
def test_mountinfo_skips_what_it_cannot_read(line: str) -> None:
    assert cgroup.parse_mountinfo(line) == []


def test_a_throttled_bed_workstation_reads_its_cgroup_and_every_parent() -> None:
    assert cgroup.limit_directories(BED_CGROUP, BED_MOUNTINFO) == [
        LimitDirectory("/sys/fs/cgroup/cpu/p2pcc-1a2b-slow", V1),
        LimitDirectory("/sys/fs/cgroup/cpu", V1),
        LimitDirectory("/sys/fs/cgroup/unified", V2),
    ]


def test_a_systemd_service_on_cgroup_v2() -> None:
    assert cgroup.limit_directories(V2_CGROUP, V2_MOUNTINFO) == [
        LimitDirectory("/sys/fs/cgroup/system.slice/p2pcc.service", V2),
        LimitDirectory("/sys/fs/cgroup/system.slice", V2),
        LimitDirectory("/sys/fs/cgroup", V2),
    ]


def test_a_container_sees_its_own_cgroup_at_the_mount_point() -> None:
    assert cgroup.limit_directories(DOCKER_CGROUP, DOCKER_MOUNTINFO) == [
        LimitDirectory("/sys/fs/cgroup/cpu,cpuacct", V1)
    ]
    below = DOCKER_CGROUP.replace("0123abcd\n", "0123abcd/build\n", 1)
    assert cgroup.limit_directories(below, DOCKER_MOUNTINFO) == [
        LimitDirectory("/sys/fs/cgroup/cpu,cpuacct/build", V1),
        LimitDirectory("/sys/fs/cgroup/cpu,cpuacct", V1),
    ]


def test_a_cgroup_outside_the_mount_or_unmounted_gives_nothing() -> None:
    elsewhere = "12:cpu,cpuacct:/docker/other\n"
    assert cgroup.limit_directories(elsewhere, DOCKER_MOUNTINFO) == []
    assert cgroup.limit_directories(DOCKER_CGROUP, "") == []
    assert cgroup.limit_directories("", DOCKER_MOUNTINFO) == []


def test_a_path_never_climbs_out_of_the_mount() -> None:
    assert cgroup.limit_directories("0::/a/../../etc/./x\n", V2_MOUNTINFO) == [
        LimitDirectory("/sys/fs/cgroup/etc/x", V2),
        LimitDirectory("/sys/fs/cgroup/etc", V2),
        LimitDirectory("/sys/fs/cgroup", V2),
    ]


@pytest.mark.parametrize(
    ("text", "cpus"),
    [
        ("15000 100000\n", 0.15),
        ("150000 100000", 1.5),
        ("max 100000\n", None),
        ("0 100000", None),
        ("15000 0", None),
        ("", None),
        ("-1 100000", None),
        ("15000 100000 extra", None),
        (f"{10**15} 1", None),  # absurd: no limit rather than a giant figure
    ],
)
def test_cpu_max(text: str, cpus: float | None) -> None:
    assert cgroup.parse_cpu_max(text) == cpus


@pytest.mark.parametrize(
    ("quota", "period", "cpus"),
    [
        ("15000\n", "100000\n", 0.15),
        ("200000", "100000", 2.0),
        ("-1\n", "100000\n", None),
        ("garbage", "100000", None),
        ("15000", "", None),
    ],
)
def test_cfs_quota_over_period(quota: str, period: str, cpus: float | None) -> None:
    assert cgroup.parse_cfs(quota, period) == cpus


def test_the_tightest_limit_wins() -> None:
    assert cgroup.tightest([None, 2.0, 0.15, None]) == 0.15
    assert cgroup.tightest([None, None]) is None
    assert cgroup.tightest([]) is None


def test_effective_cpus_is_the_affinity_capped_by_the_limit() -> None:
    assert cgroup.effective_cpus(2, None) == 2.0
    assert cgroup.effective_cpus(2, 0.15) == 0.15
    assert cgroup.effective_cpus(2, 8.0) == 2.0


@given(st.text(max_size=300), st.text(max_size=300))
def test_any_text_gives_directories_not_errors(membership: str, mountinfo: str) -> None:
    mount_points = {mount.mount_point for mount in cgroup.parse_mountinfo(mountinfo)}
    for directory in cgroup.limit_directories(membership, mountinfo):
        assert any(
            directory.path == point or directory.path.startswith(point.rstrip("/") + "/")
            for point in mount_points
        )


@given(st.text(max_size=40), st.text(max_size=40))
def test_any_limit_file_gives_a_positive_limit_or_none(first: str, second: str) -> None:
    for limit in (cgroup.parse_cpu_max(first), cgroup.parse_cfs(first, second)):
        assert limit is None or 0 < limit <= cgroup.MAX_LIMIT_CPUS
