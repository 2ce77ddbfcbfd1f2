"""Judging peers by the turnaround book: the share of its announced speed each peer
delivers, and how long such a verdict stands.

`delivered_factors` turns the book's relative figures (`p2pcc.core.turnaround`) into
factors ranking multiplies a peer's power by; `Verdicts` decides when a factor changes.
Why it does not simply follow the book:

- A straggler left out of every line gets no job, so the book learns nothing new about
  it, while the others' jobs go on moving with the build (busier as it goes on, quieter
  as it ends) and its own old jobs leave the window one by one.  Recomputed against
  that, its old jobs would look better and worse by turns, or fall below the handful a
  figure needs, and it would flap in and out of the lines, getting a job each time it is
  in — only to have it taken back a moment later (`core/take_back.py`), which the test
  bed saw.  So a verdict changes only with new evidence about the peer itself (a job of
  it ended, or one runs), and only to another judgement: evidence too thin to judge
  ("unknown") leaves a verdict as it is.
- A verdict does not stand for ever: the cause of a peer's slowness (a quota, a noisy
  neighbour, heat) may pass.  `VERDICT_HOLD` seconds after the evidence last judged it,
  a peer is forgiven and enters the lines again, so its next jobs judge it afresh: a
  straggler still slow costs a few jobs there every few minutes (the young ones taken
  back), a recovered one is back within minutes.  `p2pcc remeasure` forgives at once.

Nothing here reads a clock: every call takes `now`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from p2pcc.core.turnaround import Turnaround, median

#: A peer's jobs must take this many times the other peers' (its relative figure, by
#: medians and means) before measurement overrides what it announces: turnarounds
#: include queues and a handful of files of different sizes, and the real-build test
#: bed (four workstations and several builds sharing two CPUs) showed equal peers 2.2
#: and 2.7 times apart, which, taken as measured, left a good peer out of every line;
#: a peer held to 10 % of a CPU there measured 3.9-5.3 times, and a ten-fold straggler
#: on machines of its own measures 10.
SLOWER_THAN_NOISE = 3.0

#: Factors are snapped down to quarter powers of two (1, 0.84, 0.71, 0.59, 0.5 …), so a
#: relative figure wandering by a few percent does not re-rank and rewrite the state
#: file at every poll.
FACTOR_STEPS_PER_DOUBLING = 4

#: Seconds between two judgements while no job finishes (`Verdicts.due`).
JUDGE_PERIOD = 1.0

#: Seconds a verdict stands after the evidence that last judged the peer: a few builds'
#: worth, longer than the book's window (`turnaround.WINDOW_SECONDS`), so the peer is
#: judged afresh from new jobs only.
VERDICT_HOLD = 300.0


def delivered_factors(
    figures: Mapping[bytes, Turnaround], powers: Mapping[bytes, float]
) -> dict[bytes, float]:
    """The share of its announced speed each measured peer delivers, for those whose
    jobs take `SLOWER_THAN_NOISE` times the others' or more and who deliver less than
    they announce (every other peer delivers all of it: factor 1, left out).

    A peer's relative figure says how much longer its jobs take than the other peers'
    jobs; its announced power against theirs (`powers`: node id -> power; their median
    weighted by their jobs, as the relative figure pools their jobs) says how much
    longer they should take.  The factor is expected / measured, at most 1: a peer that
    announces half the others' power and takes twice as long delivers what it says
    (ranking already put it lower), one that announces the same and takes ten times as
    long delivers a tenth.  No floor: a peer is ranked by what it really delivers.
    """
    factors: dict[bytes, float] = {}
    measured = {node_id: figure for node_id, figure in figures.items() if node_id in powers}
    for node_id, figure in measured.items():
        power = powers[node_id]
        # The yardstick is the other peers' pooled jobs: weigh their powers alike.
        others = [powers[o] for o, f in measured.items() if o != node_id for _ in range(f.jobs)]
        relative = figure.relative
        if relative is None or relative < SLOWER_THAN_NOISE or power <= 0 or not others:
            continue
        expected = median(sorted(others)) / power
        factor = expected / relative
        if factor < 1.0:
            steps = math.floor(math.log2(factor) * FACTOR_STEPS_PER_DOUBLING)
            factors[node_id] = 2.0 ** (steps / FACTOR_STEPS_PER_DOUBLING)
    return factors


#: What a judgement rests on: when the peer's newest job ended, and whether one runs.
Evidence = tuple[float | None, bool]


@dataclass(frozen=True, slots=True)
class _Judgement:
    evidence: Evidence
    factor: float  # 1.0: delivers what it announces
    judged_at: float  # when evidence last judged it (a factor, not "unknown")


class Verdicts:
    """Delivered factors that change only with new evidence about the peer itself, and
    stand `hold` seconds after it; see the module docstring."""

    def __init__(self, hold: float = VERDICT_HOLD) -> None:
        self._hold = hold
        self._judged: dict[bytes, _Judgement] = {}
        self.judged_at = -math.inf  # when `update` last ran, on the caller's clock

    def due(self, now: float, finished: bool) -> bool:
        """Whether to judge again at `now`: at once when a job `finished`, else once
        every `JUDGE_PERIOD` while jobs run (their ages grow; judging costs about 9 ms
        with 64 peers' figures, 1 ms with a handful)."""
        return finished or now >= self.judged_at + JUDGE_PERIOD

    def update(
        self,
        figures: Mapping[bytes, Turnaround],
        running: Mapping[bytes, Sequence[float]],
        powers: Mapping[bytes, float],
        now: float,
    ) -> dict[bytes, float]:
        """The factors at `now` (those below 1), from the book's `figures`, the jobs still
        `running` and the announced `powers`: `delivered_factors` for the peers with new
        evidence that judges them, the standing verdicts for the others."""
        self.judged_at = now
        fresh = delivered_factors(figures, powers)
        judged: dict[bytes, _Judgement] = {}
        for node_id, figure in figures.items():
            evidence = (figure.newest, bool(running.get(node_id)))
            kept = self._standing(node_id, now)
            if kept is not None and (kept.evidence == evidence or figure.relative is None):
                judged[node_id] = _Judgement(evidence, kept.factor, kept.judged_at)
            elif figure.relative is not None:
                judged[node_id] = _Judgement(evidence, fresh.get(node_id, 1.0), now)
        for node_id in self._judged.keys() - figures.keys():  # the book forgot its jobs
            kept = self._standing(node_id, now)
            if kept is not None and kept.factor < 1.0:
                judged[node_id] = kept
        self._judged = judged
        return {node_id: j.factor for node_id, j in judged.items() if j.factor < 1.0}

    def _standing(self, node_id: bytes, now: float) -> _Judgement | None:
        """`node_id`'s judgement, unless it is older than the hold."""
        kept = self._judged.get(node_id)
        return None if kept is None or now >= kept.judged_at + self._hold else kept

    def set_aside(
        self, node_ids: Iterable[bytes], running: Mapping[bytes, Sequence[float]]
    ) -> None:
        """Jobs of `node_ids` were taken back (`core/take_back.py`): that says nothing
        new about those peers, so their verdicts stand, though the jobs no longer run."""
        for node_id in node_ids:
            kept = self._judged.get(node_id)
            if kept is not None:
                evidence = (kept.evidence[0], bool(running.get(node_id)))
                self._judged[node_id] = _Judgement(evidence, kept.factor, kept.judged_at)

    def forget(self, node_ids: Iterable[bytes] | None) -> None:
        """Drop the verdicts on `node_ids`, or every verdict (None): `p2pcc remeasure`."""
        if node_ids is None:
            self._judged.clear()
        for node_id in node_ids or ():
            self._judged.pop(node_id, None)
