"""The CPU limit of this process's cgroup, from the text of the files that describe it.

A container's CPU limit, a systemd `CPUQuota=`, or a test bed's throttled workstation
all cap the CPU time our distccd's jobs get without narrowing the affinity mask, so a
machine held to 15 % of one CPU would otherwise offer as many slots as an idle one.
The daemon reads the files; this module only parses their text and says which files
to read, so every rule is tested without a cgroup.  Rules (docs/metrics.md):

* `/proc/self/cgroup` names our cgroup in each hierarchy: `ID:CONTROLLERS:PATH`, the
  cgroup v2 one as `0::PATH`; `/proc/self/mountinfo` says where each hierarchy is
  mounted and which part of it the mount shows (its root).
* cgroup v2: `cpu.max` holds `QUOTA PERIOD` or `max PERIOD`; cgroup v1 (the `cpu`
  controller): `cpu.cfs_quota_us` (-1 = none) over `cpu.cfs_period_us`.
* A parent's limit also holds for its children, so every directory from our cgroup up
  to the mount's root is read; the tightest limit wins.  No limit anywhere: None.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from posixpath import join, normpath

V1_QUOTA = "cpu.cfs_quota_us"
V1_PERIOD = "cpu.cfs_period_us"
V2_MAX = "cpu.max"

#: A limit above this many CPUs is no limit (a quota cannot usefully exceed the
#: machine's CPUs, and a garbage file must not produce an absurd figure).
MAX_LIMIT_CPUS = 1 << 20


class CgroupVersion(Enum):
    """Which interface a cgroup directory offers for the CPU limit."""

    V1 = "v1"
    V2 = "v2"


@dataclass(frozen=True, slots=True)
class Membership:
    """One line of `/proc/self/cgroup`: our cgroup's path in one hierarchy."""

    controllers: tuple[str, ...]  # () for the cgroup v2 hierarchy
    path: str


@dataclass(frozen=True, slots=True)
class CgroupMount:
    """A cgroup filesystem from `/proc/self/mountinfo`."""

    root: str  # the part of the hierarchy the mount shows ("/" unless in a container)
    mount_point: str
    version: CgroupVersion
    controllers: tuple[str, ...]  # v1: from the super options ("cpu", "cpuacct"...)


@dataclass(frozen=True, slots=True)
class LimitDirectory:
    """A directory whose CPU limit applies to us, and how to read it."""

    path: str
    version: CgroupVersion


def parse_proc_cgroup(text: str) -> list[Membership]:
    """Every well-formed line of `/proc/self/cgroup`; other lines are skipped."""
    memberships = []
    for line in text.splitlines():
        fields = line.split(":", 2)
        if len(fields) != 3 or not fields[0].isdigit() or not fields[2].startswith("/"):
            continue
        controllers = tuple(name for name in fields[1].split(",") if name)
        memberships.append(Membership(controllers, fields[2]))
    return memberships


_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes (\\040...)."""
    return _OCTAL_ESCAPE.sub(lambda match: chr(int(match.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[CgroupMount]:
    """The cgroup and cgroup2 mounts in `/proc/self/mountinfo`; other lines are skipped.

    A line is `ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS [OPTIONAL...] - TYPE SOURCE
    SUPER_OPTIONS`; the optional fields vary, so the type is found after the `-`.
    """
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields[6:]:
            continue
        separator = fields.index("-", 6)
        tail = fields[separator + 1 :]
        if len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        root, mount_point = _unescape(fields[3]), _unescape(fields[4])
        if tail[0] == "cgroup2":
            mounts.append(CgroupMount(root, mount_point, CgroupVersion.V2, ()))
        else:
            options = tuple(tail[2].split(","))
            mounts.append(CgroupMount(root, mount_point, CgroupVersion.V1, options))
    return mounts


def _relative(path: str, root: str) -> str | None:
    """`path` below the mount's `root` ("" for the root itself), or None if outside it."""
    path, root = normpath(path), normpath(root)
    if root == "/":
        return path.lstrip("/")
    if path == root:
        return ""
    if path.startswith(root + "/"):
        return path[len(root) + 1 :]
    return None


def _chain(mount_point: str, relative: str) -> list[str]:
    """The directories from our cgroup's up to the mount point, ours first."""
    parts = [part for part in relative.split("/") if part]  # normpath left no "." or ".."
    return [join(mount_point, *parts[:depth]) for depth in range(len(parts), -1, -1)]


def _mount_of(membership: Membership, mounts: Iterable[CgroupMount]) -> CgroupMount | None:
    """The mount showing the hierarchy this membership line is about, if it is mounted."""
    for mount in mounts:
        if membership.controllers == () and mount.version is CgroupVersion.V2:
            return mount
        if "cpu" in membership.controllers and "cpu" in mount.controllers:
            return mount
    return None


def limit_directories(proc_cgroup: str, mountinfo: str) -> list[LimitDirectory]:
    """Directories whose CPU limit applies to this process: for the v1 `cpu` controller
    and for cgroup v2, from our own cgroup up to the top of what is mounted."""
    mounts = parse_mountinfo(mountinfo)
    directories: list[LimitDirectory] = []
    for membership in parse_proc_cgroup(proc_cgroup):
        mount = _mount_of(membership, mounts)
        if mount is None:
            continue
        relative = _relative(membership.path, mount.root)
        if relative is None:  # our cgroup is outside what this mount shows
            continue
        directories += [
            LimitDirectory(path, mount.version) for path in _chain(mount.mount_point, relative)
        ]
    return directories


def _limit(quota: float, period: float) -> float | None:
    if not (period > 0 and quota > 0):
        return None
    cpus = quota / period
    return cpus if cpus <= MAX_LIMIT_CPUS else None


def parse_cpu_max(text: str) -> float | None:
    """CPUs a cgroup v2 `cpu.max` ("QUOTA PERIOD" or "max PERIOD") allows; None = no limit
    (also for text that does not parse: a limit we cannot read must not starve the node)."""
    fields = text.split()
    if len(fields) != 2 or not fields[0].isdigit() or not fields[1].isdigit():
        return None
    return _limit(int(fields[0]), int(fields[1]))


def parse_cfs(quota_text: str, period_text: str) -> float | None:
    """CPUs a cgroup v1 `cpu.cfs_quota_us` over `cpu.cfs_period_us` allows; None when the
    quota is -1 (no limit) or either file does not parse."""
    try:
        quota, period = int(quota_text.strip()), int(period_text.strip())
    except ValueError:
        return None
    return _limit(quota, period)


def tightest(limits: Iterable[float | None]) -> float | None:
    """The smallest of the limits found, or None when there is none."""
    found = [limit for limit in limits if limit is not None]
    return min(found) if found else None


def effective_cpus(affinity: int, limit: float | None) -> float:
    """The CPU time, in CPUs, jobs may use: the affinity mask, capped by the limit."""
    return float(affinity) if limit is None else min(float(affinity), limit)
