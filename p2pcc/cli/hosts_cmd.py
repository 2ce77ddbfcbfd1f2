"""`p2pcc hosts [COMPILER]` and `p2pcc jobs [COMPILER]`: the wrapper's view, for scripts.

Both read the state file exactly as the wrapper does (same compiler on PATH, same
identification, same freshness rule).  `hosts` prints the DISTCC_HOSTS line the wrapper
would set for a distributable compile now, and exits 3 when the daemon is down (the
wrapper would compile locally and set nothing).  `jobs` prints the recommended `-j`:
local slots plus the matching peers' slots, or this machine's CPU count when the daemon
is down or does not know the compiler, so `make -j$(p2pcc jobs)` always works.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping
from functools import partial

from p2pcc.cli.link_install import default_link_dir, wrapper_settings
from p2pcc.config import load_config
from p2pcc.control_client import EXIT_NOT_RUNNING
from p2pcc.core.errors import P2pccError
from p2pcc.wrapper.lookup import find_real, path_dirs, remote_hosts
from p2pcc.wrapper.main import Table, read_table

DEFAULT_COMPILER = "cc"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `hosts` and `jobs` commands."""
    hosts = sub.add_parser(
        "hosts",
        help="print the DISTCC_HOSTS line the wrapper would use now",
        description="Print the DISTCC_HOSTS line the compiler wrapper would set now for "
        "COMPILER: the matching peers, best first, and this machine.  Exit status 3 "
        "when the daemon is not running (the wrapper then compiles locally).",
    )
    jobs = sub.add_parser(
        "jobs",
        help="print the recommended -j for a build",
        description="Print the recommended -j for a build with COMPILER: this machine's "
        "slots plus the free slots of the peers with the same compiler.  Without a "
        "running daemon, this machine's CPU count.",
    )
    for parser, handler in ((hosts, main_hosts), (jobs, main_jobs)):
        parser.add_argument(
            "compiler",
            nargs="?",
            default=DEFAULT_COMPILER,
            metavar="COMPILER",
            help=f"a compiler name on PATH or a path (default: {DEFAULT_COMPILER})",
        )
        parser.add_argument("--config", metavar="FILE", help="read this file instead of searching")
        parser.set_defaults(handler=handler)


def main_hosts(args: argparse.Namespace) -> int:
    """Print the DISTCC_HOSTS line; 3 when the daemon is down, 1 for an unknown compiler."""
    name, table = compiler_table(args.compiler, args.config, os.environ)
    if table.problem:
        print(f"p2pcc: {table.problem}; the wrapper compiles {name} locally", file=sys.stderr)
        return EXIT_NOT_RUNNING if table.down else 1
    if not table.hosts:
        print(f"p2pcc: the daemon has no DISTCC_HOSTS line for {name} yet", file=sys.stderr)
        return 1
    print(table.hosts)
    if not remote_hosts(table.hosts):
        print(f"p2pcc: no peer has {name}'s compiler now: it compiles locally", file=sys.stderr)
    return 0


def main_jobs(args: argparse.Namespace) -> int:
    """Print the recommended -j (the CPU count when the daemon cannot tell)."""
    name, table = compiler_table(args.compiler, args.config, os.environ)
    if table.problem or table.jobs < 1:
        cpus = local_cpus()
        why = table.problem or f"the daemon has no line for {name} yet"
        print(f"p2pcc: {why}; -j{cpus} for this machine alone", file=sys.stderr)
        print(cpus)
        return 0
    print(table.jobs)
    return 0


def local_cpus() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) or 1


def compiler_table(
    compiler: str, config_file: str | None, env: Mapping[str, str]
) -> tuple[str, Table]:
    """The compiler's name and what the state file says about it, as the wrapper sees it."""
    name, read = table_reader(compiler, config_file, env)
    return name, read()


def table_reader(
    compiler: str, config_file: str | None, env: Mapping[str, str]
) -> tuple[str, Callable[[], Table]]:
    """The compiler's name, and a reading of what the state file says about it now, as
    the wrapper sees it (the compiler and the configuration found once)."""
    config = load_config(config_file, env)
    settings = wrapper_settings(config, env, default_link_dir())
    name = os.path.basename(compiler)
    if "/" in compiler:
        try:
            real, status = os.path.abspath(compiler), os.stat(compiler)
        except OSError as error:
            raise P2pccError(f"compiler {compiler}: {error.strerror}") from None
    else:
        found = find_real(name, path_dirs(env.get("PATH")))
        if found is None:
            raise P2pccError(f"no {name} on PATH (outside p2pcc link directories)")
        real, status = found
    return name, partial(read_table, name, real, status, env, settings)
