"""The seed task: names looked up at start and every SEED_REFRESH on the virtual clock,
last good endpoints kept, each failure warned about once, a hanging resolver bounded,
only the group's family asked for, literals never looked up."""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Sequence

import pytest
import trio
import trio.testing

from p2pcc.core.addresses import AddressPool
from p2pcc.core.seeds import LOOKUP_TIMEOUT, Endpoint, Seed, SeedState
from p2pcc.daemon.seeds import (
    SEED_REFRESH,
    SeedTiming,
    serve_seeds,
    thread_resolver,
)

POOL = AddressPool(4, (ipaddress.ip_network("10.1.0.0/24"), ipaddress.ip_network("10.2.0.0/16")))


class FakeResolver:
    """Answers from a script per name, one answer per lookup (the last repeats); an
    answer is a list of addresses, an OSError to raise, or None to hang."""

    def __init__(self, script: dict[str, list[list[str] | OSError | None]]) -> None:
        self.script = script
        self.calls: list[tuple[float, str, int]] = []

    async def __call__(self, host: str, version: int) -> Sequence[str]:
        self.calls.append((trio.current_time(), host, version))
        answers = self.script[host]
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if answer is None:
            await trio.sleep_forever()
        if isinstance(answer, OSError):
            raise answer
        assert answer is not None
        return answer


class Node:
    """Records what the task hands over, with the virtual time."""

    def __init__(self) -> None:
        self.handed: list[tuple[float, tuple[Endpoint, ...]]] = []
        self.states: tuple[SeedState, ...] = ()

    def set_seeds(self, seeds: Sequence[Endpoint], now: float) -> None:
        self.handed.append((now, tuple(seeds)))

    def report(self, states: tuple[SeedState, ...]) -> None:
        self.states = states


async def run_for(
    seconds: float, seeds: Sequence[Seed], resolver: FakeResolver, node: Node
) -> None:
    with trio.fail_after(seconds + 1):
        async with trio.open_nursery() as nursery:
            await nursery.start(
                lambda task_status: serve_seeds(
                    seeds,
                    default_port=3634,
                    pool=POOL,
                    own=("10.1.0.9",),
                    set_seeds=node.set_seeds,
                    on_report=node.report,
                    resolve=resolver,
                    task_status=task_status,
                )
            )
            await trio.sleep(seconds)
            nursery.cancel_scope.cancel()


async def test_names_are_looked_up_at_start_then_every_refresh(
    autojump_clock: trio.testing.MockClock,
) -> None:
    resolver = FakeResolver({"build1": [["10.2.0.5"]], "build2": [["10.2.0.6"]]})
    node = Node()
    await run_for(2 * SEED_REFRESH + 1, [Seed("build1"), Seed("build2", 3700)], resolver, node)
    assert sorted(resolver.calls) == [  # trio starts the lookups of one round in any order
        (0.0, "build1", 4),
        (0.0, "build2", 4),
        (SEED_REFRESH, "build1", 4),
        (SEED_REFRESH, "build2", 4),
        (2 * SEED_REFRESH, "build1", 4),
        (2 * SEED_REFRESH, "build2", 4),
    ]
    assert node.handed[0] == (0.0, ())  # before any answer
    assert node.handed[-1] == (2 * SEED_REFRESH, (("10.2.0.5", 3634), ("10.2.0.6", 3700)))


async def test_a_literal_is_handed_over_at_start_and_never_looked_up(
    autojump_clock: trio.testing.MockClock,
) -> None:
    resolver = FakeResolver({})
    node = Node()
    await run_for(3 * SEED_REFRESH, [Seed("10.2.0.5", 3700), Seed("10.1.0.9")], resolver, node)
    assert resolver.calls == []
    assert node.handed == [(0.0, (("10.2.0.5", 3700),))]  # our own address left out
    assert [state.problem for state in node.states] == [None, None]


async def test_a_failing_name_keeps_its_last_endpoints_and_warns_once_per_reason(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    outage = socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
    resolver = FakeResolver({"build1": [["10.2.0.5"], outage, outage, outage, ["10.2.0.7"]]})
    node = Node()
    with caplog.at_level(logging.INFO, logger="p2pcc.daemon.seeds"):
        await run_for(4 * SEED_REFRESH + 1, [Seed("build1")], resolver, node)
    assert [(now, seeds) for now, seeds in node.handed if now % SEED_REFRESH == 0] == [
        (0.0, ()),
        (0.0, (("10.2.0.5", 3634),)),
        (SEED_REFRESH, (("10.2.0.5", 3634),)),
        (2 * SEED_REFRESH, (("10.2.0.5", 3634),)),
        (3 * SEED_REFRESH, (("10.2.0.5", 3634),)),
        (4 * SEED_REFRESH, (("10.2.0.7", 3634),)),
    ]
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", "seed build1: 10.2.0.5:3634"),
        (
            "WARNING",
            "seed build1: lookup failed (Temporary failure in name resolution); "
            "keeping 10.2.0.5:3634",
        ),
        ("INFO", "seed build1: 10.2.0.7:3634"),
    ]


async def test_a_hanging_resolver_times_out_and_never_blocks_the_next_name(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    resolver = FakeResolver({"stuck": [None], "build2": [["10.2.0.6"]]})
    node = Node()
    with caplog.at_level(logging.WARNING, logger="p2pcc.daemon.seeds"):
        await run_for(
            SEED_REFRESH + LOOKUP_TIMEOUT + 1, [Seed("stuck"), Seed("build2")], resolver, node
        )
    assert node.handed[:3] == [
        (0.0, ()),
        (0.0, (("10.2.0.6", 3634),)),
        (LOOKUP_TIMEOUT, (("10.2.0.6", 3634),)),
    ]
    assert sorted(call[:2] for call in resolver.calls) == [
        (0.0, "build2"),
        (0.0, "stuck"),
        (SEED_REFRESH, "build2"),
        (SEED_REFRESH, "stuck"),
    ]
    assert caplog.messages == [
        "seed stuck: lookup failed (no answer within 5 s); no address to reach it yet"
    ]
    assert node.states[0].problem == "no answer within 5 s"


async def test_only_the_groups_family_is_asked_for_and_others_are_not_used(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    resolver = FakeResolver({"build1": [["fd00::5", "10.9.0.5", "10.2.0.5"]]})
    node = Node()
    with caplog.at_level(logging.WARNING, logger="p2pcc.daemon.seeds"):
        await run_for(2 * SEED_REFRESH + 1, [Seed("build1")], resolver, node)
    assert {version for _, _, version in resolver.calls} == {4}
    assert node.handed[-1][1] == (("10.2.0.5", 3634),)
    assert len(caplog.messages) == 2  # once each, not every minute
    assert "address 10.9.0.5 is not used (address-outside)" in caplog.messages[1]
    assert "gossip.networks" in caplog.messages[1]


async def test_the_timing_can_be_changed(autojump_clock: trio.testing.MockClock) -> None:
    resolver = FakeResolver({"build1": [None]})
    node = Node()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                lambda: serve_seeds(
                    [Seed("build1")],
                    default_port=3634,
                    pool=POOL,
                    own=(),
                    set_seeds=node.set_seeds,
                    on_report=node.report,
                    resolve=resolver,
                    timing=SeedTiming(refresh=10.0, timeout=1.0),
                )
            )
            await trio.sleep(25)
            nursery.cancel_scope.cancel()
    assert [now for now, _, _ in resolver.calls] == [0.0, 10.0, 20.0]
    assert [now for now, _ in node.handed] == [0.0, 1.0, 11.0, 21.0]


async def test_the_thread_resolver_asks_getaddrinfo_for_the_family() -> None:
    with trio.fail_after(LOOKUP_TIMEOUT):
        resolve = thread_resolver()
        assert "127.0.0.1" in await resolve("localhost", 4)
        assert await resolve("127.0.0.1", 4) == ["127.0.0.1"]
        with pytest.raises(socket.gaierror):
            await resolve("10.0.0.1", 6)
