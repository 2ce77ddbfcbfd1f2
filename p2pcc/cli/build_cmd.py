"""`p2pcc build CMD…`: run a build with the links first on PATH and `-j` from the table.

A GNU make (4.0 or later) given no `-j` runs as our child with a jobserver p2pcc holds
and sizes by the pool while the build runs (`build_runner.py`, `core/jobserver.py`):
the live -j.  Any other build tool replaces this process (exec), so its exit status,
signals and terminal are the build's own, with a fixed `-jN` (N from `p2pcc jobs`): on
the command line of make and ninja unless the user gave a `-j`/`--jobs` (or MAKEFLAGS
already carries one, as inside a parallel make); for any other command (a script,
`cmake --build`) through MAKEFLAGS and CMAKE_BUILD_PARALLEL_LEVEL to the makes and
cmakes it runs, unless already set.  `--fixed-jobs` asks for the fixed -j with make
too.  With the daemon down the build still runs, locally at this machine's CPU count,
and says so once: the build is marked as warned, so the wrappers stay quiet.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from p2pcc.cli.hosts_cmd import DEFAULT_COMPILER, local_cpus, table_reader
from p2pcc.cli.link_install import default_link_dir, setting_line, wrapper_settings
from p2pcc.config import load_config
from p2pcc.core.errors import P2pccError
from p2pcc.core.jobserver import Style, jobserver_makeflags
from p2pcc.wrapper.lookup import ENTRY_NAME, PYTHON_ENTRY_NAME, is_link_dir, path_dirs
from p2pcc.wrapper.main import Table
from p2pcc.wrapper.trampoline import is_trampoline
from p2pcc.wrapper.warn import mark_build

if TYPE_CHECKING:
    from p2pcc.cli.build_runner import SideTask

MAKES = frozenset(("make", "gmake", "bmake", "remake"))
NINJAS = frozenset(("ninja", "samu"))

#: make options whose value is the rest of the word or the next word.
_MAKE_VALUE_OPTIONS = "CfIoW"
#: ninja options whose value is the rest of the word or the next word.
_NINJA_VALUE_OPTIONS = "dfkltwC"
#: A -j in MAKEFLAGS, or the jobserver of a parallel make we run inside.
_MAKEFLAGS_JOBS = re.compile(r"(?:^|\s)(?:-j|--jobs|--jobserver-auth|--jobserver-fds)")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `build` command."""
    parser = sub.add_parser(
        "build",
        help="run a build with the compiler links and a -j from the table",
        description="Run CMD with the p2pcc link directory first on PATH and -jN from "
        "`p2pcc jobs` (for make and ninja on the command line unless CMD has a -j; for "
        "anything else through MAKEFLAGS and CMAKE_BUILD_PARALLEL_LEVEL).  Exits with "
        "CMD's exit status.",
    )
    parser.add_argument("--config", metavar="FILE", help="read this file instead of searching")
    parser.add_argument(
        "--links",
        metavar="DIR",
        help="the link directory (default: that of `p2pcc install-links`)",
    )
    parser.add_argument(
        "--compiler",
        default=DEFAULT_COMPILER,
        metavar="NAME",
        help=f"the compiler whose table gives -j (default: {DEFAULT_COMPILER})",
    )
    parser.add_argument(
        "--fixed-jobs",
        action="store_true",
        help="give make a fixed -j as for other tools, not a jobserver that follows the pool",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="say on stderr each time the pool's jobs for the build change",
    )
    parser.add_argument(
        "--trace",
        metavar="FILE",
        type=Path,
        help="write a Chrome trace of the build (one track per host, one span per compile) "
        "to FILE, for ui.perfetto.dev or chrome://tracing",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, metavar="CMD", help="the build")
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    """Exec the build; returns only when it cannot be started (127)."""
    command: list[str] = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise P2pccError("no build command given: p2pcc build make …")
    env = os.environ
    link_dir = Path(os.path.abspath(args.links)) if args.links else default_link_dir()
    links_ok = _check_links(link_dir, args.config, env)
    name, read_table = table_reader(args.compiler, args.config, env)
    table = read_table()
    jobs = table.jobs
    if table.problem or jobs < 1:
        jobs = local_cpus()
        why = table.problem or f"the daemon has no line for {name} yet"
        print(f"p2pcc: {why}; building locally with -j{jobs}", file=sys.stderr)
        mark_build(env)
    style = None if args.fixed_jobs else live_style(command, env)
    links = link_dir if links_ok else None
    if style is not None or args.trace is not None:
        # Imported here: trio costs every other command's start-up ~0.15 s.
        from p2pcc.cli import build_runner

        server = None if style is None else build_runner.Jobserver(style)
        auth = None if server is None else server.auth
        argv, build_env = plan_build(command, env, jobs, links, jobserver_auth=auth)
        said = partial(_say_jobs, name) if args.verbose else _quiet
        jobs_now = partial(pool_jobs, read_table)
        tasks = [] if args.trace is None else [_trace_task(args.trace, build_env, read_table)]
        return build_runner.run(
            argv, build_env, server=server, jobs_now=jobs_now, side_tasks=tasks, said=said
        )
    argv, build_env = plan_build(command, env, jobs, links)
    sys.stderr.flush()
    try:
        os.execvpe(argv[0], argv, build_env)  # noqa: S606 - the build replaces us
    except OSError as error:
        print(f"p2pcc: cannot run {argv[0]}: {error.strerror}", file=sys.stderr)
    return 127


def live_style(command: Sequence[str], env: Mapping[str, str]) -> Style | None:
    """The jobserver style for a live -j, or None when the build keeps a fixed one: not
    a make, a -j of the user's own (on its command line or in MAKEFLAGS), or not a GNU
    make that takes a jobserver."""
    if os.path.basename(command[0]) not in MAKES or _MAKEFLAGS_JOBS.search(
        env.get("MAKEFLAGS", "")
    ):
        return None
    if _has_jobs(command[1:], _MAKE_VALUE_OPTIONS, "--jobs"):
        return None
    from p2pcc.cli.build_runner import make_style

    return make_style(command[0], env)


def pool_jobs(read_table: Callable[[], Table]) -> int:
    """The jobs the pool takes for the build now: `p2pcc jobs`, or this machine's CPUs
    while the daemon is down or has no line for the compiler."""
    try:
        table = read_table()
    except (OSError, P2pccError):
        return local_cpus()
    return table.jobs if not table.problem and table.jobs >= 1 else local_cpus()


def _trace_task(
    path: Path, build_env: Mapping[str, str], read_table: Callable[[], Table]
) -> SideTask:
    """The trace recorder of `--trace`: distcc's state files in the build's DISTCC_DIR
    (distcc's default, ~/.distcc, without one), the pool's slots from the state file."""
    home = build_env.get("HOME") or os.path.expanduser("~")
    distcc_dir = Path(build_env.get("DISTCC_DIR") or os.path.join(home, ".distcc"))

    def slots() -> int | None:
        try:
            table = read_table()
        except (OSError, P2pccError):
            return None
        return None if table.problem else table.jobs

    from p2pcc.build_trace.recorder import recording

    return recording(Path(os.path.abspath(path)), distcc_dir, slots)


def _say_jobs(name: str, jobs: int) -> None:
    print(f"p2pcc: the pool takes {jobs} {name} job(s) at once now", file=sys.stderr, flush=True)


def _quiet(jobs: int) -> None:
    pass


def _check_links(link_dir: Path, config_file: str | None, env: Mapping[str, str]) -> bool:
    """Whether `link_dir` holds our links; says why not, or that they are out of date."""
    if not is_link_dir(str(link_dir)) or not (link_dir / ENTRY_NAME).exists():
        print(
            f"p2pcc: no p2pcc links in {link_dir} (run `p2pcc install-links`): "
            "the build compiles locally",
            file=sys.stderr,
        )
        return False
    if not is_trampoline(link_dir):
        print(
            f"p2pcc: the links in {link_dir} were made by an older p2pcc and start Python "
            f"on every compiler call; `p2pcc install-links {link_dir}` refreshes them",
            file=sys.stderr,
        )
        return True
    try:
        entry = link_dir / PYTHON_ENTRY_NAME
        current = entry.read_text(encoding="utf-8", errors="surrogateescape")
        settings = wrapper_settings(load_config(config_file, env), env, link_dir)
    except (OSError, P2pccError):
        return True
    # Only what the configuration decides: the environment may differ from install time.
    baked: dict[str, object] = {"distcc": settings.distcc, "state_max_age": settings.state_max_age}
    if not env.get("P2PCC_RUNTIME_DIR"):
        baked["state_files"] = settings.state_files
    if any(setting_line(key, value) not in current for key, value in baked.items()):
        print(
            f"p2pcc: the links in {link_dir} were made with other settings; "
            f"`p2pcc install-links {link_dir}` refreshes them",
            file=sys.stderr,
        )
    return True


def plan_build(
    command: Sequence[str],
    env: Mapping[str, str],
    jobs: int,
    link_dir: Path | None,
    *,
    jobserver_auth: str | None = None,
) -> tuple[list[str], dict[str, str]]:
    """The argv and environment of the build: links first on PATH, `-j` where it goes
    (for make with `jobserver_auth`, the jobserver in MAKEFLAGS instead)."""
    argv = list(command)
    build_env = dict(env)
    if link_dir is not None:
        entries = [
            e for e in path_dirs(env.get("PATH")) if os.path.abspath(e or ".") != str(link_dir)
        ]
        build_env["PATH"] = ":".join([str(link_dir), *entries])
    tool = os.path.basename(argv[0])
    makeflags = env.get("MAKEFLAGS", "")
    if tool in MAKES and jobserver_auth is not None:
        build_env["MAKEFLAGS"] = jobserver_makeflags(makeflags, jobserver_auth)
    elif tool in MAKES:
        if not _has_jobs(argv[1:], _MAKE_VALUE_OPTIONS, "--jobs") and not _MAKEFLAGS_JOBS.search(
            makeflags
        ):
            argv.insert(1, f"-j{jobs}")
    elif tool in NINJAS:
        if not _has_jobs(argv[1:], _NINJA_VALUE_OPTIONS, None):
            argv.insert(1, f"-j{jobs}")
    else:
        if not _MAKEFLAGS_JOBS.search(makeflags):
            build_env["MAKEFLAGS"] = f"{makeflags} -j{jobs}".strip()
        build_env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", str(jobs))
    return argv, build_env


def _has_jobs(args: Sequence[str], value_options: str, long_option: str | None) -> bool:
    """Whether getopt-style `args` contain -j (also inside -kj8), or `long_option`."""
    skip_next = False
    for arg in args:
        if skip_next:
            skip_next = False
            continue
        if arg == "--":
            return False
        if long_option and (arg == long_option or arg.startswith(long_option + "=")):
            return True
        if not arg.startswith("-") or arg.startswith("--"):
            continue
        for index, letter in enumerate(arg[1:], start=1):
            if letter == "j":
                return True
            if letter in value_options:
                skip_next = index == len(arg) - 1  # the value is the next word
                break
    return False
