"""Running the local distccd, or watching a system one, and saying whether it serves.

With `distccd.manage`, `serve_distccd` starts `distccd --daemon --no-detach` in a
session of its own, with an explicit allow list, and reports "serving" once distccd
listens.  When distccd dies, every process of its session is killed (its preforked
children and compilers outlive it otherwise), "not serving" is reported, and it is
restarted after a back-off delay.  Every job distccd runs goes through the job guard
and its sandbox (`guard_files`), put in place before each start; where that cannot be
done (no bwrap, no user namespaces), distccd is not started and the reason is kept in
`GuardRefusals.problem`.  On cancellation it waits (bounded) for running
compile jobs to finish, then SIGTERMs distccd, then SIGKILLs whatever is left: SIGTERM
alone kills distccd's children mid-job and orphans the compilers.  Without `manage`,
it only checks every few seconds that something listens on the distccd port.
Readiness comes from the kernel's table of listening sockets, not from a connection:
a connection that sends no job costs a bogus "OTHER" job line in distccd's log.

distccd's directory belongs to distccd's user, who may have put a FIFO or a link in
place of the log or the pid file (see `system.py`).  Every file operation there runs in
a worker thread of its own limiter, bounded by `SupervisorTiming.file_timeout`: a
blocked one costs that file's contents (a log line's detail), never the event loop,
and never a restart or a prompt exit.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import pwd
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TypeVar

import trio

from p2pcc.config.model import DistccdConfig
from p2pcc.core import limits
from p2pcc.core.distccd_args import (
    Backoff,
    IPNetwork,
    default_allow,
    distccd_argv,
    explain_exit,
    last_error,
    resolve_jobs,
)
from p2pcc.core.errors import P2pccError
from p2pcc.core.guard_refusals import GuardRefusals
from p2pcc.core.procfs import connections_served, session_members
from p2pcc.daemon.distccd.guard_files import GuardPaths, prepare_guard
from p2pcc.daemon.distccd.guard_watch import serve_guard_refusals
from p2pcc.daemon.distccd.processes import read_processes
from p2pcc.daemon.distccd.system import (
    check_whitelist,
    clear_for_start,
    cmdline,
    cpu_count,
    distccd_user,
    find_binary,
    interface_addresses,
    kill_session,
    listening_on,
    log_tail,
    parse_listen,
    pid_file_session,
    prepare_log_dir,
    read_whitelist,
    server_env,
    tcp_sockets,
)
from p2pcc.daemon.distccd.system_watch import watch_system_distccd

__all__ = [
    "DistccdState",
    "SupervisorTiming",
    "check_whitelist",
    "distccd_log_file",
    "interface_addresses",
    "read_whitelist",
    "serve_distccd",
]

log = logging.getLogger("p2pcc.daemon.distccd")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SupervisorTiming:
    """Seconds the supervisor waits for things; tests shorten them."""

    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    reset_after: float = 60.0  # a run this long starts the back-off over
    start_timeout: float = 10.0  # from spawn to listening
    drain_timeout: float = 15.0  # running jobs may finish within this on stop
    term_timeout: float = 3.0  # after SIGTERM, before SIGKILL
    poll_interval: float = 0.1
    check_interval: float = 5.0  # manage = false: between checks of the port
    file_timeout: float = 5.0  # a file operation in distccd's directory; it takes ms


class DistccdState:
    """What the supervisor knows now; `on_serving` hears every change of `serving`."""

    def __init__(
        self,
        address: ipaddress.IPv4Address | ipaddress.IPv6Address,
        port: int,
        on_serving: Callable[[bool], None],
    ) -> None:
        self.address = address
        self.port = port
        self.serving: bool | None = None
        self.pid: int | None = None  # distccd's main process while one runs
        self._on_serving = on_serving

    def report(self, serving: bool) -> None:
        """Record `serving` and tell the callback if it changed."""
        if serving != self.serving:
            self.serving = serving
            self._on_serving(serving)

    def running_jobs(self) -> int:
        """Jobs our distccd is working on now (0 when we run none)."""
        if self.pid is None:
            return 0
        return connections_served(tcp_sockets(), self.address, self.port)


def distccd_log_file(runtime_dir: Path) -> Path:
    """Where the managed distccd logs: a directory of its own, which distccd's user owns."""
    return runtime_dir / "distccd" / "distccd.log"


async def serve_distccd(
    config: DistccdConfig,
    *,
    listen: str,
    interface: str,
    log_file: Path,
    on_serving: Callable[[bool], None],
    pool_networks: Sequence[IPNetwork] = (),
    slots: Callable[[], int] | None = None,
    binary: str = "distccd",
    env: Mapping[str, str] | None = None,
    exclude_path_dirs: Sequence[str] = (),
    refusals: GuardRefusals | None = None,
    timing: SupervisorTiming = SupervisorTiming(),
    task_status: trio.TaskStatus[DistccdState] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run (or watch) distccd until cancelled; `started(state)` after the first attempt,
    whether distccd then serves or not.  P2pccError for what no restart can fix (no
    distccd binary, no such user, bad listen address).

    `listen` is the address peers are told; `interface` and `pool_networks` (members
    beyond it) give the allow list when `distccd.allow` is empty; `slots` gives `--jobs` when
    `distccd.jobs` is 0 (default: the CPU count); `exclude_path_dirs` names p2pcc's
    masquerade directory, which must not be on distccd's PATH; `refusals` counts the
    job guard's refusals.
    """
    address = parse_listen(listen)
    state = DistccdState(address, config.port, on_serving)
    refusals = GuardRefusals() if refusals is None else refusals
    if not config.manage:
        refusals.set_problem("distccd.manage is false: p2pcc does not guard its jobs")
        await watch_system_distccd(address, config.port, state, timing, task_status)
        return
    environment = dict(os.environ if env is None else env)
    supervisor = _Supervisor(
        config=config,
        listen=listen,
        interface=interface,
        pool_networks=tuple(pool_networks),
        log_file=log_file,
        binary=find_binary(binary, environment),
        user=distccd_user(config.user),
        env=server_env(environment, exclude_path_dirs),
        slots=slots or cpu_count,
        timing=timing,
        state=state,
        refusals=refusals,
    )
    report_file = GuardPaths.beside(log_file.parent).report_file
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_guard_refusals, report_file, log_file, refusals)
        await supervisor.run(task_status)


@dataclass
class _Supervisor:
    config: DistccdConfig
    listen: str
    interface: str
    pool_networks: tuple[IPNetwork, ...]
    log_file: Path
    binary: str
    user: pwd.struct_passwd | None
    env: dict[str, str]
    slots: Callable[[], int]
    timing: SupervisorTiming
    state: DistccdState
    refusals: GuardRefusals
    _announced: bool = field(default=False, init=False)
    # One thread at a time: a hung one holds this limiter's token, not trio's default
    # limiter's, which the state writer and the stores use.
    _files: trio.CapacityLimiter = field(default_factory=lambda: trio.CapacityLimiter(1))

    @property
    def pid_file(self) -> Path:
        return self.log_file.parent / "distccd.pid"

    async def run(self, task_status: trio.TaskStatus[DistccdState]) -> None:
        await self.in_directory(partial(prepare_log_dir, self.log_file, self.pid_file, self.user))
        session = await self.in_directory(partial(pid_file_session, self.pid_file))
        await _kill_leftover(session, self.pid_file, self.timing)
        timing = self.timing
        backoff = Backoff(timing.backoff_initial, timing.backoff_max, timing.reset_after)
        while True:
            backoff.started(trio.current_time())
            why = await self._run_once(task_status)
            self.state.report(False)
            self._announce(task_status)
            delay = backoff.failed(trio.current_time())
            log.warning("distccd %s; starting it again in %.1f s", why, delay)
            await trio.sleep(delay)

    async def in_directory(self, work: Callable[[], T | None]) -> T | None:
        """`work()`, a file operation in distccd's directory, in a worker thread; None
        when it takes longer than `timing.file_timeout` (it is left to finish alone)."""
        with trio.move_on_after(self.timing.file_timeout):
            return await trio.to_thread.run_sync(work, abandon_on_cancel=True, limiter=self._files)
        log.warning(
            "a file operation in distccd's directory %s did not end within %g s; going on",
            self.log_file.parent,
            self.timing.file_timeout,
        )
        return None

    def _announce(self, task_status: trio.TaskStatus[DistccdState]) -> None:
        if not self._announced:
            self._announced = True
            task_status.started(self.state)

    async def _run_once(self, task_status: trio.TaskStatus[DistccdState]) -> str:
        """Start distccd and return why it is no longer running."""
        allow = await self._allow()
        if not allow:
            interface = self.interface or "of the default route"
            return (
                f"not started: the interface {interface} has no address to derive "
                "distccd.allow from (set distccd.allow to allow networks explicitly)"
            )
        argv = self._argv(allow)
        try:
            guard_env = await trio.to_thread.run_sync(
                prepare_guard, self.log_file.parent, self.user, self.env
            )
        except P2pccError as error:
            self.refusals.set_problem(str(error))
            return f"not started: jobs cannot be guarded: {error}"
        self.refusals.set_problem(None)
        await self.in_directory(partial(clear_for_start, self.log_file, self.pid_file))
        others = set(listening_on(self.config.port))
        process = await trio.lowlevel.open_process(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            start_new_session=True,  # distccd signals its whole group on SIGTERM
            env={**self.env, **guard_env},
        )
        self.state.pid = process.pid
        try:
            if not await self._wait_listening(process, others):
                return await self._ended(process, "did not start listening")
            log.info("distccd (pid %d) serves on %s:%d", process.pid, self.listen, self.config.port)
            self.state.report(True)
            self._announce(task_status)
            await self._check_log_written()
            await process.wait()
            return await self._ended(process, "exited")
        finally:
            with trio.CancelScope(shield=True):
                await _stop(process, self.state, self.timing)
            self.state.pid = None

    async def _allow(self) -> tuple[IPNetwork, ...]:
        if self.config.allow:
            return self.config.allow
        addresses = await trio.to_thread.run_sync(interface_addresses, self.interface)
        return default_allow(addresses, self.pool_networks)

    def _argv(self, allow: tuple[IPNetwork, ...]) -> list[str]:
        jobs = resolve_jobs(self.config.jobs, min(self.slots(), limits.MAX_SLOTS))
        argv = distccd_argv(
            self.binary,
            listen=self.listen,
            port=self.config.port,
            allow=allow,
            jobs=jobs,
            nice=self.config.nice,
            log_file=str(self.log_file),
            pid_file=str(self.pid_file),
            user=self.user.pw_name if self.user else None,
        )
        log.info(
            "starting distccd on %s:%d, %d jobs, allowing %s",
            self.listen,
            self.config.port,
            jobs,
            " ".join(map(str, allow)),
        )
        return argv

    async def _wait_listening(self, process: trio.Process, others: set[int]) -> bool:
        """Wait until a listening socket on our port appears that is not one of `others`
        (those before the spawn: a system distccd's, say); False if distccd exits."""
        with trio.move_on_after(self.timing.start_timeout):
            while process.poll() is None:
                if set(listening_on(self.config.port)) - others:
                    return True
                await trio.sleep(self.timing.poll_interval)
        return False

    async def _ended(self, process: trio.Process, what: str) -> str:
        if process.returncode is None:
            return f"(pid {process.pid}) {what}"
        tail = await self.in_directory(partial(log_tail, self.log_file))
        detail = last_error(tail or "", process.pid)
        reason = explain_exit(process.returncode)
        return f"(pid {process.pid}) {what}, {reason}" + (f": {detail}" if detail else "")

    async def _check_log_written(self) -> None:
        if await self.in_directory(partial(os.path.lexists, self.log_file)) is False:
            log.warning(
                "distccd runs without a log: %s is not writable by user %s "
                "(check the permissions of its parent directories)",
                self.log_file.parent,
                self.user.pw_name if self.user else "of the daemon",
            )


async def _stop(process: trio.Process, state: DistccdState, timing: SupervisorTiming) -> None:
    """End distccd and everything in its session; let running jobs finish first (bounded)
    when distccd is still up."""
    session = process.pid
    if process.poll() is None:
        log.info("stopping distccd (pid %d)", session)
        state.report(False)
        await _drain(state, timing)
        process.send_signal(signal.SIGTERM)
        with trio.move_on_after(timing.term_timeout):
            await process.wait()
    kill_session(session)
    with trio.move_on_after(timing.term_timeout):
        await process.wait()
        await _session_gone(session, timing.poll_interval)
    if process.returncode is None or session_members(read_processes(), session):
        log.error("distccd session %d did not die within %.1f s", session, timing.term_timeout)


async def _drain(state: DistccdState, timing: SupervisorTiming) -> None:
    jobs = state.running_jobs()
    if not jobs:
        return
    log.info("waiting up to %g s for %d distccd job(s) to finish", timing.drain_timeout, jobs)
    with trio.move_on_after(timing.drain_timeout):
        while jobs:
            await trio.sleep(timing.poll_interval)
            jobs = state.running_jobs()
    if jobs:
        log.warning("stopping distccd with %d job(s) unfinished", jobs)


async def _session_gone(session: int, poll_interval: float) -> None:
    while session_members(read_processes(), session):
        kill_session(session)
        await trio.sleep(poll_interval)


async def _kill_leftover(session: int | None, pid_file: Path, timing: SupervisorTiming) -> None:
    """Kill a distccd an earlier run of ours left behind (the daemon was SIGKILLed), which
    wrote `session` to `pid_file`."""
    if session is None:
        return
    members = session_members(read_processes(), session)
    if not any(str(pid_file) in cmdline(member.pid) for member in members):
        return  # gone, or the number now belongs to someone else
    log.warning("killing a distccd left over from an earlier run (session %d)", session)
    kill_session(session)
    with trio.move_on_after(timing.term_timeout):
        await _session_gone(session, timing.poll_interval)
