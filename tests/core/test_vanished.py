"""Which dead peers are checked for hanging jobs: each once per death, none that left."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import ip_address as ip

from p2pcc.core.peers import Liveness
from p2pcc.core.procfs import TCP_ESTABLISHED, TCP_LISTEN, TcpSocket
from p2pcc.core.vanished import VanishCheck, VanishWatch, connections_held
from tests.core.roomy_peers import node, peer


def test_a_dead_peer_is_checked_once_with_its_addresses_and_port() -> None:
    watch = VanishWatch()
    dead = replace(peer(2, Liveness.DEAD, distccd_port=4000), last_heard=17.0)
    assert watch.due([peer(1), dead, peer(3, Liveness.SUSPECT)]) == [
        VanishCheck(node(2), "p2", ("10.0.0.2",), 4000, 17.0)
    ]
    assert watch.due([peer(1), dead, peer(3, Liveness.SUSPECT)]) == []


def test_a_peer_heard_again_is_checked_anew_at_its_next_death() -> None:
    watch = VanishWatch()
    assert len(watch.due([peer(2, Liveness.DEAD)])) == 1
    assert watch.due([peer(2, Liveness.ALIVE)]) == []
    assert len(watch.due([peer(2, Liveness.DEAD)])) == 1


def test_a_forgotten_peer_is_checked_anew_if_it_returns_and_dies() -> None:
    watch = VanishWatch()
    assert len(watch.due([peer(2, Liveness.DEAD)])) == 1
    assert watch.due([]) == []  # forgotten by the table
    assert len(watch.due([peer(2, Liveness.DEAD)])) == 1


def test_alive_and_suspect_peers_and_peers_without_address_are_not_checked() -> None:
    watch = VanishWatch()
    peers = [peer(1), peer(2, Liveness.SUSPECT), peer(3, Liveness.DEAD, addresses=())]
    assert watch.due(peers) == []


def test_a_dead_peer_at_the_address_of_a_peer_still_heard_is_not_checked() -> None:
    """A forged node (unkeyed pool) that claims p2's address and falls silent must not
    make the daemon cut p2's jobs loose; nor must p2's own earlier, restarted id."""
    watch = VanishWatch()
    impostor = replace(peer(9, Liveness.DEAD), status=replace(peer(2).status, name="p9"))
    for p2 in (peer(2), peer(2, Liveness.SUSPECT)):
        assert watch.due([p2, impostor]) == []
    # Once p2 is dead too, both are checked.
    assert [check.name for check in watch.due([peer(2, Liveness.DEAD), impostor])] == [
        "p2",
        "p9",
    ]


def test_several_deaths_at_once_are_all_checked() -> None:
    watch = VanishWatch()
    due = watch.due([peer(n, Liveness.DEAD) for n in (4, 5, 6)])
    assert [check.name for check in due] == ["p4", "p5", "p6"]


def sock(
    local: str, port: int, remote: str, remote_port: int, state: int = TCP_ESTABLISHED
) -> TcpSocket:
    return TcpSocket(ip(local), port, state, 1, ip(remote), remote_port)


def test_connections_held_count_our_jobs_there_and_its_jobs_here_only() -> None:
    check = VanishCheck(node(2), "p2", ("10.0.0.2",), 3632, 0.0)
    table = [
        sock("10.0.0.1", 40001, "10.0.0.2", 3632),  # our job on its distccd
        sock("10.0.0.1", 3633, "10.0.0.2", 50000),  # its job on our distccd (port 3633)
        sock("::ffff:10.0.0.1", 40002, "::ffff:10.0.0.2", 3632),  # dual-stack socket
        sock("10.0.0.1", 40003, "10.0.0.2", 22),  # ssh to it: not ours to touch
        sock("10.0.0.1", 40004, "10.0.0.3", 3632),  # another peer
        sock("10.0.0.1", 40005, "10.0.0.2", 3632, state=0x06),  # TIME_WAIT: over
        TcpSocket(ip("10.0.0.1"), 3633, TCP_LISTEN, 9),  # our distccd listening
    ]
    assert connections_held(table, check, own_port=3633) == 3
    assert connections_held([], check, own_port=3633) == 0


def test_an_address_that_is_no_address_holds_nothing() -> None:
    check = VanishCheck(node(2), "p2", ("not-an-address", "10.0.0.2"), 3632, 0.0)
    assert connections_held([sock("10.0.0.1", 40001, "10.0.0.2", 3632)], check, 3632) == 1
