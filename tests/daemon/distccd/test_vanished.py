"""Cutting distcc loose from a vanished peer: the task's decisions on a virtual clock, and
the probe and the abort on real loopback sockets."""

from __future__ import annotations

import ipaddress
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import pytest
import trio

from p2pcc.core.gossip_types import Transport
from p2pcc.core.node import LocalNode
from p2pcc.core.peers import Liveness
from p2pcc.core.procfs import TCP_ESTABLISHED, TcpSocket
from p2pcc.daemon.changes import ChangeBoard
from p2pcc.daemon.distccd.cutting import Aborted, abort_connections, abort_jobs
from p2pcc.daemon.distccd.vanished import cutoff_problem, distccd_answers, serve_vanished_peers
from tests.core.local_nodes import WALL, make_node
from tests.core.policies import default_timings


def heard_from(beta: LocalNode, alpha: LocalNode, now: float) -> None:
    beta.set_serving(not beta.serving, now)  # a change, so that beta sends at once
    datagram = beta.datagram_to_send(now, WALL)
    assert datagram is not None
    alpha.receive(datagram.data, ("10.0.0.2", 3634), Transport.MULTICAST, now)


async def passes(abort: object) -> None:
    """The start-up self-test, passed (the real one runs subprocesses: not on a virtual
    clock; it is tested on its own below)."""


def job_with_beta() -> TcpSocket:
    """An established connection of ours to beta's distccd, as /proc/net/tcp shows it."""
    here, beta = ipaddress.ip_address("10.0.0.1"), ipaddress.ip_address("10.0.0.2")
    return TcpSocket(here, 40000, TCP_ESTABLISHED, 77, beta, 3632)


class Recorder:
    """A socket table, a probe and an abort that record their calls and answer as told."""

    def __init__(self, answers: bool, result: Aborted, held: int = 2) -> None:
        self.answers = answers
        self.result = result
        self.held = held  # connections with beta when it dies
        self.probes: list[tuple[tuple[str, ...], int, float]] = []
        self.aborts: list[tuple[tuple[str, ...], int, int]] = []
        self.readings = 0

    def sockets(self) -> list[TcpSocket]:
        self.readings += 1
        return [job_with_beta()] * self.held

    async def probe(self, addresses: Sequence[str], port: int, timeout: float) -> bool:
        self.probes.append((tuple(addresses), port, timeout))
        await trio.sleep(timeout if not self.answers else 0.01)
        return self.answers

    async def abort(self, addresses: Sequence[str], port: int, own_port: int) -> Aborted:
        self.aborts.append((tuple(addresses), port, own_port))
        return self.result


def watched_node() -> tuple[LocalNode, ChangeBoard]:
    """Alpha, with the board its vanished-peers task waits on."""
    board = ChangeBoard()
    return make_node(1, board.notify), board


async def run_until_beta_dies(
    alpha: LocalNode, board: ChangeBoard, recorder: Recorder, *, deaths: int = 1
) -> None:
    """Beta is heard, then falls silent `deaths` times, each time long enough to die."""
    task = partial(
        serve_vanished_peers,
        alpha,
        board,
        probe=recorder.probe,
        abort=recorder.abort,
        sockets=recorder.sockets,
        self_test=passes,
    )
    beta = make_node(2)
    async with trio.open_nursery() as nursery:
        await nursery.start(task)
        for _ in range(deaths):
            heard_from(beta, alpha, trio.current_time())
            await trio.sleep(default_timings().dead_after + 1)
            alpha.handle_timer(trio.current_time())
            peer = alpha.peers()[0]
            assert peer.liveness is Liveness.DEAD
            await trio.sleep(10)  # the probe's time, and more
        nursery.cancel_scope.cancel()


async def test_a_vanished_peer_has_its_connections_aborted_once(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    alpha, board = watched_node()
    recorder = Recorder(answers=False, result=Aborted(3))
    await run_until_beta_dies(alpha, board, recorder)
    assert recorder.probes == [(("10.0.0.2",), 3632, 3.0)]
    assert recorder.aborts == [(("10.0.0.2",), 3632, 3632)]
    assert alpha.reports.aborted_connections == 3
    assert alpha.snapshot(trio.current_time(), WALL)["counters"]["aborted_connections"] == 3
    (record,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert record.getMessage().startswith("peer ws2 vanished (silent 1")
    assert record.getMessage().endswith(
        "distccd 10.0.0.2:3632 unreachable): aborted 3 distcc connection(s) with it; "
        "our jobs there now compile here"
    )


async def test_a_silent_peer_whose_distccd_answers_keeps_its_jobs(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    alpha, board = watched_node()
    recorder = Recorder(answers=True, result=Aborted(3))
    with caplog.at_level(logging.INFO, logger="p2pcc"):
        await run_until_beta_dies(alpha, board, recorder)
    assert len(recorder.probes) == 1
    assert recorder.aborts == []
    assert alpha.reports.aborted_connections == 0
    assert any("answers: leaving its jobs" in r.getMessage() for r in caplog.records)


async def test_each_death_is_checked_and_a_refusal_is_told_once(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    alpha, board = watched_node()
    refused = Aborted(0, "SOCK_DESTROY answers: Operation not permitted")
    recorder = Recorder(answers=False, result=refused)
    await run_until_beta_dies(alpha, board, recorder, deaths=3)
    assert len(recorder.aborts) == 3
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [
        "cannot abort connections to vanished peers (SOCK_DESTROY answers: Operation not "
        "permitted): builds wait out DISTCC_IO_TIMEOUT instead; the daemon needs "
        "CAP_NET_ADMIN and a kernel with CONFIG_INET_DIAG_DESTROY (docs/faults.md)"
    ]
    assert alpha.reports.cutoff_problem == "SOCK_DESTROY answers: Operation not permitted"


async def test_a_dead_peer_we_hold_no_connection_with_is_not_even_probed(
    autojump_clock: trio.abc.Clock,
) -> None:
    alpha, board = watched_node()
    recorder = Recorder(answers=False, result=Aborted(3), held=0)
    await run_until_beta_dies(alpha, board, recorder)
    assert recorder.readings == 1
    assert (recorder.probes, recorder.aborts) == ([], [])


# --- the real probe and abort, on loopback ------------------------------------------------


def listening() -> socket.socket:
    """A TCP socket listening on a free loopback port."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    return server


@pytest.fixture
def listener() -> socket.socket:
    return listening()


async def test_the_probe_sees_a_listening_port_among_dead_addresses(
    listener: socket.socket,
) -> None:
    port = listener.getsockname()[1]
    with listener:
        assert await distccd_answers(["127.0.0.2", "127.0.0.1"], port, 5.0)


async def test_the_probe_fails_on_a_closed_port(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there now: refused
    with trio.fail_after(5):
        assert not await distccd_answers(["127.0.0.1"], port, 5.0)


async def test_abort_cuts_our_jobs_there_and_its_jobs_here_and_nothing_else(
    listener: socket.socket,
) -> None:
    own, other = listening(), listening()
    with listener, own, other:
        port, own_port = listener.getsockname()[1], own.getsockname()[1]
        ours_there = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
        its_client = socket.create_connection(("127.0.0.1", own_port))
        its_job_here, _ = own.accept()
        bystander = socket.create_connection(("127.0.0.1", other.getsockname()[1]))
        result = await abort_connections(["127.0.0.1"], port, own_port)
        assert result == Aborted(3)
        for aborted in (*ours_there, its_job_here):
            aborted.settimeout(5)
            with pytest.raises(ConnectionAbortedError):
                aborted.recv(1)
            aborted.close()
        bystander.setblocking(False)
        with pytest.raises(BlockingIOError):  # still open, nothing to read
            bystander.recv(1)
        bystander.close()
        its_client.close()


async def test_abort_jobs_cuts_exactly_the_connections_named(listener: socket.socket) -> None:
    # 40 of our jobs on one distccd; 35 named, so two `ss` calls (MAX_PER_CALL is 32).
    with listener:
        port = listener.getsockname()[1]
        jobs = [socket.create_connection(("127.0.0.1", port)) for _ in range(40)]
        here = ipaddress.ip_address("127.0.0.1")
        keys = [(here, job.getsockname()[1], here, port, 0) for job in jobs[:35]]
        assert await abort_jobs(keys) == Aborted(35)
        for job in jobs[:35]:
            job.settimeout(5)
            with pytest.raises(ConnectionAbortedError):
                job.recv(1)
        for job in jobs[35:]:
            job.setblocking(False)
            with pytest.raises(BlockingIOError):  # still open, nothing to read
                job.recv(1)
        for job in jobs:
            job.close()


async def test_abort_without_ss_says_so(
    listener: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with listener:
        port = listener.getsockname()[1]
        result = await abort_connections(["127.0.0.1"], port, port)
    assert result == Aborted(0, "ss (iproute2) is not installed")


# --- the start-up self-test -------------------------------------------------------------


async def test_the_self_test_passes_where_connections_can_be_aborted() -> None:
    assert await cutoff_problem(abort_connections) is None


async def test_the_self_test_names_the_kernels_refusal_without_cap_net_admin() -> None:
    code = (
        "import trio\n"
        "from p2pcc.daemon.distccd.cutting import abort_connections\n"
        "from p2pcc.daemon.distccd.vanished import cutoff_problem\n"
        "print(trio.run(cutoff_problem, abort_connections))\n"
    )
    without = ["setpriv", "--inh-caps=-net_admin", "--bounding-set=-net_admin"]
    done = await trio.run_process(
        [*without, sys.executable, "-c", code], capture_stdout=True, capture_stderr=True
    )
    assert done.stdout.decode().strip() == "SOCK_DESTROY answers: Operation not permitted"


async def test_the_self_test_notices_an_abort_that_aborts_nothing() -> None:
    async def does_nothing(addresses: Sequence[str], port: int, own_port: int) -> Aborted:
        return Aborted(1)

    assert await cutoff_problem(does_nothing) == "the kernel aborted no connection"


async def test_a_daemon_that_cannot_abort_says_so_at_start(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    async def fails(abort: object) -> str:
        return "ss (iproute2) is not installed"

    alpha = make_node(1)
    assert alpha.snapshot(0.0, WALL)["node"]["cutoff_problem"] == "not checked yet"
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(serve_vanished_peers, alpha, ChangeBoard(), self_test=fails))
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert alpha.reports.cutoff_problem == "ss (iproute2) is not installed"
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warning.startswith("cannot abort connections to vanished peers (ss (iproute2)")


async def test_probing_a_real_distccd_costs_it_no_job_line() -> None:
    """The probe resets its connection, so distccd drops it before reading a request
    instead of logging a failed job (which `jobs` figures and peers' logs would show)."""
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        port = spare.getsockname()[1]
    # distccd runs as nobody, who cannot reach into pytest's private tmp_path.
    home = Path(tempfile.mkdtemp(prefix="p2pcc-probe-"))
    home.chmod(0o777)
    log_file, pid_file = home / "distccd.log", home / "distccd.pid"
    command = ["distccd", "--daemon", "--listen", "127.0.0.1", "--port", str(port)]
    command += ["--allow", "127.0.0.1", "--log-file", str(log_file), "--log-level", "info"]
    command += ["--pid-file", str(pid_file), "--user", "nobody"]
    await trio.run_process(command)
    try:
        with trio.fail_after(10):
            while "listening on" not in (log_file.read_text() if log_file.exists() else ""):
                await trio.sleep(0.05)
            for _ in range(3):
                assert await distccd_answers(["127.0.0.1"], port, 5.0)
            await trio.sleep(0.5)
        logged = log_file.read_text()
    finally:
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), signal.SIGTERM)
        shutil.rmtree(home, ignore_errors=True)
    assert "dcc_job_summary" not in logged
    assert "connection from" not in logged
