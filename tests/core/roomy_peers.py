"""Peers for the ranking and DISTCC_HOSTS tests: roomy machines whose score is their power.

BASE has 64 idle CPUs, 64 GiB and one free slot, so every factor of the score but
power is 1 and a test changes only the field it is about.
"""

from __future__ import annotations

from dataclasses import replace

from p2pcc.core.metrics import GIB
from p2pcc.core.model import CompilerOffer, NodeStatus
from p2pcc.core.peers import Liveness, Peer

FP = "0123456789abcdef"
OFFER = CompilerOffer(FP, "x86_64-linux-gnu--12", "x86_64-linux-gnu-gcc-12")
OTHER_FP = "fedcba9876543210"
OTHER_OFFER = CompilerOffer(OTHER_FP, "x86_64-linux-gnu--11", "x86_64-linux-gnu-gcc-11")

BASE = NodeStatus(
    name="base",
    addresses=("10.0.0.99",),
    distccd_port=3632,
    cpus=64,
    load=0.0,
    mem_available=64 * GIB,
    slots=1,
    jobs=0,
    power=1.0,
    compilers=(OTHER_OFFER, OFFER),
)


def node(n: int) -> bytes:
    return bytes([n]) * 16


def peer(n: int, liveness: Liveness = Liveness.ALIVE, **fields: object) -> Peer:
    """Peer `n` (name pN, address 10.0.0.N): BASE with `fields` changed."""
    status = replace(BASE, name=f"p{n}", addresses=(f"10.0.0.{n}",))
    return Peer(node(n), replace(status, **fields), liveness, 0.0, 0.0, (1, 1))  # type: ignore[arg-type]
