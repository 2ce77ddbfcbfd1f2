"""Local nodes with a node id of our choosing, as machines cloned from one disk image.

`clone(i, node_id, incarnation)` is `tests.core.local_nodes.make_node(i)` (ws<i> at
10.0.0.<i>, serving) but for the id and incarnation it starts with.
"""

from __future__ import annotations

from collections.abc import Callable

from p2pcc.core.addresses import AddressPool
from p2pcc.core.auth import Keyring
from p2pcc.core.gossip import GossipEngine
from p2pcc.core.gossip_types import RefusedAddress
from p2pcc.core.local_compilers import LocalCompiler
from p2pcc.core.node import LocalNode
from p2pcc.core.node_change import Change
from tests.core.local_nodes import fingerprint, status
from tests.core.policies import default_policy, default_timings

SHARED = b"\xc1" * 16


def clone(
    index: int,
    node_id: bytes = SHARED,
    incarnation: int = 1,
    on_change: Callable[[Change], None] = lambda change: None,
    *,
    pool: AddressPool | None = None,
    on_refused: Callable[[RefusedAddress], None] = lambda refused: None,
) -> LocalNode:
    """Workstation `ws<index>`, serving, known as `node_id` at `incarnation`; `pool` and
    `on_refused` as `GossipEngine` takes them."""
    engine = GossipEngine(
        node_id=node_id,
        incarnation=incarnation,
        keyring=Keyring(),
        status=status(f"ws{index}", f"10.0.0.{index}"),
        interval=2.0,
        timings=default_timings(),
        now=0.0,
        pool=pool,
        on_refused=on_refused,
    )
    node = LocalNode(
        engine=engine,
        compilers=[LocalCompiler(fingerprint(), ("gcc", "cc"))],
        policy=default_policy(),
        now=0.0,
        on_change=on_change,
    )
    node.set_serving(True, 0.0)
    return node
