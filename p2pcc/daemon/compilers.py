"""This machine's compilers as the daemon offers them, kept current while it runs.

Each configured name is fingerprinted (cached: a `stat` per binary when nothing changed)
and names that reach the same compiler are grouped.  Compilers distccd's whitelist
would refuse are withheld, since offering one fails every job sent here and benches
this node for 60 s on every client.  A watch re-checks every minute: a compiler
upgraded under a running daemon changes its offer at once, and the state file's stamps
make the wrapper compile locally rather than trust the old fingerprint meanwhile.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import replace

import trio

from p2pcc.compilers.cache import stamp_of
from p2pcc.compilers.probe import lookup
from p2pcc.core.errors import P2pccError
from p2pcc.core.fingerprint import Fingerprint
from p2pcc.daemon.distccd import check_whitelist
from p2pcc.daemon.node import LocalCompiler, Node

log = logging.getLogger("p2pcc.compilers")

WATCH_PERIOD = 60.0


def find_compilers(names: Sequence[str], env: dict[str, str]) -> list[LocalCompiler]:
    """Fingerprint each configured name that exists; one entry per fingerprint."""
    by_id: dict[str, tuple[Fingerprint, list[str], list[tuple[str, str]]]] = {}
    for name in names:
        try:
            fingerprint = lookup(name, env)
            stamp = stamp_of(os.stat(fingerprint.command))
        except (P2pccError, OSError) as error:
            log.debug("compiler %s not offered: %s", name, error)
            continue
        _, found_names, commands = by_id.setdefault(fingerprint.id, (fingerprint, [], []))
        found_names.append(name)
        commands.append((fingerprint.command, stamp))
    return [
        LocalCompiler(fingerprint, tuple(found_names), commands=tuple(commands))
        for fingerprint, found_names, commands in by_id.values()
    ]


def withhold_unlisted(compilers: Sequence[LocalCompiler]) -> list[LocalCompiler]:
    """Mark the compilers distccd's whitelist would refuse, saying how to fix it."""
    problems = {
        p.remote_name: p.message
        for p in check_whitelist([c.fingerprint.remote_name for c in compilers])
    }
    for compiler in compilers:
        problem = problems.get(compiler.fingerprint.remote_name)
        if problem:
            log.warning("not offering %s: %s", "/".join(compiler.names), problem)
    return [
        replace(compiler, withheld=problems.get(compiler.fingerprint.remote_name, ""))
        for compiler in compilers
    ]


def local_compilers(names: Sequence[str], env: dict[str, str]) -> list[LocalCompiler]:
    """`find_compilers` then `withhold_unlisted`: what this node can offer now."""
    return withhold_unlisted(find_compilers(names, env))


async def serve_compiler_watch(
    node: Node,
    names: Sequence[str],
    env: dict[str, str],
    *,
    period: float = WATCH_PERIOD,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Re-check the compilers every `period` and tell the node when they changed."""
    task_status.started()
    while True:
        await trio.sleep(period)
        fresh = await trio.to_thread.run_sync(local_compilers, names, env)
        if fresh != list(node.compilers):
            log.info(
                "compilers changed: now %s",
                ", ".join(f"{'/'.join(c.names)}={c.fingerprint.id}" for c in fresh) or "none",
            )
            node.set_compilers(fresh, trio.current_time())
