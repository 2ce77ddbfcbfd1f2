"""Members beyond our link kept beside the node id and tried as seeds after a restart:
screened when read, saved while the pool is known, and no longer tried once a member
beyond the link answers or the span is over."""

from __future__ import annotations

import ipaddress
import logging
from functools import partial
from pathlib import Path

import pytest
import trio

from p2pcc.core.addresses import AddressPool
from p2pcc.core.gossip_types import Transport
from p2pcc.core.node import LocalNode
from p2pcc.core.remembered import REMEMBERED_SPAN, decode, encode
from p2pcc.daemon.stores.members import (
    SAVE_INTERVAL,
    Contacts,
    load_members,
    members_file,
    serve_member_store,
)
from tests.core.local_nodes import WALL, gossip, make_node
from tests.daemon.stores.workers import in_place

POOL = AddressPool(4, (ipaddress.ip_network("10.0.0.0/24"), ipaddress.ip_network("10.2.0.0/16")))
SEED = ("10.2.0.50", 3634)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return members_file(tmp_path / "node-id")


def test_the_file_sits_beside_the_node_id() -> None:
    assert members_file(Path("/var/lib/p2pcc/node-id")) == Path("/var/lib/p2pcc/members")


def test_what_the_pool_no_longer_admits_and_our_own_addresses_are_left_out(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    kept = (("10.2.0.7", 3634), ("10.9.0.1", 3634), ("10.0.0.1", 3634), ("127.0.0.1", 3634))
    path.write_bytes(encode(kept))
    with caplog.at_level(logging.INFO, logger="p2pcc"):
        assert load_members(path, POOL, own=("10.0.0.1",)) == (("10.2.0.7", 3634),)
    assert [r.getMessage() for r in caplog.records] == [
        f"trying 1 member(s) remembered in {path} until the pool is known"
    ]


def test_no_file_is_nothing_to_try_and_no_warning(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="p2pcc"):
        assert load_members(path, POOL, own=()) == ()
    assert caplog.records == []


def test_a_damaged_file_is_one_warning_and_nothing_to_try(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path.write_bytes(b"p2pcc-members 1\nnot an endpoint\n")
    with caplog.at_level(logging.INFO, logger="p2pcc"):
        assert load_members(path, POOL, own=()) == ()
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith(f"ignoring the damaged remembered members {path}: ")


def seeds_of(node: LocalNode) -> tuple[tuple[str, int], ...]:
    return node._engine.audience.seeds


def unicast(sender: LocalNode, receiver: LocalNode, now: float) -> None:
    """`sender`'s datagrams reach `receiver` by unicast only: it lives beyond the link."""
    for outgoing in sender.datagrams_to_send(now, WALL + now):
        receiver.receive(outgoing.data, (sender.status.addresses[0], 3634), Transport.UNICAST, now)


async def test_remembered_members_are_tried_until_one_beyond_the_link_is_known(
    path: Path, autojump_clock: trio.abc.Clock
) -> None:
    node, remembered = make_node(1), (("10.2.0.7", 3634),)
    contacts = Contacts(node, remembered)
    contacts.set_seeds([SEED], trio.current_time())
    assert seeds_of(node) == (SEED, ("10.2.0.7", 3634))
    async with trio.open_nursery() as nursery:
        store = partial(
            serve_member_store, path, node, contacts, on_disk=remembered, worker=in_place
        )
        await nursery.start(store)
        gossip(make_node(2), node, trio.current_time())  # on our link: not the pool beyond
        await trio.sleep(SAVE_INTERVAL + 1)
        assert seeds_of(node) == (SEED, ("10.2.0.7", 3634))
        assert not path.exists()  # nothing beyond the link to keep yet
        beyond = make_node(3)
        for _ in range(3):
            unicast(beyond, node, trio.current_time())
            await trio.sleep(1.0)
        assert set(node.beyond_link()) == {beyond.node_id}
        await trio.sleep(SAVE_INTERVAL)
        assert seeds_of(node) == (SEED,)  # the configured seed stays
        assert decode(path.read_bytes()) == (("10.0.0.3", 3634),)
        nursery.cancel_scope.cancel()


async def test_after_the_span_they_are_no_longer_tried_and_the_file_stays(
    path: Path, autojump_clock: trio.abc.Clock
) -> None:
    node, remembered = make_node(1), (("10.2.0.7", 3634),)
    path.write_bytes(encode(remembered))
    contacts = Contacts(node, remembered)
    contacts.set_seeds([], trio.current_time())
    assert seeds_of(node) == remembered
    async with trio.open_nursery() as nursery:
        store = partial(
            serve_member_store, path, node, contacts, on_disk=remembered, worker=in_place
        )
        await nursery.start(store)
        await trio.sleep(REMEMBERED_SPAN - SAVE_INTERVAL)
        assert seeds_of(node) == remembered
        await trio.sleep(2 * SAVE_INTERVAL)
        assert seeds_of(node) == ()
        nursery.cancel_scope.cancel()
    assert decode(path.read_bytes()) == remembered  # tried again at the next start
