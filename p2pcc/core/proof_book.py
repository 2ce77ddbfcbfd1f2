"""The daemon's proofs of its peers (`p2pcc.core.proof`): which is due, what each
found, and which peers are disproven for which compiler.

- A proof is due for a (peer, compiler) pair never proven under the peer's current
  incarnation, or proven `PERIOD` seconds ago or more; never-proven pairs go first,
  then the oldest.  Only while this machine is idle (`is_idle`: no build of ours has
  run for about a minute), only for peers that may take a job now, one at a time (the
  caller runs what `due` returns and `record`s it before asking again).
- The pairs our builds would use go first: the peers of our hosts lines, and the
  disproven ones (left out of a line only by their last proof).  The rest of the pool
  is proven one pair per `BACKGROUND_SPACING` at most.  Without that bound every node
  of a thousand-desk pool would prove four thousand pairs an hour — compiling without
  pause here, and a proof a second arriving at every peer — where the pairs a build
  uses number at most `max_hosts` per compiler whatever the pool's size, and a peer
  is in about as many lines as a line holds hosts.
- A pair whose last proof found a different object is *disproven*: ranking leaves the
  peer out of that compiler's hosts line.  It stays out until a later proof passes (an
  hour on), the peer restarts (a new incarnation: its owner may have fixed it; proven
  again at once) or this daemon restarts (nothing here is kept on disk).
- `p2pcc remeasure` asks for proofs at once (`ask`): of the peers it names, or of every
  disproven pair; they go first, period or not.  A disproven pair stays out of its line
  until its proof passes: asking lifts no exclusion by itself.
- Refusals, timeouts and the like are kept for people only: they say nothing about the
  peer's code, and distcc's backoff and gossip liveness already keep builds off a peer
  that does not answer.

Nothing here reads a clock: every call that needs the time takes `now`.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable
from typing import Any

from p2pcc.core.proof import Outcome, ProofResult, ProofTarget

#: Seconds between two proofs of the same peer and compiler: a proof costs the peer a
#: tiny compile (tens of milliseconds of CPU), and a compiler set-up rarely changes.
PERIOD = 3600.0

#: Least seconds between two proofs of pairs outside our hosts lines: the cost of
#: proving stays flat as the pool grows (see the module docstring), and a pool of a
#: thousand desks with four compilers is still proven through in under three days.
BACKGROUND_SPACING = 60.0

#: Our own builds' load (`LocalMetrics.build_load`, averaged like the load average)
#: below which no build of ours has run for about a minute: a build of even one job at
#: a time keeps it above this for a minute and a half after the build ends.
IDLE_BUILD_LOAD = 0.25


def is_idle(build_load: float) -> bool:
    """Whether this machine is idle enough to prove peers: no build of ours lately."""
    return build_load < IDLE_BUILD_LOAD


class ProofBook:
    """Proof targets and results; see the module docstring."""

    def __init__(self, period: float = PERIOD, background: float = BACKGROUND_SPACING) -> None:
        self._period = period
        self._background = background
        self._next_background = -math.inf
        self._asked: set[tuple[bytes, str]] = set()  # pairs to prove at once (`ask`)
        self._targets: tuple[ProofTarget, ...] = ()
        self._results: dict[tuple[bytes, str], ProofResult] = {}
        self._proving: frozenset[bytes] = frozenset()

    @property
    def proving(self) -> frozenset[bytes]:
        """The peer a proof runs on now, if any: its connection is no job of a build
        (the turnaround task leaves it uncounted)."""
        return self._proving

    def begin(self, target: ProofTarget) -> None:
        """A proof of `target` starts."""
        self._proving = frozenset({target.node_id})

    def end(self) -> None:
        """The proof begun last is over."""
        self._proving = frozenset()

    @property
    def targets(self) -> tuple[ProofTarget, ...]:
        return self._targets

    def set_targets(self, targets: Iterable[ProofTarget]) -> bool:
        """Adopt the current targets; results of pairs no longer offered, or of an
        earlier incarnation of the peer, are forgotten.  Whether the disproven pairs
        changed."""
        before = self.disproven()
        self._targets = tuple(targets)
        current = {t.key: t.incarnation for t in self._targets}
        self._asked &= current.keys()
        self._results = {
            key: result
            for key, result in self._results.items()
            if current.get(key) == result.target.incarnation
        }
        return self.disproven() != before

    def due(
        self, now: float, idle: bool, in_line: Collection[tuple[bytes, str]]
    ) -> ProofTarget | None:
        """The proof to run now, if any (see the module docstring); `in_line` holds the
        (peer, fingerprint) pairs of our hosts lines."""
        if not idle:
            return None
        disproven = self._disproven_keys()
        wanted: list[tuple[bool, float, ProofTarget]] = []
        other: list[tuple[bool, float, ProofTarget]] = []
        for target in self._targets:
            key, last = target.key, self._results.get(target.key)
            if not target.ready:
                continue
            if key in self._asked:
                wanted.append((False, -math.inf, target))
            elif last is None or now >= last.at + self._period:
                entry = (last is not None, -1.0 if last is None else last.at, target)
                (wanted if key in in_line or key in disproven else other).append(entry)
        if not wanted and other and now >= self._next_background:
            wanted = other
            self._next_background = now + self._background
        return min(wanted, key=lambda entry: entry[:2])[2] if wanted else None

    def ask(self, node_ids: Collection[bytes] | None) -> list[ProofTarget]:
        """Have the pairs of `node_ids` proven at once, or every disproven pair (None);
        the targets asked for."""
        if node_ids is None:
            disproven = self._disproven_keys()
            asked = [t for t in self._targets if t.key in disproven]
        else:
            asked = [t for t in self._targets if t.node_id in node_ids]
        self._asked.update(t.key for t in asked)
        return asked

    def record(self, result: ProofResult) -> bool:
        """Keep `result` as its pair's last proof (a proof of a pair no longer offered
        is dropped); whether the disproven pairs changed."""
        self._asked.discard(result.target.key)
        before = self.disproven()
        if any(t.key == result.target.key for t in self._targets):
            self._results[result.target.key] = result
        return self.disproven() != before

    def result(self, target: ProofTarget) -> ProofResult | None:
        """The last proof of `target`'s pair, if any."""
        return self._results.get(target.key)

    def disproven(self) -> dict[str, frozenset[bytes]]:
        """Fingerprint -> the peers whose last proof of it found a different object."""
        found: dict[str, set[bytes]] = {}
        for (node_id, fingerprint), result in self._results.items():
            if result.outcome is Outcome.DIFFERENT:
                found.setdefault(fingerprint, set()).add(node_id)
        return {fingerprint: frozenset(ids) for fingerprint, ids in sorted(found.items())}

    def _disproven_keys(self) -> set[tuple[bytes, str]]:
        """The (peer, fingerprint) keys of the disproven pairs."""
        return {key for key, result in self._results.items() if result.outcome is Outcome.DIFFERENT}

    def documents(self) -> list[dict[str, Any]]:
        """Each target with its last proof, for the status document."""
        return [_document(target, self._results.get(target.key)) for target in self._targets]


def _document(target: ProofTarget, last: ProofResult | None) -> dict[str, Any]:
    return {
        "node_id": target.node_id.hex(),
        "name": target.name,
        "fingerprint": target.fingerprint,
        "language": target.language,
        "compiler": target.compiler,
        "host": target.host,
        "last": None if last is None else last.as_document(),
        "excluded": last is not None and last.outcome is Outcome.DIFFERENT,
    }
