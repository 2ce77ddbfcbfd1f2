"""The live jobserver with a real GNU make: its jobs follow the pool's size as the build
runs; signals reach the build, and `p2pcc build` ends as the build did.

Each job of the test Makefile marks that it started and then waits for the test to
release it, so how many run at once is read from the files, never from timing."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest
import trio

from p2pcc.cli import build_runner
from p2pcc.cli.build_runner import Jobserver, make_style, run_build
from p2pcc.core.jobserver import Style, Tokens, jobserver_makeflags

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")

JOBS = 12
MAKEFILE = f"""\
all: $(addprefix t,$(shell seq {JOBS}))
t%:
\t@touch started.$@; while [ ! -e release.$@ ]; do sleep 0.02; done; touch ended.$@
"""
POLL = 0.05


@pytest.fixture
def build_dir(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "Makefile").write_text(MAKEFILE)
    yield tmp_path
    for job in range(1, JOBS + 1):  # never leave a job waiting, whatever failed
        (tmp_path / f"release.t{job}").touch()


def ended(directory: Path, job: str) -> bool:
    return (directory / f"ended.{job}").exists()


def running(directory: Path) -> set[str]:
    started = {p.name.removeprefix("started.") for p in directory.glob("started.*")}
    return started - {p.name.removeprefix("ended.") for p in directory.glob("ended.*")}


async def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    with trio.move_on_after(timeout):
        while not predicate():
            await trio.sleep(POLL)
        return
    raise AssertionError(f"timed out waiting for {what}")


async def steady(directory: Path, seconds: float = 0.6) -> set[str]:
    """The running jobs, once they have stayed the same for `seconds` (several polls of
    the jobserver)."""
    last, since = running(directory), trio.current_time()
    while trio.current_time() - since < seconds:
        await trio.sleep(POLL)
        now = running(directory)
        if now != last:
            last, since = now, trio.current_time()
    return last


def make_env(directory: Path, server: Jobserver) -> dict[str, str]:
    return dict(os.environ, MAKEFLAGS=jobserver_makeflags("", server.auth))


@pytest.mark.parametrize("style", [Style.PIPE])  # make 4.4's fifo needs make 4.4: see below
async def test_make_runs_as_many_jobs_as_the_pool_takes_as_it_changes(
    build_dir: Path, style: Style
) -> None:
    server, pool = Jobserver(style), {"jobs": 1}
    heard: list[int] = []
    outcome: list[int] = []

    async def build() -> None:
        outcome.append(
            await run_build(
                ["make", "-s", "-C", str(build_dir)],
                make_env(build_dir, server),
                server=server,
                jobs_now=lambda: pool["jobs"],
                said=heard.append,
                period=0.1,
            )
        )

    try:
        with trio.fail_after(120):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(build)
                await wait_for(lambda: bool(running(build_dir)), "the first job")
                assert len(await steady(build_dir)) == 1  # make's own token alone
                pool["jobs"] = 4  # peers came back
                await wait_for(lambda: len(running(build_dir)) == 4, "four jobs at once")
                assert len(await steady(build_dir)) == 4
                pool["jobs"] = 2  # a peer paused: tokens come back as jobs end
                for _ in range(JOBS):
                    # Steady, not a glance: between a job's end and make's next start
                    # (with the token the job gave back, if we did not read it back
                    # first) two run for a moment where three will.
                    now = await steady(build_dir)
                    if len(now) <= 2:
                        break
                    oldest = sorted(now)[0]
                    (build_dir / f"release.{oldest}").touch()
                    await wait_for(partial(ended, build_dir, oldest), "a job end")
                assert len(await steady(build_dir)) == 2
                for job in range(1, JOBS + 1):
                    (build_dir / f"release.t{job}").touch()
    finally:
        server.close()
    assert outcome == [0]
    assert heard[:3] == [1, 4, 2]
    assert len(list(build_dir.glob("ended.*"))) == JOBS


async def test_a_fifo_jobserver_hands_out_and_takes_back_tokens(tmp_path: Path) -> None:
    """make 4.4's style, with a client that does what make does (this machine's make is
    4.3): open the fifo by its path, read a token per job, write it back after."""
    server = Jobserver(Style.FIFO)
    path = server.auth.removeprefix("fifo:")
    assert os.stat(path).st_mode & 0o077 == 0  # nobody else may open it
    client = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    pool = {"jobs": 3}
    try:
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                tokens = Tokens()
                follow = build_runner.follow_pool
                nursery.start_soon(follow, server, tokens, lambda: pool["jobs"])
                await wait_for(lambda: tokens.issued == 2, "two tokens")
                held = os.read(client, 10)
                assert held == b"++"
                pool["jobs"] = 1
                await trio.sleep(0.1)
                os.write(client, held)  # the jobs ended: the server takes them back
                await wait_for(lambda: tokens.issued == 0, "the tokens back")
                with pytest.raises(BlockingIOError):
                    os.read(client, 10)
                nursery.cancel_scope.cancel()
    finally:
        os.close(client)
        server.close()
    assert not os.path.exists(path)


async def test_signals_sent_to_p2pcc_build_reach_the_build(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    script = f'trap "exit 7" TERM; touch {ready}; while :; do sleep 0.02; done'
    outcome: list[int] = []

    async def build() -> None:
        outcome.append(await run_build(["sh", "-c", script], dict(os.environ)))

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(build)
            await wait_for(ready.exists, "the build to start")
            os.kill(os.getpid(), signal.SIGTERM)
    assert outcome == [7]


@pytest.mark.parametrize(("returncode", "expected"), [(0, 0), (2, 2), (-15, -15), (-2, -2)])
def test_p2pcc_build_ends_as_its_build_did(returncode: int, expected: int) -> None:
    code = f"import p2pcc.cli.build_runner as r\nraise SystemExit(r.exit_like({returncode}))"
    done = subprocess.run([sys.executable, "-c", code], check=False)
    assert done.returncode == expected


def test_only_a_gnu_make_that_takes_a_jobserver_gets_one(tmp_path: Path) -> None:
    assert make_style("make", os.environ) is Style.PIPE  # this machine's make 4.3
    fake = tmp_path / "make"
    fake.write_text("#!/bin/sh\necho 'GNU Make 4.4.1'\n")
    fake.chmod(0o755)
    assert make_style(str(fake), os.environ) is Style.FIFO
    fake.write_text("#!/bin/sh\nexit 1\n")
    assert make_style(str(fake), os.environ) is None
    assert make_style("no-such-make", os.environ) is None


async def test_side_tasks_run_beside_the_build_with_its_pid_and_end_with_it() -> None:
    seen: list[str] = []

    async def side(pid: int) -> None:
        # Right after the fork the child may not have exec'd yet: wait for its name.
        for _ in range(100):
            name = Path(f"/proc/{pid}/comm").read_text().strip()
            if name == "sleep":
                break
            await trio.sleep(0.002)
        seen.append(name)
        await trio.sleep_forever()  # cancelled when the build ends

    with trio.fail_after(20):
        assert await run_build(["sleep", "0.3"], dict(os.environ), side_tasks=[side]) == 0
    assert seen == ["sleep"]


async def test_a_failing_side_task_or_pool_reading_never_stops_the_build(
    capfd: pytest.CaptureFixture[str],
) -> None:
    async def broken(pid: int) -> None:
        raise OSError(5, "Input/output error")

    def unreadable() -> int:
        raise RuntimeError("no pool")

    server = Jobserver(Style.PIPE)
    try:
        with trio.fail_after(20):
            returncode = await run_build(
                ["sh", "-c", "sleep 0.3; exit 4"],
                dict(os.environ),
                server=server,
                jobs_now=unreadable,
                side_tasks=[broken],
            )
    finally:
        server.close()
    assert returncode == 4  # the build ran to its end
    err = capfd.readouterr().err
    assert "p2pcc: recording the build stopped (OSError(5, 'Input/output error'))" in err
    assert "p2pcc: following the pool stopped (RuntimeError('no pool'))" in err
