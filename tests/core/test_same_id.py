"""Telling our own echo from another node under our id, and who of the two renews."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from p2pcc.core.model import Message, MessageKind
from p2pcc.core.peers import Liveness, Peer
from p2pcc.core.same_id import Namesake, SharedId, namesake, takes_new_id
from tests.core.local_nodes import status

SHARED = b"\xc1" * 16
OURS = status("ws1", "10.0.0.1")
THEIRS = status("ws2", "10.0.0.2")


def state(incarnation: int, body: object = THEIRS) -> Message:
    return Message(SHARED, incarnation, 1, 0.0, MessageKind.STATE, body)  # type: ignore[arg-type]


def test_our_echo_and_our_datagrams_bounced_back_are_our_own() -> None:
    assert namesake(state(5, OURS), "10.0.0.1", OURS) is None  # the echo
    assert namesake(state(5, OURS), "10.0.0.66", OURS) is None  # bounced, or replayed
    assert namesake(state(3, OURS), "10.0.0.66", OURS) is None  # an older life of ours
    assert namesake(state(5, THEIRS), "10.0.0.1", OURS) is None  # from our own address
    leave = Message(SHARED, 9, 1, 0.0, MessageKind.LEAVE, None)
    assert namesake(leave, "10.0.0.2", OURS) is None  # announces nothing


def test_a_datagram_announcing_other_addresses_is_another_nodes() -> None:
    found = namesake(state(7), "10.0.0.2", OURS)
    assert found == Namesake("10.0.0.2", 7, ("10.0.0.2",))


def test_ipv6_scopes_do_not_tell_addresses_apart() -> None:
    ours = status("ws1", "fe80::1")
    assert namesake(state(5, ours), "fe80::1%eth0", ours) is None
    assert namesake(state(5, status("ws1", "fe80::1%eth0")), "fe80::9", ours) is None


def test_the_lower_incarnation_renews_and_the_other_does_not() -> None:
    low, high = Namesake("10.0.0.1", 5, ("10.0.0.1",)), Namesake("10.0.0.2", 7, ("10.0.0.2",))
    assert takes_new_id(5, ("10.0.0.1",), high)
    assert not takes_new_id(7, ("10.0.0.2",), low)


def test_at_one_incarnation_the_lower_addresses_renew() -> None:
    other = Namesake("10.0.0.2", 5, ("10.0.0.2",))
    assert takes_new_id(5, ("10.0.0.1",), other)
    assert not takes_new_id(5, ("10.0.0.3",), other)


addresses = st.lists(
    st.integers(1, 254).map(lambda n: f"10.0.0.{n}"), min_size=1, max_size=3, unique=True
)


@given(st.integers(0, 2**64 - 1), addresses, st.integers(0, 2**64 - 1), addresses)
def test_two_namesakes_always_reach_opposite_decisions(
    ours: int, our_addresses: list[str], theirs: int, their_addresses: list[str]
) -> None:
    if set(our_addresses) & set(their_addresses):
        return  # one of them would take the other's datagram for its own
    we_renew = takes_new_id(ours, our_addresses, Namesake("x", theirs, tuple(their_addresses)))
    they_renew = takes_new_id(theirs, their_addresses, Namesake("y", ours, tuple(our_addresses)))
    assert we_renew != they_renew


def peer(address: str, liveness: Liveness) -> Peer:
    return Peer(SHARED, status("ws2", address), liveness, 1.0, 1.0, (7, 3))


def test_the_document_says_who_renews_and_whether_they_are_peers_now() -> None:
    shared = SharedId(SHARED, Namesake("10.0.0.2", 7, ("10.0.0.2",)), 10.0, new_id_here=True)
    document = shared.document([], now=12.5, wall=1000.0)
    assert document == {
        "address": "10.0.0.2",
        "since": 997.5,
        "shared_id": SHARED.hex(),
        "new_id_here": True,
        "healed": False,
    }
    assert not shared.healed([peer("10.0.0.2", Liveness.SUSPECT), peer("10.0.0.3", Liveness.ALIVE)])
    assert shared.healed([peer("10.0.0.2", Liveness.ALIVE)])
