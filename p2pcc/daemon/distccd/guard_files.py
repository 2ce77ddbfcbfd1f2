"""Putting the job guard in place before distccd starts: scripts, list, directories.

distccd runs every job's compiler through `DISTCC_CMDLIST` (see `docs/distccd.md`): it
maps the compiler name a client sends, by its last path component, to the line of that
list with the same last component, and refuses a name the list lacks.  Each line names
a guard script here (`p2pcc.core.job_guard_sh`), which ends in bwrap and the real
compiler.  distccd loads the list once per child process and, when it cannot read it,
runs every job unguarded and without its own whitelist: so the list is written, whole,
before distccd starts, and stays while it runs.

Where things go (distccd's directory is `runtime_dir/distccd`, its user's):

- `runtime_dir/guard/`: the scripts and the list, root's (the daemon's), mode 0755,
  which distccd's user cannot change;
- `runtime_dir/distccd/jobs/`: distccd's TMPDIR, its user's, mode 0700: job files;
- `runtime_dir/distccd/guard-refusals`: the line each refusal appends (the guard runs
  as distccd's user), which `guard_watch` reads as hostile input.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from p2pcc.core.distccd_args import WHITELIST_DIR
from p2pcc.core.errors import P2pccError
from p2pcc.core.job_guard_sh import INPUT_WORD, OUTPUT_WORD, SystemDir, render_guard, sandbox_argv
from p2pcc.daemon.distccd.system import read_whitelist
from p2pcc.daemon.runtime_dir import open_directory
from p2pcc.safe_files import replace_file

log = logging.getLogger("p2pcc.daemon.distccd")

#: Top-level directories a compiler may need besides /usr (links on a merged /usr).
_SYSTEM_DIRS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
#: How long the sandbox check at start may take.
_CHECK_TIMEOUT = 10.0

INSTALL_BWRAP = "install bubblewrap (Debian: apt install bubblewrap)"


@dataclass(frozen=True, slots=True)
class GuardPaths:
    """Where the guard's files are, for distccd's directory `distccd_dir`."""

    guard_dir: Path
    cmdlist: Path
    job_dir: Path
    report_file: Path

    @classmethod
    def beside(cls, distccd_dir: Path) -> GuardPaths:
        guard_dir = distccd_dir.parent / "guard"
        return cls(
            guard_dir=guard_dir,
            cmdlist=guard_dir / "cmdlist",
            job_dir=distccd_dir / "jobs",
            report_file=distccd_dir / "guard-refusals",
        )


def find_bwrap(env: Mapping[str, str]) -> str:
    """bwrap's absolute path; P2pccError saying what to install."""
    found = shutil.which("bwrap", path=env.get("PATH", os.defpath))
    if not found:
        raise P2pccError(
            f"bwrap was not found on PATH, so jobs cannot be sandboxed: {INSTALL_BWRAP}"
        )
    return os.path.abspath(found)


def system_dirs() -> list[SystemDir]:
    """This system's top-level library and program directories, as the sandbox shows them."""
    found = []
    for path in _SYSTEM_DIRS:
        if os.path.islink(path):
            found.append(SystemDir(path, os.readlink(path)))
        elif os.path.isdir(path):
            found.append(SystemDir(path))
    return found


def offered_compilers(names: set[str], env: Mapping[str, str]) -> dict[str, str]:
    """For each whitelisted name, the compiler it runs on distccd's PATH: found, not a
    distcc masquerade, and inside the sandbox's /usr (others are left out, so refused)."""
    compilers = {}
    for name in sorted(names):
        found = shutil.which(name, path=env.get("PATH", os.defpath))
        if not found or "\n" in found:
            continue
        real = os.path.realpath(found)
        if os.path.basename(real) in ("distcc", "ccache") or not real.startswith("/usr/"):
            continue
        compilers[name] = os.path.abspath(found)
    return compilers


def sandbox_problem(bwrap: str, user: pwd.struct_passwd | None) -> str | None:
    """Why bwrap cannot build the job sandbox as distccd's user here, or None when it can."""
    # The sandbox's own /tmp, an empty tmpfs, as the job directory.
    argv = _without_job_binds(sandbox_argv(bwrap, system_dirs(), "/tmp", "/bin/true"))  # noqa: S108
    try:
        run = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=_CHECK_TIMEOUT,
            cwd="/",
            user=user.pw_uid if user else None,
            group=user.pw_gid if user else None,
            extra_groups=[] if user else None,
            env={"PATH": "/usr/bin:/bin"},
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as error:
        return f"bwrap could not run: {error}"
    if run.returncode == 0:
        return None
    lines = run.stderr.decode(errors="replace").strip().splitlines()
    detail = lines[-1][:200] if lines else f"status {run.returncode}"
    who = user.pw_name if user else "of the daemon"
    return (
        f"bwrap cannot create the job sandbox as user {who} ({detail}): unprivileged user "
        "namespaces must be allowed (sysctl kernel.unprivileged_userns_clone=1 where it "
        "exists, user.max_user_namespaces > 0, no RestrictNamespaces= in the service unit)"
    )


def _without_job_binds(argv: list[str]) -> list[str]:
    """The sandbox command without the job's two file binds (the check has no job)."""
    kept: list[str] = []
    index = 0
    while index < len(argv):
        if argv[index] in ("--ro-bind", "--bind") and argv[index + 1] in (INPUT_WORD, OUTPUT_WORD):
            index += 3
            continue
        kept.append(argv[index])
        index += 1
    return kept


def install_guard(
    paths: GuardPaths, compilers: Mapping[str, str], bwrap: str, user: pwd.struct_passwd | None
) -> None:
    """Write the guard scripts and DISTCC_CMDLIST, and make distccd's job directory;
    P2pccError when that fails."""
    try:
        _write_guard_dir(paths, compilers, bwrap)
        _make_job_dir(paths.job_dir, user)
    except OSError as error:
        raise P2pccError(
            f"cannot put the job guard in place in {paths.guard_dir}: {error}"
        ) from None


def _write_guard_dir(paths: GuardPaths, compilers: Mapping[str, str], bwrap: str) -> None:
    with contextlib.suppress(FileExistsError):
        paths.guard_dir.mkdir(mode=0o755)
    fd = open_directory(paths.guard_dir, "the job guard's directory")
    try:
        os.fchmod(fd, 0o755)
        if os.fstat(fd).st_uid != os.geteuid():
            raise P2pccError(f"the job guard's directory {paths.guard_dir} is not the daemon's")
    finally:
        os.close(fd)
    layout = system_dirs()
    for name, compiler in compilers.items():
        script = render_guard(
            compiler_name=name,
            job_dir=str(paths.job_dir),
            report_file=str(paths.report_file),
            sandbox=sandbox_argv(bwrap, layout, str(paths.job_dir), compiler),
        )
        replace_file(paths.guard_dir / name, script.encode(), mode=0o755)
    for stale in set(os.listdir(paths.guard_dir)) - {*compilers, paths.cmdlist.name}:
        if not stale.startswith("."):
            (paths.guard_dir / stale).unlink()
    listing = "".join(f"{paths.guard_dir / name}\n" for name in sorted(compilers))
    replace_file(paths.cmdlist, listing.encode(), mode=0o644)


def _make_job_dir(job_dir: Path, user: pwd.struct_passwd | None) -> None:
    with contextlib.suppress(FileExistsError):
        job_dir.mkdir(mode=0o700)
    fd = open_directory(job_dir, "distccd's job directory")
    try:
        if user is not None:
            os.fchown(fd, user.pw_uid, user.pw_gid)
        os.fchmod(fd, 0o700)
    finally:
        os.close(fd)


def whitelist_names(directory: str = WHITELIST_DIR) -> set[str]:
    """distccd's whitelist (see `system.read_whitelist`), without names a guard script
    could not carry (a line break would split DISTCC_CMDLIST)."""
    return {name for name in read_whitelist(directory) if name.isprintable() and "/" not in name}


#: A report file larger than this is removed when distccd starts (its lines were read).
_REPORT_CAP = 1 << 20


def prepare_guard(
    distccd_dir: Path, user: pwd.struct_passwd | None, env: Mapping[str, str]
) -> dict[str, str]:
    """Put the guard in place for a distccd about to start; the environment distccd
    needs for it.  P2pccError (with the fix) when jobs cannot be guarded and sandboxed:
    distccd must then not serve."""
    paths = GuardPaths.beside(distccd_dir)
    bwrap = find_bwrap(env)
    problem = sandbox_problem(bwrap, user)
    if problem:
        raise P2pccError(problem)
    compilers = offered_compilers(whitelist_names(), env)
    if not compilers:
        log.warning("no compiler of distccd's whitelist %s is offered to peers", WHITELIST_DIR)
    install_guard(paths, compilers, bwrap, user)
    with contextlib.suppress(OSError):
        if os.lstat(paths.report_file).st_size > _REPORT_CAP:
            paths.report_file.unlink()
    return {"DISTCC_CMDLIST": str(paths.cmdlist), "TMPDIR": str(paths.job_dir)}
