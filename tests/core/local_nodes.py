"""Local nodes for tests: one compiler, an address per index, the configuration's policies.

`make_node(i)` is workstation `ws<i>` at 10.0.0.<i> with four slots and gcc 12; its
`on_change` gets every `Change` it announces (a list's `append`, to say which tasks it
would have woken; a `ChangeBoard`'s `notify`, to wake real ones).
"""

from __future__ import annotations

from collections.abc import Callable

from p2pcc.core.auth import Keyring
from p2pcc.core.fingerprint import Fingerprint
from p2pcc.core.gossip import GossipEngine
from p2pcc.core.gossip_types import Transport
from p2pcc.core.local_compilers import LocalCompiler
from p2pcc.core.model import CompilerOffer, NodeStatus
from p2pcc.core.node import LocalNode
from p2pcc.core.node_change import Change
from tests.core.policies import default_policy, default_timings

FP = "be03ec3c49bc7685"
OFFER = CompilerOffer(FP, "x86_64-linux-gnu--12", "x86_64-linux-gnu-gcc-12")
WALL = 1_800_000_000.0


def status(name: str, address: str) -> NodeStatus:
    return NodeStatus(
        name=name,
        addresses=(address,),
        distccd_port=3632,
        cpus=4,
        load=0.0,
        mem_available=16 << 30,
        slots=4,
        jobs=0,
        power=1.0,
        compilers=(OFFER,),
    )


def fingerprint() -> Fingerprint:
    return Fingerprint(
        id=FP,
        command="/usr/bin/gcc",
        real_path="/usr/bin/x86_64-linux-gnu-gcc-12",
        family="gcc",
        language="c",
        triple="x86_64-linux-gnu",
        version="12.2.0",
        loose_key=OFFER.loose_key,
        remote_name=OFFER.remote_name,
        binaries=(),
        remote_name_checks=(),
    )


def make_node(
    index: int, on_change: Callable[[Change], None] = lambda change: None, *, now: float = 0.0
) -> LocalNode:
    """Workstation `ws<index>`, telling `on_change` what changes."""
    engine = GossipEngine(
        node_id=bytes([index]) * 16,
        incarnation=1,
        keyring=Keyring(),
        status=status(f"ws{index}", f"10.0.0.{index}"),
        interval=2.0,
        timings=default_timings(),
        now=now,
    )
    return LocalNode(
        engine=engine,
        compilers=[LocalCompiler(fingerprint(), ("gcc", "cc"))],
        policy=default_policy(),
        now=now,
        on_change=on_change,
    )


def gossip(sender: LocalNode, receiver: LocalNode, now: float) -> None:
    """Hand `receiver` what `sender` has due at `now` for it: multicast datagrams, and
    unicast ones to its address."""
    address = sender.status.addresses[0]
    to = (receiver.status.addresses[0], 3634)
    for outgoing in sender.datagrams_to_send(now, WALL + now):
        if outgoing.multicast:
            receiver.receive(outgoing.data, (address, 3634), Transport.MULTICAST, now)
        elif to in outgoing.unicast:
            receiver.receive(outgoing.data, (address, 3634), Transport.UNICAST, now)


def gossip_as_one_zero(sender: LocalNode, receiver: LocalNode, now: float) -> None:
    """Hand `receiver` the state datagram `sender` has due, as a protocol 1.0 node sends
    it (header minor 0: never probed, judged by silence alone).  Unkeyed pools only."""
    outgoing = sender.datagram_to_send(now, WALL + now)
    assert outgoing is not None
    data = outgoing.data[:5] + b"\x00" + outgoing.data[6:]
    receiver.receive(data, (sender.status.addresses[0], 3634), Transport.MULTICAST, now)
