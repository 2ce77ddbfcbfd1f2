"""`p2pcc pause --now` on a serving workstation in the middle of a client's build.

`server` runs a real daemon with its distccd; `client` builds a few generated C files
that take `gcc -O2` seconds each with real distcc sent to `server` only (DISTCC_FALLBACK
left at its default).  Once `server`'s distccd runs the client's jobs, its owner runs
`p2pcc pause --now`.  Then: `server`'s distccd session holds no job process shortly
after (a generous bound: behaviour, not speed), distccd itself is the same process, the
hand-back is counted and logged; the client's build succeeds with objects identical to
plain local compiles; and the client's daemon counted none of the cut jobs as a
turnaround.  `benchmarks/hand_back.py` measures how long each step takes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.netbed import TestBed
from tests.integration.pool import Daemon, start_pool, wait_until
from tests.integration.served_jobs import (
    compile_locally,
    counters,
    differing_objects,
    distccd_session,
    served_jobs,
    start_build,
    write_project,
)

pytestmark = [pytest.mark.integration, pytest.mark.netns]

FILES, SLOTS = 4, 2


@pytest.fixture
def pool(bed: TestBed, shared_tmp: Path) -> Iterator[list[Daemon]]:
    yield from start_pool(bed, shared_tmp, ("client", "server"), timeout=30)


def _can_cut(server: Daemon) -> bool:
    status = server.status()
    return status is not None and status["node"]["cutoff_problem"] is None


def test_pause_now_hands_the_running_jobs_back_and_the_build_succeeds(
    pool: list[Daemon], shared_tmp: Path
) -> None:
    client, server = pool
    wait_until(lambda: _can_cut(server), 20, "the server's self-test: connections can be cut")
    session = distccd_session(server)
    build_dir = shared_tmp / "build"
    objects = write_project(build_dir, FILES)
    make = start_build(client, server, build_dir, SLOTS, "now")
    try:
        wait_until(
            lambda: served_jobs(session) or make.poll() is not None,
            120,
            "the server to compile the client's jobs",
        )
        assert make.poll() is None, (build_dir / "make-now.log").read_text()[-3000:]
        paused = server.cli("pause", "--now", "--reason", "owner is back")
        assert "peers' running jobs handed back" in paused.stdout
        wait_until(lambda: not served_jobs(session), 30, "the served jobs to be gone")
        assert make.wait(timeout=600) == 0, (build_dir / "make-now.log").read_text()[-3000:]
    finally:
        if make.poll() is None:
            make.kill()
    compile_locally(build_dir, shared_tmp / "reference", objects)
    assert differing_objects(build_dir, shared_tmp / "reference", objects) == []

    assert distccd_session(server) == session  # distccd itself was never killed
    assert counters(server)["jobs_handed_back"] >= 1
    log = server.log_text()
    assert "paused: handed back " in log
    assert "handing back peers' jobs" in log
    status = server.status()
    assert status is not None
    assert status["node"]["pause"]["hand_back"] is True
    assert status["node"]["serving"] is True
    # The client heard of the pause before its jobs were cut: none counted as a turnaround.
    assert client.peers_by_name()["server"]["turnaround"]["jobs"] == 0
