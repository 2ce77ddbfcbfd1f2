"""Running a build as `p2pcc build`'s child: the live jobserver, and signals passed on.

A build `p2pcc build` can exec (ninja, a script, make with the user's own -j) replaces
it; a GNU make it can steer stays its child, so that a jobserver p2pcc holds sizes the
build by the pool while it runs (`p2pcc.core.jobserver` says how and why).  Every
`POLL_PERIOD` the pool's slots for the build's compiler are read from the daemon's
state file, as `p2pcc jobs` reads them; tokens are written at once when the pool
grows, and read back as make returns them when it shrinks.

The child is in our process group, so the terminal's Ctrl-C reaches make directly;
SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to us alone are passed on to it.  We exit as
make did: with its status, or killed by the same signal, so a shell script that runs
`p2pcc build` stops on Ctrl-C as it would with make.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import stat
import subprocess
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from functools import partial

import trio

from p2pcc.core import jobserver
from p2pcc.core.errors import P2pccError
from p2pcc.core.jobserver import Style, Tokens

log = logging.getLogger("p2pcc.build")

#: Seconds between two readings of the pool's slots: the state file changes at most a
#: few times a second, and make starts jobs in well under this.
POLL_PERIOD = 0.5

#: Signals sent to `p2pcc build` alone that its build should get.
PASSED_ON = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)

#: A task run alongside the build until it ends, given the build's pid (a trace
#: recorder, for one).
SideTask = Callable[[int], Awaitable[None]]


class Jobserver:
    """The jobserver's pipe or named pipe, held open by us for as long as the build runs;
    our end never blocks."""

    def __init__(self, style: Style) -> None:
        self.style = style
        self._directory: str | None = None
        if style is Style.PIPE:
            self.read_fd, self.write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            self.auth = jobserver.pipe_auth(self.read_fd, self.write_fd)
            self.pass_fds: tuple[int, ...] = (self.read_fd, self.write_fd)
        else:
            # A private directory: nobody else may open the fifo, or swap it.
            self._directory = tempfile.mkdtemp(prefix="p2pcc-jobserver-")
            path = os.path.join(self._directory, "fifo")
            os.mkfifo(path, 0o600)
            fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
            if not stat.S_ISFIFO(os.fstat(fd).st_mode):
                os.close(fd)
                raise P2pccError(f"{path} is not the jobserver's fifo")
            self.read_fd = self.write_fd = fd
            self.auth = jobserver.fifo_auth(path)
            self.pass_fds = ()

    def write(self, count: int) -> int:
        """Put up to `count` tokens in; how many went in (the pipe may be full)."""
        try:
            return os.write(self.write_fd, jobserver.TOKEN * count)
        except BlockingIOError:
            return 0

    def read_back(self, count: int) -> int:
        """Take up to `count` tokens out that are free now; how many came out."""
        try:
            return len(os.read(self.read_fd, count))
        except BlockingIOError:
            return 0

    def close(self) -> None:
        for fd in {self.read_fd, self.write_fd}:
            with contextlib.suppress(OSError):
                os.close(fd)
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)


def make_style(make: str, env: Mapping[str, str]) -> Style | None:
    """The jobserver style of the make `make` (a name on PATH or a path), None when it
    is not a GNU make that takes one or does not answer `--version`."""
    path = shutil.which(make, path=env.get("PATH"))
    if path is None:
        return None
    try:
        done = subprocess.run(
            [path, "--version"], capture_output=True, timeout=10, check=False, env=dict(env)
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return jobserver.make_style(done.stdout.decode(errors="replace"))


async def follow_pool(
    server: Jobserver,
    tokens: Tokens,
    jobs_now: Callable[[], int],
    *,
    period: float = POLL_PERIOD,
    said: Callable[[int], None] = lambda jobs: None,
) -> None:
    """Keep the jobserver at the pool's size until cancelled: write tokens at once,
    read them back as they come free; `said` hears each new size."""
    jobs = None
    while True:
        now_jobs = jobs_now()
        if now_jobs != jobs:
            jobs = now_jobs
            said(jobs)
        tokens.aim(jobs)
        tokens.wrote(server.write(tokens.to_write()) if tokens.to_write() else 0)
        with trio.move_on_after(period):
            while tokens.to_take_back():
                await trio.lowlevel.wait_readable(server.read_fd)
                tokens.took_back(server.read_back(tokens.to_take_back()))
            await trio.sleep_forever()


async def run_build(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    server: Jobserver | None = None,
    jobs_now: Callable[[], int] = lambda: 1,
    side_tasks: Sequence[SideTask] = (),
    said: Callable[[int], None] = lambda jobs: None,
    period: float = POLL_PERIOD,
) -> int:
    """Run the build to its end with the jobserver following the pool; its returncode
    (negative: the signal that killed it)."""
    with trio.open_signal_receiver(*PASSED_ON) as signals:
        process = await trio.lowlevel.open_process(
            list(argv), env=dict(env), pass_fds=server.pass_fds if server else ()
        )
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_pass_on, signals, process)
            if server is not None:
                follow = partial(follow_pool, server, Tokens(), jobs_now, period=period, said=said)
                nursery.start_soon(_guarded, follow, "following the pool")
            for task in side_tasks:
                nursery.start_soon(_guarded, partial(task, process.pid), "recording the build")
            returncode = await process.wait()
            nursery.cancel_scope.cancel()
    return returncode


async def _guarded(task: Callable[[], Awaitable[object]], what: str) -> None:
    """Run `task`; if it fails, say so and let the build go on without it (an error
    here must never cancel the wait for the build and leave it running on its own)."""
    try:
        await task()
    except Exception as error:
        print_error(f"{what} stopped ({error!r}); the build goes on")


async def _pass_on(signals: AsyncIterator[int], process: trio.Process) -> None:
    async for number in signals:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(number)


def exit_like(returncode: int) -> int:
    """Our exit status for the build's `returncode`: the same status, or, for a build
    killed by a signal, death by that signal (128 + it if we survive it)."""
    if returncode >= 0:
        return returncode
    number = -returncode
    with contextlib.suppress(OSError, ValueError):
        signal.signal(number, signal.SIG_DFL)
        os.kill(os.getpid(), number)
    return 128 + number


def run(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    server: Jobserver | None,
    jobs_now: Callable[[], int],
    side_tasks: Sequence[SideTask] = (),
    said: Callable[[int], None] = lambda jobs: None,
) -> int:
    """`run_build` in a trio loop of its own; the exit status `p2pcc build` ends with."""
    try:
        returncode = trio.run(
            lambda: run_build(
                argv, env, server=server, jobs_now=jobs_now, side_tasks=side_tasks, said=said
            )
        )
    except OSError as error:
        print_error(f"cannot run {argv[0]}: {error.strerror or error}")
        return 127
    finally:
        if server is not None:
            server.close()
    return exit_like(returncode)


def print_error(message: str) -> None:
    os.write(2, f"p2pcc: {message}\n".encode(errors="replace"))
