"""The proof task on a virtual clock, with a scripted `prove` in place of distcc: a peer
proven once it is heard and this machine is idle, again only an hour later, out of the
hosts line while disproven and back once a proof passes; nothing while a build runs; an
error logged once.  Then `run_proof` itself, with the real distcc and gcc, against
loopback ports where nothing listens or nothing answers."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from functools import partial

import pytest
import trio

from p2pcc.core.metrics import LocalMetrics
from p2pcc.core.node import LocalNode
from p2pcc.core.proof import Outcome, ProofResult, ProofTarget
from p2pcc.core.proof_book import BACKGROUND_SPACING, IDLE_BUILD_LOAD, PERIOD
from p2pcc.daemon.proof_run import run_proof
from p2pcc.daemon.proofs import LOOK_PERIOD, BuildLoad, Prove, serve_proofs
from tests.core.local_nodes import FP, WALL, gossip, make_node
from tests.core.policies import default_policy

BETA = bytes([2]) * 16


def build_load(value: float) -> BuildLoad:
    load = BuildLoad()
    load.observe(LocalMetrics(4, 0.0, 0.0, 0.0, 1 << 30, 0, 4, build_load=value))
    return load


class Scripted:
    """A `prove` that answers each call with the next outcome, 50 ms later (or raises
    `error`), and keeps the times it was called at."""

    def __init__(self, *outcomes: Outcome, error: Exception | None = None) -> None:
        self.outcomes = list(outcomes)
        self.error = error
        self.calls: list[float] = []
        self.targets: list[ProofTarget] = []

    async def __call__(self, target: ProofTarget) -> ProofResult:
        now = trio.current_time()
        self.calls.append(now)
        self.targets.append(target)
        await trio.sleep(0.05)
        if self.error is not None:
            raise self.error
        return ProofResult(target, self.outcomes.pop(0), "", 0.05, now, WALL + now)


def listed(alpha: LocalNode) -> bool:
    return "10.0.0.2:" in alpha.hosts(trio.current_time())[FP].hosts


@asynccontextmanager
async def alpha_proving(prove: Prove, load: BuildLoad) -> AsyncIterator[LocalNode]:
    """Alpha hearing beta every second, its proof task running from 0.5 s."""
    alpha, beta = make_node(1), make_node(2)
    beta.set_serving(True, trio.current_time())

    async def beta_speaking() -> None:
        while True:
            gossip(beta, alpha, trio.current_time())
            await trio.sleep(1.0)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(beta_speaking)
        await trio.sleep(0.5)
        await nursery.start(partial(serve_proofs, alpha, prove, load, lzo=False))
        yield alpha
        nursery.cancel_scope.cancel()


async def test_a_peer_is_proven_at_once_then_hourly_and_left_out_while_disproven(
    autojump_clock: trio.abc.Clock,
) -> None:
    start = trio.current_time()
    prove = Scripted(Outcome.DIFFERENT, Outcome.OK)
    async with alpha_proving(prove, build_load(0.0)) as alpha:
        await trio.sleep(1.0)
        assert prove.calls == [start + 0.5]
        assert prove.targets[0].node_id == BETA
        assert prove.targets[0].host == "10.0.0.2:3632/1"
        assert not listed(alpha)
        assert alpha.snapshot(trio.current_time(), WALL)["proofs"][0]["excluded"] is True
        await trio.sleep_until(start + 0.5 + PERIOD - 1.0)
        assert len(prove.calls) == 1  # at most once an hour
        await trio.sleep_until(start + 0.5 + PERIOD + LOOK_PERIOD + 1.0)
        assert len(prove.calls) == 2
        assert listed(alpha)  # proven again: back in the line


async def test_the_peer_of_our_line_goes_first_and_the_rest_wait_their_spacing(
    autojump_clock: trio.abc.Clock,
) -> None:
    """A line of one host among three peers: that host is proven first, then one other
    peer, and the third only a BACKGROUND_SPACING later."""
    alpha, peers = make_node(1), [make_node(index) for index in (2, 3, 4)]
    alpha.set_policy(replace(default_policy(), max_hosts=1))
    for peer in peers:
        peer.set_serving(True, trio.current_time())
    prove = Scripted(Outcome.OK, Outcome.OK, Outcome.OK)

    async def speaking() -> None:
        while True:
            for peer in peers:
                gossip(peer, alpha, trio.current_time())
            await trio.sleep(1.0)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(speaking)
        await trio.sleep(0.5)
        (line_host,) = alpha.ranking(trio.current_time()).ranked[FP]
        start = trio.current_time()
        await nursery.start(partial(serve_proofs, alpha, prove, build_load(0.0), lzo=False))
        await trio.sleep(BACKGROUND_SPACING + LOOK_PERIOD + 5.0)
        nursery.cancel_scope.cancel()
    assert prove.targets[0].node_id == line_host.peer.node_id
    assert len(prove.calls) == 3
    assert prove.calls[1] - prove.calls[0] < 2.0  # the first of the rest: at once
    assert prove.calls[2] - prove.calls[1] >= BACKGROUND_SPACING
    assert start <= prove.calls[0] < start + 0.1


async def test_no_proof_while_a_build_of_ours_runs(autojump_clock: trio.abc.Clock) -> None:
    prove = Scripted(Outcome.OK)
    load = build_load(IDLE_BUILD_LOAD * 4)
    async with alpha_proving(prove, load):
        await trio.sleep(10 * LOOK_PERIOD)
        assert prove.calls == []
        load.observe(LocalMetrics(4, 0.0, 0.0, 0.0, 1 << 30, 0, 4, build_load=0.0))
        await trio.sleep(LOOK_PERIOD + 1.0)
        assert len(prove.calls) == 1


async def test_the_peer_being_proven_is_marked_while_its_proof_runs(
    autojump_clock: trio.abc.Clock,
) -> None:
    prove = Scripted(Outcome.OK)
    async with alpha_proving(prove, build_load(0.0)) as alpha:
        await trio.sleep(0.02)  # inside the scripted proof's 50 ms
        assert alpha.reports.proofs.proving == {BETA}
        await trio.sleep(0.1)
        assert alpha.reports.proofs.proving == frozenset()


async def test_an_error_is_logged_once_and_proving_goes_on(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    prove = Scripted(error=RuntimeError("boom"))
    with caplog.at_level(logging.WARNING, logger="p2pcc.daemon.proofs"):
        async with alpha_proving(prove, build_load(0.0)) as alpha:
            await trio.sleep(3 * LOOK_PERIOD)
            assert len(prove.calls) == 3  # never recorded: due again at every look
            assert alpha.reports.proofs.proving == frozenset()
    assert [r.getMessage() for r in caplog.records] == [
        "proving peers failed (going on): RuntimeError('boom')"
    ]


# --- run_proof with the real programs --------------------------------------------------------


def loopback_target(port: int, compiler: str = "x86_64-linux-gnu-gcc-12") -> ProofTarget:
    return ProofTarget(BETA, "beta", 1, FP, "c", compiler, f"127.0.0.1:{port}/1", True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_a_refused_connection_is_told_and_never_compiled_here() -> None:
    with trio.fail_after(30):
        result = await run_proof(loopback_target(free_port()), distcc="distcc", env=os.environ)
    assert result.outcome is Outcome.REFUSED
    assert "Connection refused" in result.detail


async def test_a_distccd_that_never_answers_is_a_timeout() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # accepts into the backlog, never reads
        target = loopback_target(silent.getsockname()[1])
        with trio.fail_after(30):
            result = await run_proof(target, distcc="distcc", env=os.environ, timeout=2.0)
    assert result.outcome is Outcome.TIMEOUT
    assert result.seconds == 2.0


async def test_our_own_compiler_failing_is_not_the_peers_fault() -> None:
    target = loopback_target(free_port(), compiler="p2pcc-no-such-compiler")
    with trio.fail_after(30):
        result = await run_proof(target, distcc="distcc", env=os.environ)
    assert result.outcome is Outcome.LOCAL
    assert "p2pcc-no-such-compiler" in result.detail
