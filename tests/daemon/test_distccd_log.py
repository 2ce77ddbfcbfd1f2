"""Following distccd's log: new lines only, a missing file, rotation, truncation, garbage."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio
import trio.testing

from p2pcc.core.metrics import JobRecord
from p2pcc.daemon import distccd_log
from p2pcc.daemon.distccd_log import LogFollower, follow_distccd_log
from tests.core.test_metrics import LOG_ERROR, LOG_OK, LOG_OTHER_LINES

POLL = 1.0


def job_line(source: str) -> str:
    return LOG_OK.replace("slow.c", source) + "\n"


def append(path: Path, text: str | bytes) -> None:
    with path.open("ab") as file:
        file.write(text.encode() if isinstance(text, str) else text)


class Followed:
    """Runs follow_distccd_log on `path`; `step()` lets one poll happen."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.jobs: list[JobRecord] = []

    def sources(self) -> list[str]:
        return [job.source for job in self.jobs]

    async def start(self, nursery: trio.Nursery, *, from_start: bool = False) -> None:
        await nursery.start(
            lambda task_status: follow_distccd_log(
                self.path,
                self.jobs.append,
                poll_interval=POLL,
                from_start=from_start,
                task_status=task_status,
            )
        )
        # The follower reads at whole multiples of POLL; the test acts half-way between.
        await trio.sleep(POLL / 2)

    @staticmethod
    async def step() -> None:
        await trio.sleep(POLL)


async def test_reports_jobs_logged_after_start_only(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    log = tmp_path / "distccd.log"
    log.write_text(job_line("before.c"))
    followed = Followed(log)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await followed.start(nursery)
            append(log, "\n".join(LOG_OTHER_LINES) + job_line("a.c") + LOG_ERROR + "\n")
            await followed.step()
            append(log, job_line("b.c")[:40])  # distccd is mid-write: not a line yet
            await followed.step()
            assert followed.sources() == ["a.c", "bad.c"]
            append(log, job_line("b.c")[40:])
            await followed.step()
            nursery.cancel_scope.cancel()
    assert followed.sources() == ["a.c", "bad.c", "b.c"]
    assert [job.ok for job in followed.jobs] == [True, False, True]


async def test_from_start_reads_what_is_already_there(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    log = tmp_path / "distccd.log"
    log.write_text(job_line("before.c"))
    followed = Followed(log)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await followed.start(nursery, from_start=True)
            await followed.step()
            nursery.cancel_scope.cancel()
    assert followed.sources() == ["before.c"]


async def test_waits_for_a_missing_file_and_reads_it_whole(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    log = tmp_path / "distccd.log"
    followed = Followed(log)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await followed.start(nursery)
            await followed.step()
            log.write_text(job_line("first.c"))  # distccd started after us
            await followed.step()
            nursery.cancel_scope.cancel()
    assert followed.sources() == ["first.c"]


async def test_follows_rotation_without_losing_the_old_files_tail(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    log = tmp_path / "distccd.log"
    log.write_text("")
    followed = Followed(log)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await followed.start(nursery)
            append(log, job_line("a.c"))
            await followed.step()
            log.rename(tmp_path / "distccd.log.1")
            append(tmp_path / "distccd.log.1", job_line("late.c"))  # written before reopening
            await followed.step()  # no new file yet: keep reading the old one
            append(tmp_path / "distccd.log.1", job_line("later.c"))
            log.write_text(job_line("new.c"))
            await followed.step()
            append(log, job_line("newer.c"))
            await followed.step()
            nursery.cancel_scope.cancel()
    assert followed.sources() == ["a.c", "late.c", "later.c", "new.c", "newer.c"]


async def test_starts_over_after_truncation(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    log = tmp_path / "distccd.log"
    log.write_text("")
    followed = Followed(log)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await followed.start(nursery)
            append(log, job_line("a.c") + job_line("b.c"))
            await followed.step()
            os.truncate(log, 0)  # logrotate's copytruncate
            append(log, job_line("c.c"))
            await followed.step()
            nursery.cancel_scope.cancel()
    assert followed.sources() == ["a.c", "b.c", "c.c"]


async def test_garbage_and_overlong_lines_are_skipped(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(distccd_log, "MAX_LOG_LINE", 200)
    log = tmp_path / "distccd.log"
    log.write_text("")
    followed = Followed(log)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await followed.start(nursery)
            append(log, b"\xff\xfe\x00 binary junk\n" + b"x" * 250)
            await followed.step()
            # The overlong line ends with what looks like a job: it is dropped whole.
            append(log, b"x" * 250 + job_line("hidden.c").encode() + job_line("a.c").encode())
            await followed.step()
            append(log, b"y" * 250 + job_line("hidden2.c").encode() + job_line("b.c").encode())
            await followed.step()
            nursery.cancel_scope.cancel()
    assert followed.sources() == ["a.c", "b.c"]


async def test_an_unreadable_path_is_reported_once_and_retried(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    log = tmp_path / "distccd.log"
    log.mkdir()  # open() fails with IsADirectoryError on every poll
    followed = Followed(log)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await followed.start(nursery)
            for _ in range(3):
                await followed.step()
            log.rmdir()
            log.write_text(job_line("a.c"))
            await followed.step()
            nursery.cancel_scope.cancel()
    assert followed.sources() == ["a.c"]
    assert len(caplog.records) == 1
    assert caplog.records[0].getMessage().startswith(f"distccd log {log} unreadable, retrying:")


def test_the_follower_hands_out_complete_lines_only(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_bytes(b"old\n")
    follower = LogFollower(log)
    assert follower.read_lines() == []
    append(log, b"one\ntw")
    assert follower.read_lines() == ["one"]
    append(log, b"o\n")
    assert follower.read_lines() == ["two"]
    follower.close()
