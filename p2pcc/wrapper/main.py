"""The wrapper: what a compiler link runs, from `main()` to exec (docs/wrapper.md).

The links' `/bin/sh` trampoline (`p2pcc.wrapper.trampoline`) settles the calls that stay
local by these very rules without starting Python; this decides every call it is handed
(or any other caller's) again from scratch.

Cheapest first, so a link step or a configure probe costs one PATH search and an exec:

1. find the real NAME further along PATH, skipping p2pcc link directories (none: one
   message and exit 127, as a shell would);
2. `P2PCC_DISABLE`, or `_DISTCC_SAFEGUARD` (distcc or distccd is running us: a job must
   never be sent on) -> exec the real compiler;
3. not a distributable compile (`args.classify`) -> exec the real compiler;
4. the state file: missing, corrupt, older than `state_max_age` (the daemon is down), or
   not trusted (it or its directory belongs to someone but root and the caller, or
   someone else may write it: `statefile.read_trusted`) -> warn once per build, exec
   the real compiler;
5. the compiler's fingerprint and remote name (state file, else the per-user cache):
   unknown -> warn once, exec the real compiler;
6. its DISTCC_HOSTS line not in the daemon's grammar -> warn once, exec the real
   compiler; no remote host in it -> exec the real compiler;
7. native flags without a recorded expansion, or with one holding anything but `-m`
   options and cache-size `--param`s -> exec the real compiler, native flags as given;
8. distcc, the remote name resolving to this very compiler on PATH without link
   directories, and DISTCC_DIR (created: without it distcc silently compiles locally)
   -> exec `distcc <remote name> args…` with DISTCC_HOSTS set and PATH without link
   directories (distcc's own masquerade trimming stops at the first directory holding
   *its* name, so local preprocessing would come back to us).

Nothing else changes: arguments (but native flags), environment (but DISTCC_HOSTS,
rebuilt from the checked line, and, for distcc, PATH) and exit status (exec) are the
compiler's own.  The real compiler runs as its full path: gcc finds its own parts
relative to argv[0], looked up on PATH when it has no slash, and would find our link
(and no `cc1` next to it).

Every millisecond here is paid on every compiler call.  `posix`, `sys` and `time` are
loaded by the interpreter before any import; `os` is not under `-I -S` (~2 ms), so this
package uses `posix` directly.  The rest is imported where needed: `args` only for a
command with `-c`/`-S`, `p2pcc.statefile` only when the state file is read, `warn` only
to warn, `native` only for native flags.  A link step costs this module, `lookup` and
`p2pcc.safe_files` (file-type tests; posix only).
"""

import posix
import sys
import time

from p2pcc.wrapper import lookup

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from p2pcc import statefile

EXIT_NOT_FOUND = 127
EXIT_CANNOT_RUN = 126
EXIT_USAGE = 2

_ONCE = " (this warning is shown once per build)"


class Settings:
    """The wrapper's settings: what `p2pcc install-links` works out from the configuration
    (`p2pcc.cli.link_install.wrapper_settings`) and bakes into the entry script, which
    hands them to `main`; `p2pcc hosts` builds them the same way to see what the wrapper
    sees.  Kept here, not in a module of their own, so a compiler call loads no more."""

    __slots__ = ("cache_file", "distcc", "link_dir", "state_files", "state_max_age")

    def __init__(
        self,
        *,
        state_files: "tuple[str, ...] | list[str]",
        cache_file: str,
        link_dir: str,
        distcc: str,
        state_max_age: float,
    ) -> None:
        self.state_files = tuple(state_files)  # where to look for the state file, in order
        self.cache_file = cache_file  # the per-user fingerprint cache
        self.link_dir = link_dir  # the link directory holding the entry script
        self.distcc = distcc  # a path, or a name looked up on PATH at each call
        self.state_max_age = state_max_age  # seconds; an older state file means "down"

    def state_files_for(self, env: "Mapping[str, str]") -> tuple[str, ...]:
        """`P2PCC_RUNTIME_DIR`'s state file when set (the environment wins), else ours."""
        from p2pcc.statefile import FILE_NAME  # loaded anyway to read the file

        runtime_dir = env.get("P2PCC_RUNTIME_DIR")
        return (lookup.join(runtime_dir, FILE_NAME),) if runtime_dir else self.state_files

    def cache_file_for(self, env: "Mapping[str, str]") -> str:
        """`P2PCC_CACHE_DIR`'s fingerprint cache when set, else ours."""
        from p2pcc.compilers.cache import FILE_NAME  # loaded anyway to read the cache

        cache_dir = env.get("P2PCC_CACHE_DIR")
        return lookup.join(cache_dir, FILE_NAME) if cache_dir else self.cache_file


class Plan:
    """One exec: the program, its argv, its environment (None: ours), why, a warning to
    give once per build, and what to run instead if the program cannot be run."""

    __slots__ = ("argv", "env", "fallback", "program", "reason", "warning")

    def __init__(
        self,
        program: str,
        argv: list[str],
        reason: str,
        *,
        env: "dict[str, str] | None" = None,
        warning: str = "",
        fallback: "Plan | None" = None,
    ) -> None:
        self.program = program
        self.argv = argv
        self.reason = reason
        self.env = env
        self.warning = warning
        self.fallback = fallback


class Table:
    """What the state file says about one compiler now; `problem` is why it cannot be
    used (a warning), "" when it can, and `down` whether that is because the daemon's
    state file is missing, stale or corrupt.  `expansion` is the recorded expansion of
    the native flags `read_table` was asked about, None when there is none."""

    __slots__ = ("down", "expansion", "fingerprint", "hosts", "jobs", "problem", "remote_name")

    def __init__(self, problem: str = "", *, down: bool = False) -> None:
        self.problem = problem
        self.down = down
        self.fingerprint = ""
        self.remote_name = ""
        self.jobs = 0
        self.hosts = ""
        self.expansion: tuple[str, ...] | None = None


def main(settings: Settings | None = None, **written_before: "Any") -> None:
    """Run as the compiler named by argv[0]; never returns.  An entry script written by
    an older `install-links` passes the settings as keywords (`written_before`): they
    still work, so an upgrade breaks no build before the links are refreshed."""
    if settings is None:
        settings = Settings(**written_before)
    env = {_decode(key): _decode(value) for key, value in posix.environ.items()}
    _undo_locale_coercion(env)
    name = sys.argv[0].rpartition("/")[2]
    if name in (lookup.ENTRY_NAME, lookup.PYTHON_ENTRY_NAME):
        sys.stderr.write(
            f"p2pcc: {name} runs as a compiler, through the links next to it in "
            f"{settings.link_dir} (gcc, cc, g++ …), not by its own name\n"
        )
        sys.exit(EXIT_USAGE)
    plan = decide(name, sys.argv[1:], env, settings)
    if plan is None:
        sys.stderr.write(
            f"p2pcc: no real {name} on PATH after the p2pcc link directory "
            f"{settings.link_dir}: install {name}, or take the link out of that directory "
            "(p2pcc install-links refreshes it)\n"
        )
        sys.exit(EXIT_NOT_FOUND)
    run(plan, env)


def decide(name: str, args: list[str], env: "Mapping[str, str]", settings: Settings) -> Plan | None:
    """What to exec for `name args…`; None when there is no real `name` on PATH."""
    entries = lookup.path_dirs(env.get("PATH"))
    own = lookup.file_identity(lookup.join(settings.link_dir, lookup.ENTRY_NAME))
    found = lookup.find_real(name, entries, own)
    if found is None:
        return None
    real, status = found
    why = _bypass(env) or _not_distributable(args)
    if why:
        return _local(real, args, why)
    key = _native_key(args)
    table = read_table(name, real, status, env, settings, native_key=key)
    if table.problem:
        return _local(real, args, table.problem, warning=table.problem + "; compiling locally")
    if not lookup.remote_hosts(table.hosts):
        return _local(real, args, "no peer has this compiler now")
    why = ""
    if key is not None:
        from p2pcc.wrapper import native

        args, why = native.expand(args, key, table.expansion)
    if why:
        return _local(real, args, why)
    return _distcc_plan(found, args, table, name=name, env=env, settings=settings, entries=entries)


def _bypass(env: "Mapping[str, str]") -> str:
    """Why this call must not even be considered for distcc, or ""."""
    if env.get("P2PCC_DISABLE", "0") not in ("", "0"):
        return "P2PCC_DISABLE is set"
    if "_DISTCC_SAFEGUARD" in env:
        return "run by distcc or distccd"
    return ""


def _not_distributable(args: list[str]) -> str:
    """Why `args` cannot go to a peer, or ""."""
    if "-c" not in args and "-S" not in args:  # link steps and queries, without `args`
        return "not a compile (no -c or -S): linking or a query"
    from p2pcc.wrapper.args import classify

    distributable, why = classify(args)
    return "" if distributable else why


def read_table(
    name: str,
    real: str,
    status: posix.stat_result,
    env: "Mapping[str, str]",
    settings: Settings,
    *,
    native_key: str | None = None,
) -> Table:
    """The state file's view of the compiler at `real` (found on PATH as `name`), with
    the expansion of the native flags of `native_key` (`native.native_key`), if any."""
    state, path, problem = _read_state(
        settings.state_files_for(env), settings.state_max_age, native_key=native_key
    )
    if state is None:
        return Table(problem, down=True)
    _, hosts, compilers, expansions = state
    identity = lookup.identify(real, status, name, compilers)
    if identity is None:
        identity = lookup.identify_cached(real, settings.cache_file_for(env))
    if identity is None:
        return Table(
            f"{name} ({real}) is not a compiler the p2pcc daemon knows (not in its "
            "[compilers] list, or changed since it looked)"
        )
    table = Table()
    table.fingerprint, table.remote_name = identity
    table.jobs, line = hosts.get(table.fingerprint, (0, ""))
    if line:
        from p2pcc.statefile import parse_hosts_line  # loaded already: the file came from it

        rebuilt = parse_hosts_line(line)
        if rebuilt is None:
            return Table(
                f"the hosts line for {name} in {path} is not one the p2pcc daemon writes "
                f"({line[:60]!r})"
            )
        table.hosts = rebuilt
    if native_key is not None:
        table.expansion = expansions.get(table.fingerprint, {}).get(native_key)
    return table


def _read_state(
    candidates: tuple[str, ...], max_age: float, *, native_key: str | None
) -> "tuple[statefile.Parsed | None, str, str]":
    """The first state file that exists, trusted, parsed and fresh, and its path; else
    None and why not."""
    from p2pcc import statefile

    for path in candidates:
        state, problem = statefile.read_trusted(path, trusted_uids(), native_key=native_key)
        if state is None:
            if problem:
                return None, path, problem
            continue
        age = time.time() - state[0]
        if abs(age) > max_age:
            stale = f"the p2pcc daemon has not updated {path} for {age:.0f} s"
            return None, path, f"{stale} (limit {max_age:g} s): it is stuck or gone"
        return state, path, ""
    why = f"the p2pcc daemon is not running (no state file {' or '.join(candidates)})"
    return None, "", why


def trusted_uids() -> tuple[int, ...]:
    """Whose state files steer our compiles: root's and the caller's (real uid), so a
    build root runs trusts root's alone."""
    return (0, posix.getuid())


def _distcc_plan(
    found: tuple[str, posix.stat_result],
    args: list[str],
    table: Table,
    *,
    name: str,
    env: "Mapping[str, str]",
    settings: Settings,
    entries: list[str],
) -> Plan:
    real, status = found
    kept = lookup.without_link_dirs(entries)
    distcc = _find_program(settings.distcc, kept)
    if distcc is None:
        problem = f"distcc ({settings.distcc}) is not installed"
        return _local(real, args, problem, warning=problem + "; compiling locally")
    remote = lookup.find_real(table.remote_name, kept)
    if remote is None or not _same_file(remote[1], status):
        problem = (
            f"{table.remote_name}, the name peers run {name} under, is not {real} on this PATH"
        )
        return _local(real, args, problem, warning=problem + "; compiling locally")
    problem = lookup.ensure_distcc_dir(env)
    if problem:
        return _local(real, args, problem, warning=problem + "; compiling locally")
    distcc_env = dict(env)
    distcc_env["DISTCC_HOSTS"] = table.hosts
    distcc_env["PATH"] = ":".join(kept)
    return Plan(
        distcc,
        [distcc, table.remote_name, *args],
        f"sent through distcc as {table.remote_name}",
        env=distcc_env,
        fallback=_local(real, args, "distcc could not be run"),
    )


def _native_key(args: list[str]) -> str | None:
    """The command's native-flags key (`native.native_key`), None when it has none."""
    if not any(arg.endswith("=native") for arg in args):
        return None
    from p2pcc.wrapper import native  # paid for only by commands with native flags

    return native.native_key(args)


def _find_program(program: str, entries: list[str]) -> str | None:
    if "/" in program:
        return program if posix.access(program, posix.X_OK) else None
    found = lookup.find_real(program, entries)
    return None if found is None else found[0]


def _same_file(one: posix.stat_result, other: posix.stat_result) -> bool:
    return (one.st_dev, one.st_ino) == (other.st_dev, other.st_ino)


def _undo_locale_coercion(env: dict[str, str]) -> None:
    """Take out the LC_CTYPE=C.UTF-8 Python put into our environment at start-up.

    In the C locale (no LC_ALL; LC_CTYPE and LANG unset, C, POSIX or not installed)
    Python sets LC_CTYPE to a UTF-8 locale for its children (PEP 538; `-I` cannot turn
    it off), and gcc would then quote its diagnostics with curly quotes.  The sign is
    UTF-8 mode, which Python turns on for the C locale only; without LC_CTYPE the
    compiler is back in the C locale, as it would have been without us.
    """
    if sys.flags.utf8_mode and not env.get("LC_ALL") and env.get("LC_CTYPE") in _COERCED:
        del env["LC_CTYPE"]
        posix.unsetenv("LC_CTYPE")  # what execv hands on


#: The locales Python coerces the C locale to, in the order it tries them.
_COERCED = ("C.UTF-8", "C.utf8", "UTF-8")


def _decode(raw: bytes) -> str:
    # As os.environ does: file-system encoding (UTF-8 here) with surrogateescape, so
    # odd bytes survive the round trip to execve unchanged.
    return raw.decode("utf-8", "surrogateescape")


def _local(real: str, args: list[str], reason: str, *, warning: str = "") -> Plan:
    return Plan(real, [real, *args], reason, warning=warning and warning + _ONCE)


def run(plan: Plan, env: "Mapping[str, str]") -> None:
    """Warn if needed, then exec the plan (its fallback if it cannot run); never returns."""
    if plan.warning:
        from p2pcc.wrapper.warn import warn_once

        warn_once(plan.warning, env)
    if env.get("P2PCC_VERBOSE", "0") not in ("", "0"):
        sys.stderr.write(f"p2pcc: {plan.reason}: {' '.join(plan.argv)}\n")
        sys.stderr.flush()
    try:
        if plan.env is None:
            posix.execv(plan.program, plan.argv)  # our environment, exactly as we got it
        else:
            posix.execve(plan.program, plan.argv, plan.env)
    except OSError as error:
        if plan.fallback is not None:
            run(plan.fallback, env)
        sys.stderr.write(f"p2pcc: cannot run {plan.program}: {error.strerror}\n")
        sys.exit(EXIT_NOT_FOUND if isinstance(error, FileNotFoundError) else EXIT_CANNOT_RUN)
