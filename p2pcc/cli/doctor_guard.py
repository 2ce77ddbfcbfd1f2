"""How `p2pcc status` and `p2pcc doctor` show the job guard (`node.job_guard` in the
status document, p2pcc.core.guard_refusals): refusals of peers' jobs, or why jobs
cannot be guarded, in which case the daemon does not serve (docs/distccd.md, "The job
guard and sandbox")."""

from __future__ import annotations

import os
import pwd
from collections.abc import Mapping
from typing import Any

from p2pcc.cli.doctor_checks import Finding, fail, ok, warn
from p2pcc.core.errors import P2pccError
from p2pcc.daemon.distccd.guard_files import find_bwrap, sandbox_problem

RESTART_AFTER_FIX = (
    "do what it says, then restart the daemon (`systemctl restart p2pcc`); docs/distccd.md, "
    "'The job guard and sandbox'"
)


def guard_line(node: Mapping[str, Any]) -> str | None:
    """The guard's line under the status table; None for a daemon that reports none."""
    guard = node.get("job_guard")
    if not isinstance(guard, Mapping):
        return None
    problem = guard.get("problem")
    if isinstance(problem, str):
        return f"job guard: NOT IN PLACE, distccd does not serve: {_printable(problem)}"
    line = f"job guard: {_count(guard.get('refusals'))} job(s) refused"
    reasons = guard.get("by_reason")
    if isinstance(reasons, Mapping) and reasons:
        top = sorted(reasons.items(), key=lambda item: -item[1] if isinstance(item[1], int) else 0)
        line += " (" + "; ".join(f"{_printable(str(r))}: {_count(n)}" for r, n in top[:3]) + ")"
    return line


def check_guard(status: Mapping[str, Any] | None, distccd_user: str) -> Finding:
    """Jobs from peers run guarded and sandboxed: what the daemon says, else whether
    bwrap can build the sandbox here as distccd's user."""
    guard = status.get("node", {}).get("job_guard") if status is not None else None
    if isinstance(guard, Mapping):
        problem = guard.get("problem")
        if isinstance(problem, str):
            return fail(
                "job guard",
                f"not in place, so distccd does not serve: {problem}",
                RESTART_AFTER_FIX,
            )
        return ok(
            "job guard",
            f"every job runs guarded and sandboxed; {_count(guard.get('refusals'))} refused",
        )
    problem = local_problem(distccd_user)
    if problem is not None:
        return fail("job guard", problem, RESTART_AFTER_FIX)
    return warn(
        "job guard", "bwrap works here, but the daemon reports no job guard", "start the daemon"
    )


def local_problem(distccd_user: str) -> str | None:
    """Why the daemon could not sandbox jobs here, or None (checked as distccd's user when
    we are root)."""
    try:
        bwrap = find_bwrap(dict(os.environ))
    except P2pccError as error:
        return str(error)
    user = None
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam(distccd_user)
        except KeyError:
            return f"user {distccd_user!r} (distccd.user) does not exist"
    return sandbox_problem(bwrap, user)


def _count(value: object) -> str:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else "?"


def _printable(text: str) -> str:
    return text if text.isprintable() else text.encode("unicode_escape").decode()
