"""The pool beyond one link (protocol 1.1), in memory: seeds, news, probes, syncs, cuts.

Real gossip engines on simulated links (tests/core/sim_pool.py), on a virtual clock:
every time asserted is exact for the seed, and every run takes milliseconds of CPU.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from p2pcc.core import limits
from p2pcc.core.gossip_types import Outgoing, Transport
from p2pcc.core.model import EntryKind, Message, MessageKind, NewsEntry, NodeState
from p2pcc.core.news import transmits
from p2pcc.core.peers import Liveness, Peer
from p2pcc.core.wire import decode, encode
from tests.core.sim_pool import KEY, OFFERS, PORT, SimNode, SimPool


def two_links(size: int = 10, *, loss: float = 0.0) -> SimPool:
    """`size` nodes, half on link 0 and half on link 1, already one pool."""
    pool = SimPool(loss=loss)
    for index in range(size):
        pool.add(0 if index < size // 2 else 1)
    pool.converge()
    pool.run_until(5.0)
    return pool


def time_until(pool: SimPool, done: Callable[[], bool], within: float) -> float | None:
    """Seconds from now until `done()` first holds (looked at every 50 ms), or None."""
    start, seen = pool.now, []

    def look() -> None:
        if not seen and done():
            seen.append(pool.now)

    pool.run_until(start + within, look)
    return seen[0] - start if seen else None


def alive(peer: Peer | None) -> bool:
    return peer is not None and peer.liveness is Liveness.ALIVE


def paused(peer: Peer | None) -> bool:
    return peer is not None and peer.status.state is NodeState.PAUSED


def everyone_alive(pool: SimPool) -> bool:
    return all(pool.everyone_has(node, alive) for node in pool.nodes if node.running)


def test_link_mates_hear_each_other_by_multicast_and_only_other_links_by_unicast() -> None:
    pool = two_links()
    pool.run_until(30.0)  # well past the start, when everyone unicast everyone
    node = pool.nodes[0]
    targets = {address for address, _ in node.engine.unicast_targets(pool.now)}
    assert targets == {other.address for other in pool.nodes if other.link == 1}
    assert everyone_alive(pool)


def test_a_node_on_another_subnet_joins_through_a_seed_and_learns_the_whole_pool() -> None:
    pool = two_links()
    seed = pool.nodes[0]
    newcomer = pool.add(1, seeds=[seed.index])
    took = time_until(pool, lambda: pool.everyone_has(newcomer, alive), within=5.0)
    assert took is not None
    assert took <= 3.0
    pool.run_until(pool.now + 3.0)
    assert len(newcomer.engine.table) == len(pool.nodes) - 1  # the sync brought the rest
    assert all(alive(newcomer.engine.table.get(n.engine.node_id)) for n in pool.nodes[:-1])


def test_a_pause_reaches_every_member_on_both_links_within_a_second() -> None:
    pool = two_links()
    subject = pool.nodes[7]
    pool.pause(subject)
    took = time_until(pool, lambda: pool.everyone_has(subject, paused), within=3.0)
    assert took is not None
    assert took <= 1.0


def test_a_crash_is_noticed_everywhere_within_ten_seconds_then_the_node_dies() -> None:
    pool = two_links()
    crashed = pool.nodes[2]
    pool.crash(crashed)
    noticed = time_until(pool, lambda: pool.everyone_has(crashed, lambda p: not alive(p)), 15.0)
    assert noticed is not None
    assert noticed <= 10.0
    pool.run_until(pool.now + 10.0)
    assert pool.everyone_has(crashed, lambda p: p is None or p.liveness is Liveness.DEAD)
    assert everyone_alive(pool)  # and nobody else was suspected on the way


def test_a_leave_empties_every_table_at_once() -> None:
    pool = two_links()
    leaving = pool.nodes[9]
    pool.leave(leaving)
    took = time_until(pool, lambda: pool.everyone_has(leaving, lambda p: p is None), 3.0)
    assert took is not None
    assert took <= 1.0


def test_a_cut_splits_the_pool_into_two_working_halves_and_healing_rejoins_them() -> None:
    pool = two_links()
    pool.cut.add(frozenset({0, 1}))
    pool.run_until(pool.now + 20.0)
    for node in pool.nodes:
        for other in pool.nodes:
            if other is not node:
                peer = node.engine.table.get(other.engine.node_id)
                assert alive(peer) == (other.link == node.link)
    pool.cut.clear()
    took = time_until(pool, lambda: everyone_alive(pool), within=30.0)
    assert took is not None
    assert took <= 15.0


def test_once_the_pool_is_known_a_seed_going_down_costs_nothing() -> None:
    pool = SimPool()
    for _index in range(5):
        pool.add(0)
    for _ in range(5):
        pool.add(1, seeds=[0])
    pool.run_until(10.0)
    assert everyone_alive(pool)
    pool.crash(pool.nodes[0])
    pool.run_until(pool.now + 20.0)
    assert all(pool.everyone_has(node, alive) for node in pool.nodes[1:])
    pool.pause(pool.nodes[6])
    pool.run_until(pool.now + 1.0)
    assert pool.everyone_has(pool.nodes[6], paused)


def test_a_member_wrongly_suspected_refutes_it_and_stays_in_every_table() -> None:
    pool = two_links()
    accused, accuser = pool.nodes[3], pool.nodes[8]
    for node in pool.nodes[5:8]:  # some hear it accused, at the order each holds
        held = node.engine.table.get(accused.engine.node_id)
        assert held is not None
        suspicion = NewsEntry(EntryKind.SUSPECT, accused.engine.node_id, *held.order)
        news = Message(accuser.engine.node_id, 1, 1, 1.0, MessageKind.NEWS, news=(suspicion,))
        sender = (accuser.address, PORT)
        node.engine.receive(encode(news, KEY), sender, Transport.UNICAST, pool.now)
        assert not alive(node.engine.table.get(accused.engine.node_id))
    refuted = time_until(pool, lambda: pool.everyone_has(accused, alive), within=5.0)
    assert refuted is not None
    assert refuted <= 2.0
    pool.run_until(pool.now + 10.0)
    assert pool.everyone_has(accused, alive)


@pytest.mark.parametrize("loss", [0.1])
def test_with_a_tenth_of_datagrams_lost_join_pause_and_crash_stay_within_bounds(
    loss: float,
) -> None:
    pool = two_links(loss=loss)
    newcomer = pool.add(1, seeds=[0])
    joined = time_until(pool, lambda: pool.everyone_has(newcomer, alive), within=10.0)
    assert joined is not None
    assert joined <= 4.5
    pause_and_crash(pool, pool.nodes[4], pool.nodes[6], crash_within=15.0)


def pause_and_crash(
    pool: SimPool, subject: SimNode, victim: SimNode, *, crash_within: float
) -> None:
    """`subject` pauses, and every table has it paused within 1.5 s; then `victim`
    crashes, and every table has it not alive within `crash_within`."""
    pool.pause(subject)
    reached = time_until(pool, lambda: pool.everyone_has(subject, paused), within=5.0)
    assert reached is not None
    assert reached <= 1.5
    pool.crash(victim)
    noticed = time_until(pool, lambda: pool.everyone_has(victim, lambda p: not alive(p)), 20.0)
    assert noticed is not None
    assert noticed <= crash_within


def test_a_sync_from_an_unproven_address_gets_one_small_cookie_not_the_table() -> None:
    pool = two_links()
    member = pool.nodes[0]
    forged = Message(b"\x77" * 16, 1, 1, 1.0, MessageKind.SYNC, nonce=5)
    victim = ("10.9.9.9", PORT)
    request = encode(forged, KEY)
    member.engine.receive(request, victim, Transport.UNICAST, pool.now)
    out = member.engine.datagrams_to_send(pool.now, 1.8e9)
    to_victim = [o for o in out if victim in o.unicast]
    assert len(to_victim) == 1
    answer = decode(to_victim[0].data, KEY)
    assert answer.kind is MessageKind.COOKIE
    assert len(to_victim[0].data) <= len(request) + 32  # the cookie and its key, no more
    # With the cookie returned, the table follows (paced), to that address only.
    again = Message(b"\x77" * 16, 1, 2, 1.0, MessageKind.SYNC, nonce=5, cookie=answer.cookie)
    member.engine.receive(encode(again, KEY), victim, Transport.UNICAST, pool.now)
    out = member.engine.datagrams_to_send(pool.now, 1.8e9)
    entries = [e for o in out if victim in o.unicast for e in decode(o.data, KEY).news]
    assert len(entries) == len(pool.nodes)  # everyone it holds, itself included


def sent_by(pool: SimPool, node: SimNode, until: float) -> list[tuple[float, Outgoing]]:
    """Run to `until`, recording what `node` sends and when."""
    record: list[tuple[float, Outgoing]] = []
    send = pool._send

    def recording(sender: SimNode, datagram: Outgoing) -> None:
        if sender is node:
            record.append((pool.now, datagram))
        send(sender, datagram)

    pool._send = recording  # type: ignore[method-assign]
    try:
        pool.run_until(until)
    finally:
        pool._send = send  # type: ignore[method-assign]
    return record


def test_state_copies_to_another_subnet_are_spread_over_the_interval() -> None:
    pool = two_links(40)  # 20 members beyond node 0's link
    pool.run_until(30.0)  # past the start, when link mates unicast each other too
    node = pool.nodes[0]
    interval = node.engine.effective_interval()
    start = pool.now
    record = sent_by(pool, node, start + 3 * interval)
    copies: dict[float, int] = {}
    to: dict[str, list[float]] = {}
    for at, datagram in record:
        if not datagram.multicast and decode(datagram.data, KEY).kind is MessageKind.STATE:
            copies[at] = copies.get(at, 0) + len(datagram.unicast)
            for address, _ in datagram.unicast:
                to.setdefault(address, []).append(at)
    far = {other.address for other in pool.nodes if other.link == 1}
    assert set(to) == far
    assert max(copies.values()) == 1  # 20 members over a 2.05 s interval: one a tick
    for times in to.values():  # each about once an interval, never a burst
        assert len(times) in (2, 3, 4)
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert all(interval - 0.2 <= gap <= interval + 0.2 for gap in gaps)


def test_news_rides_on_state_copies_and_rounds_send_that_many_fewer() -> None:
    pool = two_links(40)
    node = pool.nodes[0]
    pool.pause(node)
    record = sent_by(pool, node, pool.now + 2.0)
    ridden = news_datagrams = 0
    for _, datagram in record:
        message = decode(datagram.data, KEY)
        mine = [e for e in message.news if e.node_id == node.engine.node_id]
        if mine and message.kind is MessageKind.STATE:
            ridden += len(datagram.unicast)
        elif mine and message.kind is MessageKind.NEWS:
            news_datagrams += len(datagram.unicast)
    assert ridden >= 1
    assert ridden + news_datagrams == transmits(len(pool.nodes))  # every transmit, once
    assert pool.everyone_has(node, paused)


def test_state_copies_carry_as_much_news_as_fits_in_a_datagram() -> None:
    pool = two_links(40)
    node = pool.nodes[0]
    for subject in pool.nodes[20:]:  # half the pool pauses at once: a full queue
        pool.pause(subject)
    record = sent_by(pool, node, pool.now + 2.0)
    states = [d for _, d in record if decode(d.data, KEY).kind is MessageKind.STATE]
    assert max(len(decode(d.data, KEY).news) for d in states) >= 2
    assert max(len(d.data) for _, d in record) <= limits.MAX_DATAGRAM


def test_copies_beyond_the_link_name_compilers_by_digest_and_every_table_has_them() -> None:
    pool = two_links(40)
    node = pool.nodes[0]
    record = sent_by(pool, node, pool.now + 2 * node.engine.effective_interval())
    copies = [decode(d.data, KEY) for _, d in record if not d.multicast]
    states = [m for m in copies if m.kind is MessageKind.STATE and m.deaf]
    assert states
    assert all(m.compilers_digest and m.body and not m.body.compilers for m in states)
    multicast = [decode(d.data, KEY) for _, d in record if d.multicast]
    assert all(m.body and m.body.compilers == OFFERS for m in multicast)
    assert pool.everyone_has(node, lambda p: p.status.compilers == OFFERS)  # type: ignore[attr-defined]
    drops = [n.engine.statistics(pool.now).drops.get("compilers-unknown", 0) for n in pool.nodes]
    assert sum(drops) == 0


def test_at_a_hundred_with_loss_a_pause_and_a_crash_reach_both_subnets() -> None:
    """The pool at the size where one missed copy showed: news heard by multicast is
    passed on in full when members live beyond the link, and a suspicion of an order
    some members had passed still stands with them."""
    pool = two_links(100, loss=0.1)
    pool.run_until(pool.now + 30.0)
    pause_and_crash(pool, pool.nodes[70], pool.nodes[20], crash_within=10.0)
