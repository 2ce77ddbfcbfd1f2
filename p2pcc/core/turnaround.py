"""How long peers really take: the turnaround of this machine's own distcc jobs, per peer.

A peer announces its power and free slots; what a job there costs our build is another
matter when the peer is slow for a reason its daemon cannot read (a CPU quota outside
its view, thermal throttling, a noisy VM neighbour).  The daemon watches this machine's
distcc connections to each peer's distccd (`p2pcc.core.job_connections`) and hands the
book each one's lifetime, connection open to close: the job's turnaround as our build
felt it (sending the source, waiting for a slot, compiling, receiving the object).

Per peer the book keeps the newest `WINDOW_JOBS` turnarounds no older than
`WINDOW_SECONDS`, and says how many, their median and mean, and a *relative* figure:
the peer's median over the median of the other peers' turnarounds of the same time,
no higher than its mean over theirs (1.0: like the others; 10: ten times slower).
Why these choices:

- Medians, and means to confirm slowness: source files differ (a header-only unit
  against a template-heavy one).  One odd job must not brand a peer, and the median of
  a handful moves only when most of the handful moved; but a small project's handful
  can be mostly big files on one peer and mostly small ones on another (fastText's 14
  files gave one of two equal peers a median 2.7 times the other's, their means
  equal).  So the figure is the medians' ratio, but above 1 only as far as the means'
  ratio agrees: a peer is slower only when both its typical and its average job are
  (a real straggler's are both ten times the others').  The mean of the others is not
  used to make a peer look faster: a straggler among them inflates it.
- The reference counts turnarounds, not peers, and leaves the peer itself out: a slow
  peer completes few jobs while fast ones complete many, so the pooled median is what a
  typical job takes elsewhere; leaving the peer out keeps a straggler from pulling its
  own yardstick up (with two peers it is compared with the other one alone).
- Only the other peers' jobs that ended while the peer's own jobs ran (from the start
  of its first to the end of its last, or now while one runs) are its reference:
  jobs of one build, the same project and compiler.  A pool used by two builds in
  turn (a C project on two peers, then a C++ one on another) must not compare the
  C++ jobs with the C ones — the test bed showed an equal peer 2.7 times "slower" so.
- A small window (`WINDOW_JOBS`, odd so the median is one job) makes both verdicts
  quick: a peer slowed ten-fold shows after `MIN_JOBS` jobs (a few of its slow jobs, so
  within about 30 s of work), and one that recovers is forgiven after as many fast
  ones.  `WINDOW_SECONDS` forgets a peer that gets no jobs, whatever it did before.
- Below `MIN_JOBS` of its own, or of the others, the relative figure is None
  ("unknown"): two jobs are anecdotes.
- Jobs still running count too, each as the time it has run so far (`running`): a
  lower bound of its turnaround, so it can only pull the peer's median down, never
  brand it slow, yet a straggler's verdict does not wait for its slow jobs to end.
  They join the peer's own figures only, never the others' reference.

What ranking takes from the book is judged in `p2pcc.core.verdicts`: the share of its
announced speed each peer delivers, from its relative figure and the announced powers,
and how long such a verdict stands.

Nothing here reads a clock: every call takes `now`.  Memory is bounded: at most
`max_peers` peers (the one heard from least recently goes first) of `WINDOW_JOBS` each,
and peers the table forgot are dropped (`keep_only`).  `p2pcc status` shows the
figures, ranking the delivered factors.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from p2pcc.core import limits

#: Turnarounds kept per peer: the newest nine, so the median is the fifth.
WINDOW_JOBS = 9

#: Seconds a turnaround counts for: a build's worth, so a peer that gets no jobs for
#: two minutes starts anew (and a recovered straggler is not held to its past).
WINDOW_SECONDS = 120.0

#: Turnarounds a peer, and the other peers together, need before a relative figure.
MIN_JOBS = 5

#: The longest turnaround taken as it is: an hour, beyond any compile; longer ones (a
#: connection left hanging) count as this.
MAX_TURNAROUND = 3600.0


@dataclass(frozen=True, slots=True)
class Turnaround:
    """One peer's figures at a moment: jobs in the window, their median and mean
    seconds (None without jobs), the relative figure (None: unknown), the typical job it
    was measured against (the median of the other peers' jobs of the same time; None
    with the relative figure) and when the newest of its jobs ended (None without jobs:
    what tells new evidence from old evidence growing older)."""

    jobs: int
    median: float | None = None
    mean: float | None = None
    relative: float | None = None
    typical: float | None = None
    newest: float | None = None

    def as_document(self) -> dict[str, object]:
        """The `turnaround` object of a peer in the status document."""
        return {
            "jobs": self.jobs,
            "median": self.median,
            "mean": self.mean,
            "relative": self.relative,
        }


UNKNOWN = Turnaround(0)


class TurnaroundBook:
    """Observed turnarounds per peer; see the module docstring."""

    def __init__(
        self,
        *,
        window_jobs: int = WINDOW_JOBS,
        window_seconds: float = WINDOW_SECONDS,
        min_jobs: int = MIN_JOBS,
        max_peers: int = limits.MAX_PEERS,
    ) -> None:
        self._window_jobs = window_jobs
        self._window_seconds = window_seconds
        self._min_jobs = min_jobs
        self._max_peers = max_peers
        #: node id -> (when it ended, seconds), oldest first.
        self._jobs: dict[bytes, deque[tuple[float, float]]] = {}

    def observe(self, node_id: bytes, seconds: float, now: float) -> None:
        """A job of ours on `node_id` took `seconds`, ending at `now`.  A negative or
        non-finite figure is ignored."""
        if not math.isfinite(seconds) or seconds < 0:
            return
        jobs = self._jobs.get(node_id)
        if jobs is None:
            if len(self._jobs) >= self._max_peers:
                del self._jobs[min(self._jobs, key=lambda peer: self._jobs[peer][-1][0])]
            jobs = self._jobs[node_id] = deque(maxlen=self._window_jobs)
        jobs.append((now, min(seconds, MAX_TURNAROUND)))

    def __bool__(self) -> bool:
        """Whether any job was ever recorded (of peers still held)."""
        return bool(self._jobs)

    def keep_only(self, node_ids: Iterable[bytes]) -> None:
        """Drop every peer but `node_ids` (those the peer table still holds)."""
        keep = set(node_ids)
        for node_id in [peer for peer in self._jobs if peer not in keep]:
            del self._jobs[node_id]

    def forget(self, node_ids: Iterable[bytes]) -> None:
        """Drop what was measured of `node_ids` (`p2pcc remeasure`)."""
        for node_id in node_ids:
            self._jobs.pop(node_id, None)

    def peers(self) -> int:
        """Peers with turnarounds kept (some may be older than the window)."""
        return len(self._jobs)

    def figure(self, node_id: bytes, now: float) -> Turnaround:
        """`node_id`'s figures at `now` (`UNKNOWN` when it has no turnaround in the
        window)."""
        return self.figures(now).get(node_id, UNKNOWN)

    def figures(
        self, now: float, running: Mapping[bytes, Sequence[float]] | None = None
    ) -> dict[bytes, Turnaround]:
        """Every peer with a turnaround in the window at `now`, with its figures;
        `running` holds how long each peer's jobs still running have run so far."""
        cutoff, running = now - self._window_seconds, running or {}
        recent = {
            node_id: [(at, seconds) for at, seconds in jobs if at > cutoff]
            for node_id, jobs in self._jobs.items()
        }
        recent = {node_id: own for node_id, own in recent.items() if own}
        timeline = sorted(
            (at, seconds, node_id) for node_id, own in recent.items() for at, seconds in own
        )
        ends = [at for at, _, _ in timeline]
        figures = {}
        for node_id, own in recent.items():
            ages = [min(max(0.0, age), MAX_TURNAROUND) for age in running.get(node_id, ())]
            first = min([at - seconds for at, seconds in own] + [now - age for age in ages])
            last = now if ages else max(at for at, _ in own)
            span = timeline[bisect.bisect_left(ends, first) : bisect.bisect_right(ends, last)]
            reference = sorted(seconds for _, seconds, other in span if other != node_id)
            figure = self._figure(sorted(s for _, s in own), reference, ages)
            figures[node_id] = replace(figure, newest=own[-1][0])
        return figures

    def _figure(self, own: list[float], reference: list[float], ages: list[float]) -> Turnaround:
        """A peer's figures from its own turnarounds, the other peers' that ended while
        its jobs ran (`reference`, sorted) and the ages of its jobs still running."""
        middle, mean = median(own), sum(own) / len(own)
        bounds = sorted(own + ages)
        if len(bounds) >= self._min_jobs and len(reference) >= self._min_jobs:
            typical, average = median(reference), sum(reference) / len(reference)
            if typical > 0 and average > 0:
                by_median = median(bounds) / typical
                by_mean = (sum(bounds) / len(bounds)) / average
                relative = _slower_only_if_both(by_median, by_mean)
                return Turnaround(len(own), middle, mean, relative, typical)
        return Turnaround(len(own), middle, mean)


def _slower_only_if_both(by_median: float, by_mean: float) -> float:
    """The relative figure: the medians' ratio, but slower than the others (above 1)
    only as far as the means' ratio says so too."""
    return by_median if by_median <= 1 else max(1.0, min(by_median, by_mean))


def median(values: Sequence[float]) -> float:
    """The median of sorted, non-empty `values`."""
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2
