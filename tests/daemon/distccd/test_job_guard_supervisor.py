"""The supervisor with the job guard, against a real distccd on 127.0.0.1: every job goes
through the guard and its sandbox; without bwrap distccd is not started."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import trio

from p2pcc.core.guard_refusals import GuardRefusals
from p2pcc.daemon.distccd.supervisor import distccd_log_file
from tests.daemon.distccd.test_supervisor import (
    SLOW_FLAGS,
    SLOW_SOURCE,
    ServingEvents,
    alive,
    compile_remotely,
    port,
    supervisor,
    workdir,
)

pytestmark = [pytest.mark.integration]
__all__ = ["port", "workdir"]  # fixtures


async def test_jobs_run_guarded_and_refusals_are_counted(workdir: Path, port: int) -> None:
    events, refusals = ServingEvents(), GuardRefusals()
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            state = await nursery.start(supervisor(port, workdir, events, refusals=refusals))
            assert state.serving
            assert refusals.problem is None
            environ = (Path(f"/proc/{state.pid}/environ").read_bytes() + b"\0").split(b"\0")
            assert f"DISTCC_CMDLIST={workdir / 'guard' / 'cmdlist'}".encode() in environ
            assert f"TMPDIR={workdir / 'distccd' / 'jobs'}".encode() in environ
            good = await compile_remotely(workdir, port, "good", "int f() { return 1; }", ["-O2"])
            assert good.returncode == 0, good.stderr
            bad = await compile_remotely(
                workdir, port, "bad", "int g() { return 2; }", ["-save-temps"]
            )
            assert bad.returncode != 0
            assert b"p2pcc-guard: error: '-save-temps'" in bad.stderr
            while refusals.total == 0:
                await trio.sleep(0.05)
            nursery.cancel_scope.cancel()
    assert refusals.by_client() == {"127.0.0.1": 1}
    assert "COMPILE_OK" in distccd_log_file(workdir).read_text()


async def test_without_bwrap_distccd_is_not_started(workdir: Path, port: int) -> None:
    bin_dir = workdir / "bin"
    bin_dir.mkdir()
    (bin_dir / "distccd").symlink_to(shutil.which("distccd") or "/usr/bin/distccd")
    events, refusals = ServingEvents(), GuardRefusals()
    env = {**os.environ, "PATH": str(bin_dir)}
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            state = await nursery.start(
                supervisor(port, workdir, events, refusals=refusals, env=env)
            )
            assert (state.serving, state.pid) == (False, None)
            assert refusals.problem is not None
            assert "apt install bubblewrap" in refusals.problem
            nursery.cancel_scope.cancel()
    assert events.seen == [False]


async def test_a_sandboxed_compiler_stays_in_distccds_session(workdir: Path, port: int) -> None:
    # The pause lowers, and the supervisor kills, the processes of distccd's session.
    events = ServingEvents()
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            state = await nursery.start(supervisor(port, workdir, events))
            session = state.pid
            assert session is not None
            source = SLOW_SOURCE % 2_000_000_000
            nursery.start_soon(compile_remotely, workdir, port, "slow", source, SLOW_FLAGS)
            while not any(entry.comm == "cc1plus" for entry in alive(session)):
                await trio.sleep(0.05)
            assert any(entry.comm == "bwrap" for entry in alive(session))
            nursery.cancel_scope.cancel()
    assert alive(session) == []  # the sandboxed compiler died with distccd
