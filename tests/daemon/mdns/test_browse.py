"""Browsing over a fake backend: what is reported, dropped, capped, resolved again.

Real zeroconf between namespace workstations is exercised in
tests/integration/test_stock_distcc_zeroconf.py; here every event is posted by the test
(through the same `ThreadBridge` zeroconf's threads use) and time is trio's virtual clock.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest
import trio
import trio.testing

from p2pcc.core import limits
from p2pcc.core.reports import Reports
from p2pcc.core.zeroconf_names import DISTCC_SERVICE_TYPE, DiscoveredNode, StockServer
from p2pcc.daemon.mdns.backend import BrowseEvent
from p2pcc.daemon.mdns.service import MdnsService
from tests.daemon.mdns.fake_mdns import (
    OWN_ID,
    PEER_ID,
    FakeBackend,
    Seen,
    announce,
    p2pcc_service,
    stock_service,
)


async def test_p2pcc_node_is_reported_with_id_addresses_and_port(
    backend: FakeBackend, seen: Seen, service: MdnsService
) -> None:
    with trio.fail_after(5):
        await announce(backend, p2pcc_service("beta [02020202]", PEER_ID))
    beta = DiscoveredNode(PEER_ID, "beta [02020202]", ("10.0.0.2",), 7463)
    assert seen.events == [("node", beta)]
    with trio.fail_after(5):  # it is tracked: its goodbye is reported
        await announce(backend, p2pcc_service("beta [02020202]", PEER_ID), present=False)
    assert seen.events == [("node", beta), ("node-gone", beta)]


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
    gamma = StockServer("distcc@gamma", ("10.0.0.3",), 3632, "x86_64-linux-gnu--12", 2, 6)
    assert seen.events == [("stock", gamma)]
    with trio.fail_after(5):  # only gamma is tracked: only its goodbye is reported
        await announce(
            backend,
            stock_service("distcc@gamma"),
            stock_service("distcc@beta", p2pcc=PEER_ID.hex().encode()),
            present=False,
        )
    assert seen.events == [("stock", gamma), ("stock-gone", gamma)]


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
    seen.events.clear()
    with trio.fail_after(5):  # forgotten: the same record back is reported as new
        await announce(backend, p2pcc_service("beta", PEER_ID))
    assert [kind for kind, _ in seen.events] == ["node"]


async def test_hostile_records_are_dropped_counted_and_logged_once(
    backend: FakeBackend,
    seen: Seen,
    service: MdnsService,
    reports: Reports,
    caplog: pytest.LogCaptureFixture,
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
    assert reports.mdns_drops() == {
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
    backend: FakeBackend, seen: Seen, service: MdnsService, reports: Reports
) -> None:
    with trio.fail_after(5):
        backend.post[DISTCC_SERVICE_TYPE](
            BrowseEvent(DISTCC_SERVICE_TYPE, "ghost._distcc._tcp.local.", True)
        )
        await trio.testing.wait_all_tasks_blocked()
    assert seen.events == []
    assert reports.mdns_drops() == {"unresolved": 1}


async def test_stock_servers_at_the_cap(
    backend: FakeBackend, seen: Seen, service: MdnsService, reports: Reports
) -> None:
    servers = [stock_service(f"distcc@s{i}") for i in range(limits.MAX_STOCK_SERVERS + 1)]
    with trio.fail_after(10):
        for start in range(0, len(servers), limits.MAX_MDNS_PENDING):
            await announce(backend, *servers[start : start + limits.MAX_MDNS_PENDING])
    assert len(seen.events) == limits.MAX_STOCK_SERVERS
    assert reports.mdns_drops() == {"table-full": 1}
    seen.events.clear()
    with trio.fail_after(10):  # the table holds the cap's worth: each goodbye is reported
        await announce(backend, *servers, present=False)
    assert [kind for kind, _ in seen.events] == ["stock-gone"] * limits.MAX_STOCK_SERVERS


async def test_names_in_resolution_at_the_cap(
    backend: FakeBackend, seen: Seen, service: MdnsService, reports: Reports
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
    assert reports.mdns_drops() == {"busy": 1}


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
