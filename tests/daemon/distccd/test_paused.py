"""The passes of a paused node over the jobs distccd runs for peers: lowered, or handed
back (connections cut first, then the job processes killed, distccd left alone), at the
exact virtual times `core/hand_back.py` gives; and one hand-back pass on a real session."""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from functools import partial

import pytest
import trio

from p2pcc.core.hand_back import FAST_INTERVAL, FAST_PERIOD, SLOW_INTERVAL
from p2pcc.core.node import LocalNode
from p2pcc.core.procfs import ProcessEntry
from p2pcc.daemon.changes import ChangeBoard
from p2pcc.daemon.distccd.cutting import Aborted
from p2pcc.daemon.distccd.paused import HandedBack, hand_back, serve_paused_jobs
from p2pcc.daemon.distccd.processes import read_processes
from tests.core.local_nodes import WALL, make_node

DISTCCD = 4242
PORT = 3632


def paused_node(board: ChangeBoard, *, cutoff: str | None = None) -> LocalNode:
    node = make_node(1, board.notify)
    node.reports.set_cutoff_problem(cutoff)
    return node


def pause(node: LocalNode, *, hand_back: bool, seconds: float | None = None) -> None:
    node.pause_for(seconds, "", uid=0, now=trio.current_time(), wall=WALL, hand_back=hand_back)


class Passes:
    """Fake passes: when each came, of which kind, and what the hand-back ones found."""

    def __init__(self, handed: list[HandedBack] | None = None) -> None:
        self.calls: list[tuple[float, str]] = []
        self.handed = handed or []

    def lower(self, session: int) -> int:
        assert session == DISTCCD
        self.calls.append((round(trio.current_time(), 3), "lower"))
        return 0

    async def give_back(self, session: int, port: int) -> HandedBack:
        assert (session, port) == (DISTCCD, PORT)
        self.calls.append((round(trio.current_time(), 3), "hand back"))
        return self.handed.pop(0) if self.handed else HandedBack(0, 0, 0)


async def run_task(
    node: LocalNode,
    board: ChangeBoard,
    passes: Passes,
    script: Callable[[], Awaitable[None]],
    distccd_pid: Callable[[], int | None] = lambda: DISTCCD,
) -> None:
    async with trio.open_nursery() as nursery:
        task = partial(
            serve_paused_jobs,
            node,
            distccd_pid,
            board,
            lower=passes.lower,
            give_back=passes.give_back,
        )
        await nursery.start(task)
        await script()
        nursery.cancel_scope.cancel()


async def test_a_pause_without_hand_back_lowers_at_once_and_every_2_s(
    autojump_clock: trio.abc.Clock,
) -> None:
    board, passes = ChangeBoard(), Passes()
    node = paused_node(board)
    pid: list[int | None] = [None]

    async def script() -> None:
        await trio.sleep_until(10.0)
        pause(node, hand_back=False)
        await trio.sleep_until(13.0)  # paused, but no distccd runs
        pid[0] = DISTCCD
        await trio.sleep_until(17.5)
        node.resume(trio.current_time())
        await trio.sleep_until(30.0)

    await run_task(node, board, passes, script, lambda: pid[0])
    assert passes.calls == [(14.0, "lower"), (16.0, "lower")]


async def test_a_hand_back_pause_passes_at_once_then_quickly_then_every_2_s(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    board = ChangeBoard()
    passes = Passes([HandedBack(2, 2, 5), HandedBack(0, 0, 0), HandedBack(1, 1, 3)])
    node = paused_node(board)

    async def script() -> None:
        await trio.sleep_until(10.0)
        pause(node, hand_back=True)
        await trio.sleep_until(10.0 + FAST_PERIOD + 3 * SLOW_INTERVAL + 0.1)
        node.resume(trio.current_time())
        await trio.sleep_until(40.0)

    with caplog.at_level(logging.INFO, logger="p2pcc"):
        await run_task(node, board, passes, script)
    fast = [round(10.0 + k * FAST_INTERVAL, 3) for k in range(round(FAST_PERIOD / FAST_INTERVAL))]
    slow = [round(10.0 + FAST_PERIOD + k * SLOW_INTERVAL, 3) for k in range(4)]
    assert passes.calls == [(at, "hand back") for at in fast + slow]
    assert node.reports.handed_back == 3
    assert [r.getMessage() for r in caplog.records if r.name == "p2pcc.daemon.paused"] == [
        "paused: handed back 2 job(s) of peers (2 connection(s) cut, 5 process(es) stopped): "
        "their clients compile them now",
        "paused: handed back 1 job(s) of peers (1 connection(s) cut, 3 process(es) stopped): "
        "their clients compile them now",
    ]


async def test_pause_now_during_a_plain_pause_hands_back_at_once(
    autojump_clock: trio.abc.Clock,
) -> None:
    board, passes = ChangeBoard(), Passes()
    node = paused_node(board)

    async def script() -> None:
        pause(node, hand_back=False)
        await trio.sleep_until(3.0)
        pause(node, hand_back=True)
        await trio.sleep_until(3.0 + FAST_INTERVAL / 2)

    await run_task(node, board, passes, script)
    assert passes.calls == [(0.0, "lower"), (2.0, "lower"), (3.0, "hand back")]


async def test_without_cutting_a_hand_back_pause_lowers_and_says_so_once(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    board, passes = ChangeBoard(), Passes()
    node = paused_node(board, cutoff="ss (iproute2) is not installed")

    async def script() -> None:
        pause(node, hand_back=True)
        await trio.sleep_until(5.0)

    with caplog.at_level(logging.INFO, logger="p2pcc"):
        await run_task(node, board, passes, script)
    assert passes.calls == [(0.0, "lower"), (2.0, "lower"), (4.0, "lower")]
    assert [r.getMessage() for r in caplog.records] == [
        "cannot hand back peers' jobs (ss (iproute2) is not installed): they finish at nice 19 "
        "instead; the daemon needs CAP_NET_ADMIN and a kernel with CONFIG_INET_DIAG_DESTROY "
        "(docs/faults.md)"
    ]
    assert node.reports.handed_back == 0


async def test_a_complaint_of_ss_turns_the_next_passes_into_lowering(
    autojump_clock: trio.abc.Clock,
) -> None:
    board = ChangeBoard()
    passes = Passes([HandedBack(1, 0, 1, "SOCK_DESTROY: Operation not supported")])
    node = paused_node(board)

    async def script() -> None:
        pause(node, hand_back=True)
        await trio.sleep_until(2.5)

    await run_task(node, board, passes, script)
    assert passes.calls == [(0.0, "hand back"), (FAST_INTERVAL, "lower"), (2.2, "lower")]
    assert node.reports.cutoff_problem == "SOCK_DESTROY: Operation not supported"


async def test_a_refused_pass_is_logged_once(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    board = ChangeBoard()
    node = paused_node(board)

    def refuse(session: int) -> int:
        raise PermissionError(1, "Operation not permitted")

    async def refuse_too(session: int, port: int) -> HandedBack:
        raise PermissionError(1, "Operation not permitted")

    async with trio.open_nursery() as nursery:
        task = partial(
            serve_paused_jobs, node, lambda: DISTCCD, board, lower=refuse, give_back=refuse_too
        )
        await nursery.start(task)
        with caplog.at_level(logging.INFO, logger="p2pcc"):
            pause(node, hand_back=False)
            await trio.sleep(30)
            pause(node, hand_back=True)
            await trio.sleep(30)
        nursery.cancel_scope.cancel()
    assert [r.getMessage() for r in caplog.records if r.name == "p2pcc.daemon.paused"] == [
        "cannot lower the priority of distccd's jobs: [Errno 1] Operation not permitted",
        "cannot stop distccd's jobs: [Errno 1] Operation not permitted",
    ]


async def test_a_pass_that_fails_otherwise_is_logged_once_and_the_passes_go_on(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    board = ChangeBoard()
    node = paused_node(board)
    passes = []

    async def broken(session: int, port: int) -> HandedBack:
        passes.append(trio.current_time())
        raise OSError(5, "Input/output error")

    async with trio.open_nursery() as nursery:
        task = partial(serve_paused_jobs, node, lambda: DISTCCD, board, give_back=broken)
        await nursery.start(task)
        with caplog.at_level(logging.INFO, logger="p2pcc"):
            pause(node, hand_back=True)
            await trio.sleep(10)
        nursery.cancel_scope.cancel()
    assert len(passes) > 2  # the task lived on
    assert [r.getMessage() for r in caplog.records if r.name == "p2pcc.daemon.paused"] == [
        "a pass over distccd's jobs failed (going on): OSError(5, 'Input/output error')"
    ]


def entry(pid: int, comm: str, ppid: int, session: int = DISTCCD) -> ProcessEntry:
    return ProcessEntry(pid=pid, comm=comm, state="S", ppid=ppid, session=session)


PROCESSES = [
    entry(DISTCCD, "distccd", 1),
    entry(4243, "distccd", DISTCCD),
    entry(4244, "distccd", DISTCCD),
    entry(5000, "x86_64-linux-gn", 4243),  # the compiler driver of a job
    entry(5001, "cc1", 5000),
    entry(6000, "cc1", 5999, session=6000),  # somebody's own build: never touched
]


async def test_a_pass_cuts_first_then_kills_the_jobs_but_not_distccd() -> None:
    order: list[object] = []

    async def abort(port: int) -> Aborted:
        order.append(("abort", port))
        return Aborted(2)

    def processes() -> list[ProcessEntry]:
        order.append("read")
        return PROCESSES

    def kill(pid: int) -> bool:
        order.append(pid)
        return pid != 5001  # it ended meanwhile

    with trio.fail_after(5):
        done = await hand_back(
            DISTCCD, PORT, abort=abort, connections=lambda port: 2, processes=processes, kill=kill
        )
    assert order == [("abort", PORT), "read", 5000, 5001]
    # Two connections (one job still receiving its source), one driver.
    assert done == HandedBack(jobs=2, connections=2, processes=1)


async def test_a_pass_starts_no_ss_while_distccd_holds_no_connection() -> None:
    async def abort(port: int) -> Aborted:
        raise AssertionError("ss started for nothing")

    killed: list[int] = []
    with trio.fail_after(5):
        done = await hand_back(
            DISTCCD,
            PORT,
            abort=abort,
            connections=lambda port: 0,
            processes=lambda: PROCESSES,
            kill=partial(_record, killed),
        )
    assert killed == [5000, 5001]
    assert done == HandedBack(jobs=1, connections=0, processes=2)


async def test_a_pass_kills_nothing_when_ss_complains() -> None:
    async def abort(port: int) -> Aborted:
        return Aborted(1, "RTNETLINK answers: Operation not supported")

    def kill(pid: int) -> bool:
        raise AssertionError("a job killed with its connection open fails at its client")

    with trio.fail_after(5):
        done = await hand_back(
            DISTCCD,
            PORT,
            abort=abort,
            connections=lambda port: 2,
            processes=lambda: PROCESSES,
            kill=kill,
        )
    assert done == HandedBack(1, 1, 0, "RTNETLINK answers: Operation not supported")


async def test_a_real_session_loses_its_jobs_and_keeps_distccd(fake_distccd_session: int) -> None:
    session = fake_distccd_session
    with trio.fail_after(10):
        done = await hand_back(session, PORT, abort=_no_abort, connections=lambda port: 1)
        while {e.comm for e in _live(session)} - {"distccd"}:
            await trio.sleep(0.01)  # SIGKILL takes a moment
    assert done.processes == 2  # the shell leader and the python job
    survivors = _live(session)
    assert [e.comm for e in survivors] == ["distccd"]
    assert os.getpgid(survivors[0].pid) == session


def _live(session: int) -> list[ProcessEntry]:
    return [e for e in read_processes() if e.session == session and e.state != "Z"]


def _record(killed: list[int], pid: int) -> bool:
    killed.append(pid)
    return True


async def _no_abort(port: int) -> Aborted:
    return Aborted(0)
