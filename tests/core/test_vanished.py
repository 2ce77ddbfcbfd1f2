"""Which dead peers are checked for hanging jobs: each once per death, none that left."""

from __future__ import annotations

from dataclasses import replace

from p2pcc.core.peers import Liveness
from p2pcc.core.vanished import VanishCheck, VanishWatch
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


def test_several_deaths_at_once_are_all_checked() -> None:
    watch = VanishWatch()
    due = watch.due([peer(n, Liveness.DEAD) for n in (4, 5, 6)])
    assert [check.name for check in due] == ["p4", "p5", "p6"]
