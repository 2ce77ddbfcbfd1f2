"""Proving peers by a real compile while this machine is idle (`p2pcc.core.proof`,
`p2pcc.core.proof_book` say what is sent, when, and what a result changes).

Every `LOOK_PERIOD` seconds (`SPACING` after a proof) the task brings the book's targets
up to date with the peer table (every peer offering one of our compilers) and, when no
build of ours ran lately (`BuildLoad`, fed by the metrics sampler) and a pair is due,
runs that one proof: one at a time, as a subprocess within `proof.TIMEOUT`, never
holding up another task.  The peers of our hosts lines go first, the rest of the pool
at a bounded rate (`proof_book.BACKGROUND_SPACING`).
A proof that changes which peers are disproven re-ranks at once
(`LocalNode.set_disproven`).  A result unlike the pair's previous one is logged; an
error of the task itself is logged once and it goes on: a proof is never worth the
daemon.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable

import trio

from p2pcc.core.metrics import LocalMetrics
from p2pcc.core.node import LocalNode
from p2pcc.core.proof import ADVICE, Outcome, ProofResult, ProofTarget, proof_targets
from p2pcc.core.proof_book import is_idle

log = logging.getLogger("p2pcc.daemon.proofs")

#: Seconds between two looks for a due proof: a look costs a walk of the peer table.
LOOK_PERIOD = 10.0

#: Seconds between the end of one proof and the look for the next: the first round of
#: proofs (a pool's every peer and compiler) is done within minutes, one at a time.
SPACING = 1.0

Prove = Callable[[ProofTarget], Awaitable[ProofResult]]


class BuildLoad:
    """The newest `LocalMetrics.build_load` (infinite, so not idle, before the first)."""

    def __init__(self) -> None:
        self.value = math.inf

    def observe(self, sample: LocalMetrics) -> None:
        self.value = sample.build_load


async def serve_proofs(
    node: LocalNode,
    prove: Prove,
    build_load: BuildLoad,
    *,
    lzo: bool,
    period: float = LOOK_PERIOD,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Prove due peers with `prove` for as long as the daemon runs; `lzo` renders host
    specs as the ranking policy does."""
    book = node.reports.proofs
    complained = False
    task_status.started()
    while True:
        proved = False
        try:
            if book.set_targets(proof_targets(node.peers(), node.compilers, lzo)):
                node.set_disproven(book.disproven())
            now = trio.current_time()
            target = book.due(now, is_idle(build_load.value), _in_line(node, now))
            if target is not None:
                before = book.result(target)
                book.begin(target)
                try:
                    result = await prove(target)
                finally:
                    book.end()
                if book.record(result):
                    node.set_disproven(book.disproven())
                _tell(result, before)
                proved = True
        except Exception as error:  # proving must never stop the daemon
            if not complained:
                complained = True
                log.warning("proving peers failed (going on): %r", error)
        await trio.sleep(SPACING if proved else period)


def _in_line(node: LocalNode, now: float) -> frozenset[tuple[bytes, str]]:
    """The (peer, fingerprint) pairs of our hosts lines: the ones our builds use."""
    ranked = node.ranking(now).ranked
    return frozenset((entry.peer.node_id, fp) for fp, line in ranked.items() for entry in line)


def _tell(result: ProofResult, before: ProofResult | None) -> None:
    """Log a result unlike the pair's last one (the first included)."""
    target = result.target
    if before is not None and before.outcome is result.outcome:
        return
    where = f"proof of {target.name} ({target.host}) for {target.compiler}"
    if result.outcome is Outcome.OK:
        log.info("%s: ok, same object in %.0f ms", where, result.seconds * 1000)
        return
    left_out = "; left out of its hosts line" if result.outcome is Outcome.DIFFERENT else ""
    detail = f" ({result.detail})" if result.detail else ""
    advice = ADVICE[result.outcome]
    log.warning("%s: %s%s%s: %s", where, result.outcome.value, detail, left_out, advice)
