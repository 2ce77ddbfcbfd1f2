"""The mDNS service over a fake backend: publication, pacing, the thread bridge, probing.

Browsing (discovery, dropping, caps) is tested in test_browse.py, over the same fake
backend (fake_mdns.py); time is trio's virtual clock.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

import pytest
import trio
import trio.testing

from p2pcc.core import limits
from p2pcc.core.reports import Reports
from p2pcc.core.zeroconf_names import ZeroconfNameError
from p2pcc.daemon.mdns.backend import MdnsError, ThreadBridge
from p2pcc.daemon.mdns.service import MdnsService, probe_announcement, serve_mdns
from tests.daemon.mdns.fake_mdns import (
    ANNOUNCEMENT,
    IDENTITY,
    OWN_ID,
    FakeBackend,
    Seen,
    announce,
    stock_service,
)

# --- publication --------------------------------------------------------------------------


async def test_p2pcc_service_is_registered_at_start(
    backend: FakeBackend, service: MdnsService
) -> None:
    await trio.testing.wait_all_tasks_blocked()
    assert [(call, record.name, record.port) for call, _, record in backend.calls] == [
        ("register", "alpha [01010101]._p2pcc._tcp.local.", 7463)
    ]
    assert [record.name for record in backend.published()] == [
        "alpha [01010101]._p2pcc._tcp.local."
    ]


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
    assert [(record.type_, record.txt.get("jobs")) for record in backend.published()] == [
        ("_p2pcc._tcp.local.", None),
        ("_x86-64-linux-gnu--12._sub._distcc._tcp.local.", "4"),
    ]


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


async def test_drops_go_to_the_daemons_counter_which_outlives_the_service(seen: Seen) -> None:
    """The daemon counts drops for `status`; an mDNS restart must not reset its count."""
    reports = Reports()
    for bad in (
        stock_service("distcc@delta", cpus=b"lots"),
        stock_service("distcc@echo", jobs=b"0"),
    ):
        backend = FakeBackend()
        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                on_drop = reports.count_mdns_drop
                service = MdnsService(backend, IDENTITY, seen.listeners(), on_drop=on_drop)
                await nursery.start(service.run)
                await announce(backend, bad)
                nursery.cancel_scope.cancel()
    assert reports.mdns_drops() == {"bad-cpus": 1, "bad-jobs": 1}
    assert seen.events == []
