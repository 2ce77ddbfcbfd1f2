"""This machine's compilers as the daemon offers them, kept current while it runs.

Each configured name is fingerprinted (cached: a `stat` per binary when nothing changed)
and names that reach the same compiler are grouped.  Compilers distccd's whitelist
would refuse are withheld, since offering one fails every job sent here and benches
this node for 60 s on every client.  A watch re-checks every minute: a compiler
upgraded under a running daemon changes its offer at once, and the state file's stamps
make the wrapper compile locally rather than trust the old fingerprint meanwhile.

Names are looked up on PATH without p2pcc link directories (the links would answer as
the wrapper).  Once running, the watch also works out each gcc's checked `-march=native`
expansions (`p2pcc.wrapper.native`: ~50 `gcc -###` runs, once per compiler, off the
start-up path) for the state file, so `-march=native` compiles can go to peers.
"""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import replace

import trio

from p2pcc.compilers.names import compiler_search_path
from p2pcc.compilers.probe import lookup
from p2pcc.core.errors import P2pccError
from p2pcc.core.fingerprint import Fingerprint
from p2pcc.core.local_compilers import LocalCompiler
from p2pcc.core.node import LocalNode
from p2pcc.daemon.distccd.supervisor import check_whitelist
from p2pcc.statefile import stamp_of
from p2pcc.wrapper import native

log = logging.getLogger("p2pcc.compilers")

WATCH_PERIOD = 60.0

#: Seconds one `gcc -###` probe may take (it runs no compiler pass: milliseconds).
NATIVE_PROBE_TIMEOUT = 10.0

#: Checked native expansions by fingerprint id: the CPU does not change under a running
#: daemon, so each compiler is probed once.
_native_by_id: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {}


def find_compilers(names: Sequence[str], env: dict[str, str]) -> list[LocalCompiler]:
    """Fingerprint each configured name that exists; one entry per fingerprint."""
    env = {**env, "PATH": compiler_search_path(env)}
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


def with_native(compilers: Sequence[LocalCompiler], env: dict[str, str]) -> list[LocalCompiler]:
    """`compilers` with their checked `-march=native` expansions (probed once per id)."""
    return [replace(c, native=native_expansions(c.fingerprint, env)) for c in compilers]


def native_expansions(
    fingerprint: Fingerprint, env: dict[str, str]
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(key, explicit flags) for each native-flags key gcc's driver expands checkably."""
    known = _native_by_id.get(fingerprint.id)
    if known is not None:
        return known
    found: dict[str, tuple[str, ...]] = {}
    if fingerprint.family == "gcc":  # clang's expansion has no driver-flag equivalent
        tempdir = tempfile.gettempdir()
        probe_env = {**env, "LC_ALL": "C", "TMPDIR": tempdir}

        def probe(flags: list[str]) -> str | None:
            try:
                done = subprocess.run(
                    [fingerprint.command, *native.PROBE_ARGS, *flags],
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    env=probe_env,
                    timeout=NATIVE_PROBE_TIMEOUT,
                    check=False,
                )
            except (OSError, subprocess.TimeoutExpired):
                return None
            return done.stderr.decode(errors="replace") if done.returncode == 0 else None

        found = native.expansions(probe, tempdir)
    usable = tuple(
        (key, flags) for key, flags in sorted(found.items()) if _writable(fingerprint, key, flags)
    )
    _native_by_id[fingerprint.id] = usable
    return usable


def _writable(fingerprint: Fingerprint, key: str, flags: tuple[str, ...]) -> bool:
    """Whether an expansion may go into the state file: only `-m` options and cache-size
    `--param`s (`native.refused_flag`; the wrapper checks again), said once if not."""
    refused = native.refused_flag(flags)
    if refused is not None:
        log.warning(
            "not recording %s's expansion of %s: it holds %r, not an -m option",
            fingerprint.command,
            key,
            refused[:80],
        )
    return refused is None


async def serve_compiler_watch(
    node: LocalNode,
    names: Sequence[str],
    env: dict[str, str],
    *,
    period: float = WATCH_PERIOD,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Work out the native expansions, then re-check the compilers every `period` and
    tell the node when they changed."""
    task_status.started()
    expanded = await trio.to_thread.run_sync(with_native, list(node.compilers), env)
    if expanded != list(node.compilers):
        node.set_compilers(expanded, trio.current_time())
    while True:
        await trio.sleep(period)
        fresh = await trio.to_thread.run_sync(lambda: with_native(local_compilers(names, env), env))
        if fresh != list(node.compilers):
            log.info(
                "compilers changed: now %s",
                ", ".join(f"{'/'.join(c.names)}={c.fingerprint.id}" for c in fresh) or "none",
            )
            node.set_compilers(fresh, trio.current_time())
