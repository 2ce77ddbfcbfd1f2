"""The gossip engine, driven by hand with explicit times: no sockets, no clock."""

from __future__ import annotations

import ipaddress
from dataclasses import replace

import pytest

from p2pcc.core.addresses import AddressPool
from p2pcc.core.auth import Keyring
from p2pcc.core.gossip import GossipEngine
from p2pcc.core.gossip_types import (
    LOGGED_DROPS_PERIOD,
    MAX_LOGGED_DROPS,
    Outgoing,
    RefusedAddress,
    Transport,
)
from p2pcc.core.model import CompilerOffer, MessageKind, NodeState, NodeStatus
from p2pcc.core.peers import Liveness, PeerJoined, PeerLeft, PeerTimings
from p2pcc.core.same_id import Namesake
from p2pcc.core.wire import decode

TIMINGS = PeerTimings(suspect_after=5.0, dead_after=15.0, forget_after=600.0)
OFFER = CompilerOffer("be03ec3c49bc7685", "x86_64-linux-gnu--12", "x86_64-linux-gnu-gcc-12")
WALL = 1_800_000_000.0
POOL = AddressPool(4, (ipaddress.ip_network("10.0.0.0/24"),))


def make_status(name: str, address: str, **changes: object) -> NodeStatus:
    status = NodeStatus(
        name=name,
        addresses=(address,),
        distccd_port=3632,
        cpus=8,
        load=0.5,
        mem_available=8 << 30,
        slots=8,
        jobs=0,
        power=1.0,
        compilers=(OFFER,),
    )
    return replace(status, **changes)  # type: ignore[arg-type]


def make_engine(
    index: int,
    now: float = 0.0,
    keyring: Keyring | None = None,
    incarnation: int = 1,
    refused: list[RefusedAddress] | None = None,
    *,
    node_id: bytes | None = None,
) -> GossipEngine:
    """Workstation `ws<index>` at 10.0.0.<index> (its id `index` 16 times, unless
    `node_id`); with `refused`, in a pool on 10.0.0.0/24 that reports refused addresses
    there."""
    return GossipEngine(
        node_id=bytes([index]) * 16 if node_id is None else node_id,
        incarnation=incarnation,
        keyring=keyring if keyring is not None else Keyring(),
        status=make_status(f"ws{index}", f"10.0.0.{index}"),
        interval=2.0,
        timings=TIMINGS,
        now=now,
        pool=None if refused is None else POOL,
        on_refused=(lambda _: None) if refused is None else refused.append,
    )


def endpoint(engine: GossipEngine) -> tuple[str, int]:
    return (engine.status.addresses[0], 3634)


def discover(engine: GossipEngine, other: GossipEngine, now: float = 0.0) -> None:
    """mDNS tells `engine` of `other`, at the addresses it announces."""
    engine.discovered(other.node_id, other.status.addresses, 3634, now)


def sent(engine: GossipEngine, now: float) -> Outgoing:
    outgoing = engine.poll_send(now, WALL + now)
    assert outgoing is not None, f"nothing due at {now}"
    return outgoing


def test_announces_at_once_then_every_interval() -> None:
    engine = make_engine(1)
    assert engine.next_datagram == 0.0
    sent(engine, 0.0)
    assert engine.poll_send(1.999, WALL) is None
    assert engine.next_datagram == 2.0
    sent(engine, 2.0)
    assert engine.next_datagram == 4.0


def test_material_change_is_sent_at_once_but_not_twice_within_min_gap() -> None:
    engine = make_engine(1)
    sent(engine, 0.0)
    engine.set_status(replace(engine.status, state=NodeState.PAUSED), now=0.05)
    assert engine.next_datagram == pytest.approx(0.2)  # min_gap = interval / 10
    assert engine.poll_send(0.1, WALL) is None
    sent(engine, 0.2)
    engine.set_status(replace(engine.status, state=NodeState.ACTIVE), now=1.0)
    assert engine.next_datagram == 1.0
    sent(engine, 1.0)


def test_load_alone_waits_for_the_interval() -> None:
    engine = make_engine(1)
    sent(engine, 0.0)
    engine.set_status(replace(engine.status, load=3.0, jobs=2), now=0.5)
    assert engine.next_datagram == 2.0


def test_peers_learn_of_each_other_and_leave_at_once() -> None:
    alpha, beta = make_engine(1), make_engine(2)
    received = beta.receive(sent(alpha, 0.0).data, endpoint(alpha), Transport.MULTICAST, 0.01)
    assert received.dropped is None
    assert [type(event) for event in received.events] == [PeerJoined]
    peer = beta.table.get(alpha.node_id)
    assert peer is not None
    assert peer.status == alpha.status
    goodbye = alpha.leave(1.0, WALL + 1)
    received = beta.receive(goodbye.data, endpoint(alpha), Transport.MULTICAST, 1.01)
    assert [type(event) for event in received.events] == [PeerLeft]
    assert len(beta.table) == 0


def test_a_newcomer_is_answered_at_once_by_unicast_and_asks_for_the_rest() -> None:
    alpha, beta = make_engine(1), make_engine(2, now=1.0)
    sent(alpha, 0.0)
    alpha.receive(sent(beta, 1.0).data, endpoint(beta), Transport.MULTICAST, 1.0)
    assert alpha.next_datagram < 1.0  # at once
    out = alpha.datagrams_to_send(1.0, WALL + 1)
    [answer] = [o for o in out if decode(o.data, Keyring()).kind is MessageKind.STATE]
    assert (answer.unicast, answer.multicast) == ((endpoint(beta),), False)
    assert alpha.next_send == 2.0  # the multicast state keeps its interval
    assert beta.receive(answer.data, endpoint(alpha), Transport.UNICAST, 1.0).events
    kinds = {
        decode(out.data, Keyring()).kind: out.unicast for out in beta.datagrams_to_send(1.0, WALL)
    }
    assert kinds[MessageKind.SYNC] == (endpoint(alpha),)  # alpha greeted it by unicast
    assert kinds[MessageKind.NEWS] == (endpoint(alpha),)  # its own joining, passed on
    beta.receive(sent(alpha, 2.0).data, endpoint(alpha), Transport.MULTICAST, 2.0)
    assert beta.next_send == 3.0  # a known peer does not hurry us


def test_own_echo_and_duplicates_are_dropped_quietly() -> None:
    alpha, beta = make_engine(1), make_engine(2)
    datagram = sent(alpha, 0.0).data
    echo = alpha.receive(datagram, endpoint(alpha), Transport.MULTICAST, 0.0)
    assert (echo.dropped, echo.log) == ("own", False)
    beta.receive(datagram, endpoint(alpha), Transport.MULTICAST, 0.0)
    again = beta.receive(datagram, endpoint(alpha), Transport.UNICAST, 0.0)
    assert (again.dropped, again.log) == ("duplicate", False)


def three_words(engine: GossipEngine) -> tuple[bytes, ...]:
    """Three STATE datagrams of `engine`'s 0.2 s apart: a pause and a resume made them due."""
    words = [sent(engine, 0.0).data]
    for now, state in ((0.2, NodeState.PAUSED), (0.4, NodeState.ACTIVE)):
        engine.set_status(replace(engine.status, state=state), now=now - 0.15)
        words.append(sent(engine, now).data)
    return tuple(words)


def test_a_late_copy_of_a_word_is_dropped_quietly_and_a_replay_is_not() -> None:
    """The two copies of a datagram (multicast, unicast) are read by two tasks: the
    unicast copy of the next one can come first.  Within late_copies.WINDOW of its
    acceptance (or of being passed over) an older copy is a quiet drop; later, a replay."""
    alpha, beta, gamma = make_engine(1), make_engine(2), make_engine(3)
    first, second, third = three_words(alpha)
    for engine in (beta, gamma):
        assert engine.receive(first, endpoint(alpha), Transport.UNICAST, 0.01).events
        assert engine.receive(second, endpoint(alpha), Transport.UNICAST, 0.21).events
    copy = beta.receive(first, endpoint(alpha), Transport.MULTICAST, 0.22)
    assert (copy.dropped, copy.log) == ("duplicate", False)
    replay = gamma.receive(first, endpoint(alpha), Transport.MULTICAST, 1.5)
    assert (replay.dropped, replay.log) == ("replay", True)
    assert beta.statistics(1.5).drops == {"duplicate": 1}
    # One never taken, overtaken by the next: reordered, then a replay once the window
    # after it was passed over (at 0.41) is gone.
    delta, epsilon = make_engine(4), make_engine(5)
    for engine in (delta, epsilon):
        assert engine.receive(first, endpoint(alpha), Transport.UNICAST, 0.01).events
        assert engine.receive(third, endpoint(alpha), Transport.UNICAST, 0.41).events
    late = delta.receive(second, endpoint(alpha), Transport.MULTICAST, 1.4)
    assert (late.dropped, late.log) == ("reordered", False)
    assert epsilon.receive(second, endpoint(alpha), Transport.MULTICAST, 1.42).dropped == "replay"
    # A node first heard at its third word: its earlier ones are not taken for late.
    zeta = make_engine(6)
    assert zeta.receive(third, endpoint(alpha), Transport.UNICAST, 0.41).events
    assert zeta.receive(second, endpoint(alpha), Transport.MULTICAST, 0.42).dropped == "replay"


def test_the_second_copy_of_a_leave_is_a_duplicate() -> None:
    alpha, beta = make_engine(1), make_engine(2)
    beta.receive(sent(alpha, 0.0).data, endpoint(alpha), Transport.MULTICAST, 0.0)
    goodbye = alpha.leave(1.0, WALL + 1.0).data
    assert [
        type(e) for e in beta.receive(goodbye, endpoint(alpha), Transport.UNICAST, 1.0).events
    ] == [PeerLeft]
    again = beta.receive(goodbye, endpoint(alpha), Transport.MULTICAST, 1.01)
    assert (again.dropped, again.log) == ("duplicate", False)
    assert beta.receive(goodbye, endpoint(alpha), Transport.MULTICAST, 3.0).dropped == "replay"


def test_another_node_under_our_id_is_dropped_and_reported_not_taken_for_our_echo() -> None:
    alpha = make_engine(1, incarnation=5)
    clone = make_engine(2, incarnation=7, node_id=alpha.node_id)
    echo = alpha.receive(sent(alpha, 0.0).data, endpoint(alpha), Transport.MULTICAST, 0.0)
    assert (echo.dropped, echo.namesake) == ("own", None)
    theirs = alpha.receive(sent(clone, 0.0).data, endpoint(clone), Transport.MULTICAST, 0.1)
    assert (theirs.dropped, theirs.log, theirs.events) == ("same-id", False, ())
    assert theirs.namesake == Namesake("10.0.0.2", 7, ("10.0.0.2",))
    assert alpha.next_send == pytest.approx(0.2)  # answered at once (min_gap after 0.0)
    assert alpha.statistics(0.1).drops == {"own": 1, "same-id": 1}
    assert len(alpha.table) == 0


def test_bad_datagrams_are_counted_and_logged_once_per_sender_and_reason() -> None:
    engine = make_engine(1)
    first = engine.receive(b"GET / HTTP/1.0\r\n", ("10.0.0.9", 1), Transport.UNICAST, 0.0)
    second = engine.receive(b"GET / HTTP/1.0\r\n", ("10.0.0.9", 2), Transport.UNICAST, 0.0)
    other = engine.receive(b"GET / HTTP/1.0\r\n", ("10.0.0.8", 1), Transport.UNICAST, 0.0)
    assert [r.dropped for r in (first, second, other)] == ["bad-magic"] * 3
    assert [r.log for r in (first, second, other)] == [True, False, True]
    stats = engine.statistics(0.0)
    assert (stats.packets_in, stats.drops) == (3, {"bad-magic": 3})
    assert len(engine.table) == 0


def test_a_full_log_once_memory_starts_afresh_after_a_period() -> None:
    engine = make_engine(1)
    noise = b"GET / HTTP/1.0\r\n"
    for index in range(MAX_LOGGED_DROPS):  # a flood from as many forged sources
        engine.receive(noise, (f"10.1.{index // 256}.{index % 256}", 1), Transport.UNICAST, 1.0)
    wrong_key = ("10.0.0.7", 3634)
    assert not engine.receive(noise, wrong_key, Transport.UNICAST, 2.0).log  # memory full
    later = LOGGED_DROPS_PERIOD  # counted from the engine's start, at 0.0
    assert not engine.receive(noise, wrong_key, Transport.UNICAST, later - 0.001).log
    assert engine.receive(noise, wrong_key, Transport.UNICAST, later).log
    assert not engine.receive(noise, wrong_key, Transport.UNICAST, later + 1.0).log


def test_replay_of_an_older_message_is_refused() -> None:
    alpha, beta = make_engine(1), make_engine(2)
    old = sent(alpha, 0.0).data
    new = sent(alpha, 2.0).data
    beta.receive(new, endpoint(alpha), Transport.MULTICAST, 2.0)
    replayed = beta.receive(old, endpoint(alpha), Transport.MULTICAST, 2.1)
    assert (replayed.dropped, replayed.log) == ("replay", True)


def test_keyed_pool_refuses_unkeyed_and_forged_datagrams() -> None:
    key = Keyring([b"k" * 32])
    alpha, beta = make_engine(1, keyring=key), make_engine(2, keyring=key)
    stranger = make_engine(3)
    datagram = sent(alpha, 0.0).data
    forged = datagram[:-1] + bytes([datagram[-1] ^ 1])
    assert beta.receive(forged, endpoint(alpha), Transport.MULTICAST, 0.0).dropped == "bad-mac"
    unkeyed = sent(stranger, 0.0).data
    assert beta.receive(unkeyed, endpoint(stranger), Transport.MULTICAST, 0.0).dropped == "bad-mac"
    assert len(beta.table) == 0
    assert beta.receive(datagram, endpoint(alpha), Transport.MULTICAST, 0.0).dropped is None


def test_restarted_peer_with_new_incarnation_is_accepted() -> None:
    beta = make_engine(2)
    before = make_engine(1, incarnation=7)
    for t in (0.0, 2.0, 4.0):
        beta.receive(sent(before, t).data, endpoint(before), Transport.MULTICAST, t)
    after = make_engine(1, now=5.0, incarnation=8)  # sequence starts again at 1
    received = beta.receive(sent(after, 5.0).data, endpoint(after), Transport.MULTICAST, 5.0)
    assert received.dropped is None
    peer = beta.table.get(after.node_id)
    assert peer is not None
    assert peer.order == (8, 1)


def test_discovered_node_gets_unicast_until_heard() -> None:
    alpha, beta = make_engine(1), make_engine(2)
    discover(alpha, beta)
    discover(alpha, alpha)  # our own service: ignored
    assert sent(alpha, 0.0).unicast == (endpoint(beta),)
    alpha.receive(sent(beta, 0.0).data, endpoint(beta), Transport.MULTICAST, 0.1)
    assert sent(alpha, 2.0).unicast == ()
    alpha.undiscovered(beta.node_id)
    assert alpha.unicast_targets(2.0) == ()


def test_a_member_heard_only_by_unicast_gets_unicast_until_it_is_dead() -> None:
    alpha, beta = make_engine(1), make_engine(2)
    alpha.receive(sent(beta, 0.0).data, endpoint(beta), Transport.UNICAST, 1.0)
    alpha.handle_timer(15.999)
    assert alpha.unicast_targets(15.999) == (endpoint(beta),)
    alpha.handle_timer(16.0)  # dead_after 15 s of silence
    assert alpha.unicast_targets(16.0) == ()
    assert alpha.statistics(16.0).unicast_targets == 0


def test_a_genuine_datagram_bounced_by_someone_else_does_not_redirect_unicast() -> None:
    alpha, beta = make_engine(1), make_engine(2)
    datagram = sent(beta, 0.0).data
    bouncer = ("10.0.0.66", 40000)
    first = alpha.receive(datagram, bouncer, Transport.UNICAST, 0.0)  # it raced beta's copy
    assert first.events  # authentic and new: accepted
    again = alpha.receive(datagram, bouncer, Transport.UNICAST, 0.1)
    assert again.dropped == "duplicate"
    # Beta is not heard on our link, so it gets unicast: at the address it announces.
    assert alpha.unicast_targets(0.2) == (endpoint(beta),)
    assert all(out.unicast != (bouncer,) for out in alpha.datagrams_to_send(0.2, WALL))


def test_next_deadline_includes_peer_liveness() -> None:
    alpha, beta = make_engine(1), make_engine(2)
    sent(alpha, 0.0)
    alpha.receive(sent(beta, 0.0).data, endpoint(beta), Transport.MULTICAST, 0.5)
    while alpha.next_deadline() < 5.5:  # probes of beta, unanswered
        alpha.handle_timer(alpha.next_deadline())
        peer = alpha.table.get(beta.node_id)
        assert peer is not None
        assert peer.liveness is Liveness.ALIVE
    assert alpha.next_deadline() == 5.5  # beta's silence reaches suspect_after
    alpha.handle_timer(5.5)
    peer = alpha.table.get(beta.node_id)
    assert peer is not None
    assert peer.liveness is Liveness.SUSPECT


@pytest.mark.parametrize("beta_multicast_reaches_alpha", [True, False])
def test_filtered_multicast_still_forms_a_stable_pool(beta_multicast_reaches_alpha: bool) -> None:
    """Alpha's multicast never reaches beta (maybe neither way); mDNS told each of the other."""
    alpha, beta = make_engine(1), make_engine(2)
    discover(alpha, beta)
    discover(beta, alpha)
    engines = {alpha.node_id: alpha, beta.node_id: beta}
    now = 0.0
    while now < 120.0:
        for engine in (alpha, beta):
            engine.handle_timer(now)
            other = beta if engine is alpha else alpha
            for outgoing in engine.datagrams_to_send(now, WALL + now):
                multicast = outgoing.multicast and beta_multicast_reaches_alpha
                if engine is beta and multicast:
                    other.receive(outgoing.data, endpoint(engine), Transport.MULTICAST, now)
                if endpoint(other) in outgoing.unicast:
                    other.receive(outgoing.data, endpoint(engine), Transport.UNICAST, now)
        if now >= 10.0:  # after a start-up round, both stay alive to each other
            for engine in engines.values():
                (peer,) = engine.table.peers()
                assert peer.liveness is Liveness.ALIVE, (engine.status.name, now)
        now = round(now + 0.5, 3)


def test_engine_refuses_bad_construction() -> None:
    with pytest.raises(ValueError, match="node id must be 16 bytes"):
        GossipEngine(
            node_id=b"short",
            incarnation=1,
            keyring=Keyring(),
            status=make_status("x", "10.0.0.1"),
            interval=2.0,
            timings=TIMINGS,
            now=0.0,
        )
    with pytest.raises(ValueError, match=r"interval 6\.0 must be"):
        GossipEngine(
            node_id=b"x" * 16,
            incarnation=1,
            keyring=Keyring(),
            status=make_status("x", "10.0.0.1"),
            interval=6.0,
            timings=TIMINGS,
            now=0.0,
        )


def test_announced_addresses_are_screened_before_anything_uses_them() -> None:
    refused: list[RefusedAddress] = []
    alpha, ghost = make_engine(1, refused=refused), make_engine(9)
    ghost.set_status(replace(ghost.status, addresses=("10.0.0.0", "127.0.0.1", "2001:db8::9")), 0.0)
    loopback = ("127.0.0.1", 3634)  # a local process claiming to be a peer
    for now in (0.0, 2.0):
        accepted = alpha.receive(sent(ghost, now).data, loopback, Transport.UNICAST, now)
        assert accepted.dropped is None  # the peer stays in the table: it is never dialled
    peer = alpha.table.get(ghost.node_id)
    assert peer is not None
    assert peer.status.addresses == ()
    assert alpha.unicast_targets(2.0) == ()  # it sent from an address it announced: refused
    counted = {"address-broadcast": 2, "address-family": 2, "address-loopback": 2}
    assert alpha.statistics(2.0).refused_addresses == counted
    assert refused == [  # once per (address, reason)
        RefusedAddress("10.0.0.0", "address-broadcast", ghost.node_id, "127.0.0.1"),
        RefusedAddress("127.0.0.1", "address-loopback", ghost.node_id, "127.0.0.1"),
        RefusedAddress("2001:db8::9", "address-family", ghost.node_id, "127.0.0.1"),
    ]


def test_a_dual_stack_peer_is_dialled_at_its_pool_address_and_nothing_is_refused() -> None:
    refused: list[RefusedAddress] = []
    alpha, beta = make_engine(1, refused=refused), make_engine(2)
    beta.set_status(replace(beta.status, addresses=("2001:db8::2", "10.0.0.2")), 0.0)
    alpha.receive(sent(beta, 0.0).data, endpoint(alpha), Transport.MULTICAST, 0.0)
    peer = alpha.table.get(beta.node_id)
    assert peer is not None
    assert peer.status.addresses == ("10.0.0.2",)
    assert (refused, alpha.statistics(0.0).refused_addresses) == ([], {})


def test_mdns_addresses_are_screened_and_the_first_usable_one_gets_unicast() -> None:
    refused: list[RefusedAddress] = []
    alpha = make_engine(1, refused=refused)
    dual, forged = b"\x07" * 16, b"\x08" * 16
    alpha.discovered(dual, ("2001:db8::7", "10.0.0.7"), 3634, 0.0)
    alpha.discovered(forged, ("255.255.255.255",), 3634, 0.0)
    assert alpha.unicast_targets(0.0) == (("10.0.0.7", 3634),)
    assert refused == [RefusedAddress("255.255.255.255", "address-broadcast", forged, "mDNS")]
    alpha.discovered(dual, ("192.0.2.7",), 3634, 1.0)  # re-announced elsewhere: forgotten
    assert alpha.unicast_targets(1.0) == ()
    assert alpha.statistics(1.0).refused_addresses == {
        "address-broadcast": 1,
        "address-outside": 1,
    }


def test_seeds_hear_our_state_by_unicast_the_first_time_at_once() -> None:
    alpha = make_engine(1)
    assert sent(alpha, 0.0).unicast == ()
    seed = ("10.9.0.1", 3634)
    alpha.set_seeds([seed, seed], 0.5)
    assert alpha.audience.seeds == (seed,)
    assert alpha.next_send == pytest.approx(0.5)
    assert sent(alpha, 0.5).unicast == (seed,)
    alpha.set_seeds([seed], 1.0)  # nothing new: no datagram before the interval
    assert alpha.next_send == pytest.approx(2.5)


def test_a_seed_heard_on_our_link_gets_no_unicast_copy() -> None:
    alpha, beta = make_engine(1), make_engine(2)
    alpha.set_seeds([endpoint(beta)], 0.0)
    assert alpha.unicast_targets(0.0) == (endpoint(beta),)
    alpha.receive(sent(beta, 0.0).data, endpoint(beta), Transport.MULTICAST, 0.1)
    assert alpha.unicast_targets(0.2) == ()


def test_a_short_state_is_resolved_by_the_record_or_the_whole_state_is_asked_for() -> None:
    alpha, beta = make_engine(1), make_engine(2)
    short = alpha.speaker.copy(alpha.status, WALL, endpoint(beta), (), True)
    assert decode(short.data, Keyring()).compilers_digest
    # Beta has never heard alpha: it keeps its table and asks alpha for the whole state.
    assert beta.receive(short.data, endpoint(alpha), Transport.UNICAST, 1.0).dropped == (
        "compilers-unknown"
    )
    assert beta.table.get(alpha.node_id) is None
    asks = [o for o in beta.datagrams_to_send(1.0, WALL) if o.unicast == (endpoint(alpha),)]
    assert [decode(o.data, Keyring()).resend for o in asks] == [True]
    again = alpha.speaker.copy(alpha.status, WALL, endpoint(beta), (), True)
    assert again.data == short.data  # a copy says the same at the same order
    beta.receive(again.data, endpoint(alpha), Transport.UNICAST, 1.5)
    assert not [o for o in beta.datagrams_to_send(1.5, WALL) if o.unicast]  # asked already
    # Alpha answers the request with its whole state, which beta takes.
    alpha.receive(asks[0].data, endpoint(beta), Transport.UNICAST, 2.0)
    to_beta = [o for o in alpha.datagrams_to_send(2.0, WALL) if o.unicast == (endpoint(beta),)]
    states = [(o, decode(o.data, Keyring())) for o in to_beta]
    answers = [o for o, m in states if m.kind is MessageKind.STATE and not m.compilers_digest]
    assert len(answers) == 1  # beside its turn copy (short: beta is a member now)
    whole = decode(answers[0].data, Keyring()).body
    assert whole is not None
    assert whole.compilers == (OFFER,)
    beta.receive(answers[0].data, endpoint(alpha), Transport.UNICAST, 2.1)
    # From then on alpha's short states stand for its offers (the next interval's).
    sent(alpha, 4.0)
    later = alpha.speaker.copy(alpha.status, WALL, endpoint(beta), (), True)
    assert beta.receive(later.data, endpoint(alpha), Transport.UNICAST, 4.0).dropped is None
    peer = beta.table.get(alpha.node_id)
    assert peer is not None
    assert peer.status.compilers == (OFFER,)
    # New offers beta missed the news of: a short state no longer matches, and asks.
    other = CompilerOffer("0123456789abcdef", "x86_64-linux-gnu--11", "x86_64-linux-gnu-gcc-11")
    alpha.set_status(replace(alpha.status, compilers=(other,)), 4.5)
    sent(alpha, 4.5)  # said at once, a new order (beta does not hear alpha's multicast)
    changed = alpha.speaker.copy(alpha.status, WALL, endpoint(beta), (), True)
    received = beta.receive(changed.data, endpoint(alpha), Transport.UNICAST, 9.0)
    assert received.dropped == "compilers-unknown"
    peer = beta.table.get(alpha.node_id)
    assert peer is not None
    assert peer.status.compilers == (OFFER,)  # kept until the whole state comes
    assert any(o.unicast == (endpoint(alpha),) for o in beta.datagrams_to_send(9.0, WALL))


def test_a_replayed_request_for_the_whole_state_is_not_answered_again() -> None:
    alpha, beta = make_engine(1), make_engine(2)
    short = alpha.speaker.copy(alpha.status, WALL, endpoint(beta), (), True)
    beta.receive(short.data, endpoint(alpha), Transport.UNICAST, 1.0)
    ask = next(o for o in beta.datagrams_to_send(1.0, WALL) if o.unicast == (endpoint(alpha),))

    def answers(now: float) -> int:
        """Whole states for beta alone (its turn copies are short: it reads them)."""
        out = [o for o in alpha.datagrams_to_send(now, WALL) if o.unicast == (endpoint(beta),)]
        messages = [decode(o.data, Keyring()) for o in out]
        return sum(m.kind is MessageKind.STATE and not m.compilers_digest for m in messages)

    alpha.receive(ask.data, endpoint(beta), Transport.UNICAST, 2.0)
    assert answers(2.0) >= 1
    # The same datagram again, later (a replay, or a copy the network doubled): the
    # order is one alpha holds, so nothing is sent for it.
    assert alpha.receive(ask.data, endpoint(beta), Transport.UNICAST, 40.0).dropped == "duplicate"
    assert answers(40.0) == 0
