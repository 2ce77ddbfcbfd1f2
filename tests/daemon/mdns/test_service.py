"""The mDNS service over a fake backend: discovery, dropping, caps, pacing, the thread bridge.

Real zeroconf between namespace workstations is exercised in
tests/integration/test_stock_distcc_zeroconf.py; here every event is posted by the test
(through the same `ThreadBridge` zeroconf's threads use) and time is trio's virtual clock.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import pytest
import trio
import trio.testing

from p2pcc.core import limits
from p2pcc.core.zeroconf_names import (
    DISTCC_SERVICE_TYPE,
    P2PCC_SERVICE_TYPE,
    DiscoveredNode,
    DistccdAnnouncement,
    ServiceRecord,
    StockServer,
    ZeroconfNameError,
)
from p2pcc.daemon.mdns.backend import BrowseEvent, MdnsError, ResolvedService, ThreadBridge
from p2pcc.daemon.mdns.service import (
    MdnsIdentity,
    MdnsListeners,
    MdnsService,
    probe_announcement,
    serve_mdns,
)

OWN_ID = b"\x01" * 16
PEER_ID = b"\x02" * 16
IDENTITY = MdnsIdentity("alpha", OWN_ID, "alpha", ("10.0.0.1",), 7463)
ANNOUNCEMENT = DistccdAnnouncement(3632, 2, 4, "x86_64-linux-gnu", "12")
STOCK_TXT = {b"cpus": b"2", b"jobs": b"6", b"cc_machine": b"x86_64-linux-gnu", b"cc_version": b"12"}


class FakeBackend:
    """Resolves from a dict, records publication calls with trio's (virtual) time."""

    def __init__(self) -> None:
        self.post: dict[str, Callable[[BrowseEvent], None]] = {}
        self.services: dict[str, ResolvedService] = {}
        self.resolved: list[str] = []
        self.calls: list[tuple[str, float, ServiceRecord]] = []
        self.gate: trio.Event | None = None  # when set, resolves wait for it
        self.failures = 0  # publication calls that raise before one succeeds

    async def browse(self, service_type: str, post: Callable[[BrowseEvent], None]) -> None:
        self.post[service_type] = post

    async def resolve(self, service_type: str, name: str) -> ResolvedService | None:
        assert name.endswith(service_type)
        self.resolved.append(name)
        if self.gate is not None:
            await self.gate.wait()
        await trio.lowlevel.checkpoint()
        return self.services.get(name)

    async def _publication(self, what: str, record: ServiceRecord) -> None:
        await trio.lowlevel.checkpoint()
        if self.failures:
            self.failures -= 1
            raise MdnsError(f"mDNS {what} failed: injected")
        self.calls.append((what, trio.current_time(), record))

    async def register(self, record: ServiceRecord) -> None:
        await self._publication("register", record)

    async def update(self, record: ServiceRecord) -> None:
        await self._publication("update", record)

    async def unregister(self, record: ServiceRecord) -> None:
        await self._publication("unregister", record)

    def distcc_calls(self) -> list[tuple[str, float, str]]:
        """(call, time, jobs) for our distcc record."""
        return [(c, t, r.txt["jobs"]) for c, t, r in self.calls if "_distcc" in r.type_]


class Seen:
    """Every callback, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, DiscoveredNode | StockServer]] = []

    def listeners(self) -> MdnsListeners:
        return MdnsListeners(
            on_node=lambda n: self.events.append(("node", n)),
            on_node_gone=lambda n: self.events.append(("node-gone", n)),
            on_stock_server=lambda s: self.events.append(("stock", s)),
            on_stock_server_gone=lambda s: self.events.append(("stock-gone", s)),
        )


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def seen() -> Seen:
    return Seen()


@pytest.fixture
async def service(backend: FakeBackend, seen: Seen) -> AsyncIterator[MdnsService]:
    async with trio.open_nursery() as nursery:
        started = await nursery.start(MdnsService(backend, IDENTITY, seen.listeners()).run)
        yield started
        nursery.cancel_scope.cancel()


def p2pcc_service(
    name: str, node_id: bytes, addresses: tuple[str, ...] = ("10.0.0.2",)
) -> ResolvedService:
    txt = {b"txtvers": b"1", b"node": node_id.hex().encode(), b"proto": b"1"}
    return ResolvedService(f"{name}.{P2PCC_SERVICE_TYPE}", addresses, 7463, txt)


def stock_service(name: str, **txt: bytes) -> ResolvedService:
    props = STOCK_TXT | {key.encode(): value for key, value in txt.items()}
    return ResolvedService(f"{name}.{DISTCC_SERVICE_TYPE}", ("10.0.0.3",), 3632, props)


async def announce(backend: FakeBackend, *services: ResolvedService, present: bool = True) -> None:
    """Post browse events the way zeroconf's thread does, and let the service digest them."""
    for resolved in services:
        backend.services[resolved.name] = resolved
        service_type = resolved.name.split(".", 1)[1]
        backend.post[service_type](BrowseEvent(service_type, resolved.name, present))
    await trio.testing.wait_all_tasks_blocked()


# --- discovery ----------------------------------------------------------------------------


async def test_p2pcc_node_is_reported_with_id_addresses_and_port(
    backend: FakeBackend, seen: Seen, service: MdnsService
) -> None:
    with trio.fail_after(5):
        await announce(backend, p2pcc_service("beta [02020202]", PEER_ID))
    assert seen.events == [
        ("node", DiscoveredNode(PEER_ID, "beta [02020202]", ("10.0.0.2",), 7463))
    ]
    assert service.statistics().nodes == 1


async def test_our_own_record_is_not_reported(
    backend: FakeBackend, seen: Seen, service: MdnsService
) -> None:
    with trio.fail_after(5):
        await announce(backend, p2pcc_service("alpha [01010101]", OWN_ID))
    assert backend.resolved == ["alpha [01010101]._p2pcc._tcp.local."]
    assert seen.events == []


async def test_stock_servers_are_reported_apart_and_p2pcc_distccds_skipped(
    backend: FakeBackend, seen: Seen, service: MdnsService
) -> None:
    with trio.fail_after(5):
        await announce(
            backend,
            stock_service("distcc@gamma"),
            stock_service("distcc@beta", p2pcc=PEER_ID.hex().encode()),
        )
    assert seen.events == [
        ("stock", StockServer("distcc@gamma", ("10.0.0.3",), 3632, "x86_64-linux-gnu--12", 2, 6))
    ]
    assert (service.statistics().stock_servers, service.statistics().nodes) == (1, 0)


async def test_changes_are_reported_again_and_repeats_are_not(
    backend: FakeBackend, seen: Seen, service: MdnsService
) -> None:
    with trio.fail_after(5):
        await announce(backend, p2pcc_service("beta", PEER_ID))
        await announce(backend, p2pcc_service("beta", PEER_ID))
        await announce(backend, p2pcc_service("beta", PEER_ID, ("10.0.0.9",)))
    assert [node.addresses for _, node in seen.events] == [("10.0.0.2",), ("10.0.0.9",)]


async def test_goodbye_reports_the_last_record_once(
    backend: FakeBackend, seen: Seen, service: MdnsService
) -> None:
    stock = stock_service("distcc@gamma")
    with trio.fail_after(5):
        await announce(backend, p2pcc_service("beta", PEER_ID), stock)
        seen.events.clear()
        await announce(backend, p2pcc_service("beta", PEER_ID), stock, present=False)
        await announce(backend, p2pcc_service("beta", PEER_ID), present=False)
    assert [(kind, getattr(record, "port", None)) for kind, record in seen.events] == [
        ("node-gone", 7463),
        ("stock-gone", 3632),
    ]
    assert service.statistics().nodes == 0


async def test_hostile_records_are_dropped_counted_and_logged_once(
    backend: FakeBackend, seen: Seen, service: MdnsService, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="p2pcc.mdns")
    hostile = [
        stock_service("distcc@huge", gnuhost=b"x" * 5000),
        stock_service("distcc@absurd", jobs=b"99999"),
        stock_service("distcc@binary", cc_machine=b"\xff\xfe"),
        replace(p2pcc_service("wrongtypes", PEER_ID), port=None),
        replace(
            p2pcc_service("future", PEER_ID),
            properties={b"node": PEER_ID.hex().encode(), b"proto": b"9"},
        ),
    ]
    with trio.fail_after(5):
        await announce(backend, *hostile)
        await announce(backend, *hostile)  # announced again: counted again, not logged again
    assert seen.events == []
    assert service.statistics().dropped == {
        "oversized": 2,
        "bad-jobs": 2,
        "bad-txt": 2,
        "bad-port": 2,
        "incompatible": 2,
    }
    assert len(caplog.records) == 5
    assert "ignoring mDNS record 'distcc@absurd._distcc._tcp.local.': bad-jobs" in caplog.text


async def test_a_record_turning_bad_is_forgotten(
    backend: FakeBackend, seen: Seen, service: MdnsService
) -> None:
    with trio.fail_after(5):
        await announce(backend, stock_service("distcc@gamma"))
        await announce(backend, stock_service("distcc@gamma", cpus=b"lots"))
    assert [kind for kind, _ in seen.events] == ["stock", "stock-gone"]


async def test_unanswered_resolve_is_dropped(
    backend: FakeBackend, seen: Seen, service: MdnsService
) -> None:
    with trio.fail_after(5):
        backend.post[DISTCC_SERVICE_TYPE](
            BrowseEvent(DISTCC_SERVICE_TYPE, "ghost._distcc._tcp.local.", True)
        )
        await trio.testing.wait_all_tasks_blocked()
    assert seen.events == []
    assert service.statistics().dropped == {"unresolved": 1}


async def test_stock_servers_at_the_cap(
    backend: FakeBackend, seen: Seen, service: MdnsService
) -> None:
    servers = [stock_service(f"distcc@s{i}") for i in range(limits.MAX_STOCK_SERVERS + 1)]
    with trio.fail_after(10):
        for start in range(0, len(servers), limits.MAX_MDNS_PENDING):
            await announce(backend, *servers[start : start + limits.MAX_MDNS_PENDING])
    assert len(seen.events) == limits.MAX_STOCK_SERVERS
    assert service.statistics().dropped == {"table-full": 1}
    assert service.statistics().stock_servers == limits.MAX_STOCK_SERVERS


async def test_names_in_resolution_at_the_cap(
    backend: FakeBackend, seen: Seen, service: MdnsService
) -> None:
    backend.gate = trio.Event()
    with trio.fail_after(5):
        await announce(
            backend, *[stock_service(f"distcc@s{i}") for i in range(limits.MAX_MDNS_PENDING + 1)]
        )
        assert len(backend.resolved) == limits.MAX_MDNS_PENDING
        backend.gate.set()
        await trio.testing.wait_all_tasks_blocked()
    assert len(seen.events) == limits.MAX_MDNS_PENDING
    assert service.statistics().dropped == {"busy": 1}


async def test_goodbye_during_resolution_discards_the_answer(
    backend: FakeBackend, seen: Seen, service: MdnsService
) -> None:
    backend.gate = trio.Event()
    with trio.fail_after(5):
        await announce(backend, p2pcc_service("beta", PEER_ID))
        await announce(backend, p2pcc_service("beta", PEER_ID), present=False)
        backend.gate.set()
        await trio.testing.wait_all_tasks_blocked()
    assert seen.events == []
    assert backend.resolved == ["beta._p2pcc._tcp.local."]


async def test_change_during_resolution_resolves_again(
    backend: FakeBackend, seen: Seen, service: MdnsService
) -> None:
    backend.gate = trio.Event()
    with trio.fail_after(5):
        await announce(backend, p2pcc_service("beta", PEER_ID))
        await announce(backend, p2pcc_service("beta", PEER_ID, ("10.0.0.7",)))
        backend.gate.set()
        await trio.testing.wait_all_tasks_blocked()
    assert backend.resolved == ["beta._p2pcc._tcp.local."] * 2
    assert [node.addresses for _, node in seen.events] == [("10.0.0.7",)]


# --- publication --------------------------------------------------------------------------


async def test_p2pcc_service_is_registered_at_start(
    backend: FakeBackend, service: MdnsService
) -> None:
    await trio.testing.wait_all_tasks_blocked()
    assert [(call, record.name, record.port) for call, _, record in backend.calls] == [
        ("register", "alpha [01010101]._p2pcc._tcp.local.", 7463)
    ]
    assert service.statistics().p2pcc_published


async def test_distccd_updates_are_paced_and_withdrawal_is_immediate(
    backend: FakeBackend, service: MdnsService, autojump_clock: trio.testing.MockClock
) -> None:
    start = trio.current_time()
    service.set_distccd(ANNOUNCEMENT)
    await trio.sleep(1)
    for jobs in (5, 6, 7):  # coalesced: only the last is published, at start + 10 s
        service.set_distccd(replace(ANNOUNCEMENT, jobs=jobs))
    await trio.sleep(14)
    service.set_distccd(None)  # at start + 15 s, not delayed
    await trio.sleep(1)
    service.set_distccd(ANNOUNCEMENT)  # published again 10 s after the withdrawal
    await trio.sleep(20)
    assert [(call, round(at - start, 6), jobs) for call, at, jobs in backend.distcc_calls()] == [
        ("register", 0.0, "4"),
        ("update", 10.0, "7"),
        ("unregister", 15.0, "7"),
        ("register", 25.0, "4"),
    ]
    assert service.statistics().distccd_published


async def test_compiler_change_registers_the_new_subtype(
    backend: FakeBackend, service: MdnsService, autojump_clock: trio.testing.MockClock
) -> None:
    service.set_distccd(ANNOUNCEMENT)
    await trio.sleep(1)
    service.set_distccd(replace(ANNOUNCEMENT, cc_version="11"))
    await trio.sleep(20)
    distcc = [
        (call, record.type_) for call, _, record in backend.calls if "_distcc" in record.type_
    ]
    assert distcc == [
        ("register", "_x86-64-linux-gnu--12._sub._distcc._tcp.local."),
        ("unregister", "_x86-64-linux-gnu--12._sub._distcc._tcp.local."),
        ("register", "_x86-64-linux-gnu--11._sub._distcc._tcp.local."),
    ]


async def test_failed_registration_is_retried_after_the_interval(
    backend: FakeBackend, seen: Seen, autojump_clock: trio.testing.MockClock
) -> None:
    backend.failures = 2  # the p2pcc registration, then the distcc one
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        service = MdnsService(backend, IDENTITY, seen.listeners(), ANNOUNCEMENT)
        await nursery.start(service.run)
        await trio.sleep(30)
        nursery.cancel_scope.cancel()
    assert [(call, at - start) for call, at, _ in backend.calls] == [
        ("register", limits.MDNS_MIN_UPDATE_INTERVAL),
        ("register", limits.MDNS_MIN_UPDATE_INTERVAL),
    ]


def test_unpublishable_announcement_is_refused_at_once() -> None:
    service = MdnsService(FakeBackend(), IDENTITY, Seen().listeners())
    with pytest.raises(ZeroconfNameError, match="jobs='0'"):
        service.set_distccd(replace(ANNOUNCEMENT, jobs=0))


# --- the thread bridge --------------------------------------------------------------------


async def test_bridge_carries_every_item_from_foreign_threads_in_order() -> None:
    send, receive = trio.open_memory_channel[tuple[int, int]](10_000)
    bridge = ThreadBridge(trio.lowlevel.current_trio_token(), send)
    threads = [
        threading.Thread(target=lambda t=t: [bridge.post((t, i)) for i in range(500)])  # type: ignore[misc]
        for t in range(4)
    ]
    for thread in threads:
        thread.start()
    got: list[tuple[int, int]] = []
    with trio.fail_after(10):
        while len(got) < 2000:
            got.append(await receive.receive())
    for thread in threads:
        thread.join(timeout=5)
    assert sorted(got) == [(t, i) for t in range(4) for i in range(500)]
    for t in range(4):
        assert [i for tt, i in got if tt == t] == list(range(500))


async def test_bridge_drops_when_full_with_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    send, receive = trio.open_memory_channel[int](1)
    bridge = ThreadBridge(trio.lowlevel.current_trio_token(), send)
    for item in range(3):
        bridge.post(item)
    await trio.testing.wait_all_tasks_blocked()
    assert (receive.receive_nowait(), bridge.dropped) == (0, 2)
    assert [r.message for r in caplog.records] == [
        "mDNS events arrive faster than handled; dropping some"
    ]


def test_bridge_post_after_trio_finished_is_a_no_op() -> None:
    async def make() -> ThreadBridge[int]:
        send, _ = trio.open_memory_channel[int](1)
        return ThreadBridge(trio.lowlevel.current_trio_token(), send)

    bridge = trio.run(make)
    bridge.post(1)  # trio has finished: must neither raise nor block
    assert bridge.dropped == 0


# --- probing the local compiler -------------------------------------------------------------


async def test_probe_announcement_reads_cc_and_distccd_like_stock_distccd() -> None:
    with trio.fail_after(20):
        announcement = await probe_announcement(port=3632, cpus=2, jobs=4)
        machine = await trio.run_process(["cc", "-dumpmachine"], capture_stdout=True)
        version = await trio.run_process(["cc", "-dumpversion"], capture_stdout=True)
        distccd = await trio.run_process(["distccd", "--version"], capture_stdout=True)
    assert announcement.cc_machine == machine.stdout.decode().strip()
    assert announcement.cc_version == version.stdout.decode().strip()
    # "distccd 3.4 x86_64-pc-linux-gnu": the two words stock distccd puts in its TXT
    words = distccd.stdout.decode().split()
    assert (announcement.distcc_version, announcement.gnuhost) == (words[1], words[2])


async def test_probe_announcement_fails_for_a_missing_compiler(tmp_path: Any) -> None:
    with trio.fail_after(20), pytest.raises(MdnsError, match="cannot run"):
        await probe_announcement(port=1, cpus=1, jobs=1, cc=str(tmp_path / "no-such-cc"))


@pytest.mark.parametrize(
    ("addresses", "message"),
    [([], "without an interface address"), (["eth0"], "does not appear to be an IPv4 or IPv6")],
)
async def test_serve_mdns_refuses_unusable_interface_addresses(
    addresses: list[str], message: str
) -> None:
    def ignore(_: object) -> None:
        pass

    with trio.fail_after(5), pytest.raises(MdnsError, match=message):
        await serve_mdns(
            interface_addresses=addresses,
            hostname="alpha",
            node_id=OWN_ID,
            node_name="alpha",
            gossip_port=7463,
            distccd=None,
            on_node=ignore,
            on_node_gone=ignore,
            on_stock_server=ignore,
            on_stock_server_gone=ignore,
        )


async def test_drops_go_to_the_daemons_counter_which_outlives_the_service(
    backend: FakeBackend, seen: Seen
) -> None:
    """The daemon passes one counter for `status`; an mDNS restart must not reset it."""
    counts: Counter[str] = Counter({"unresolved": 2})  # from an earlier service
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            service = MdnsService(backend, IDENTITY, seen.listeners(), drop_counts=counts)
            await nursery.start(service.run)
            await announce(backend, stock_service("distcc@delta", cpus=b"lots"))
            nursery.cancel_scope.cancel()
    assert counts == {"unresolved": 2, "bad-cpus": 1}
    assert service.statistics().dropped == counts
