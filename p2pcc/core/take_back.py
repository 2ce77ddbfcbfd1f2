"""Taking our jobs back from a straggler: which of them to compile here instead.

Once measurement shows a peer's jobs take several times the others' (`turnaround`),
ranking leaves it out of every line and it gets no new job.  The jobs it already holds
would still hold their make slots for as long as they take there, and the last of them
can hold up the end of the build (the slow-peer benchmark saw builds wait 21 s for one
object).  So a job there is given up — its connection aborted, and distcc compiles the
file here at once, as for a vanished peer — when it is expected to end later there than
a fresh compile would end here.

The peer's jobs take `relative` times the typical job of the others (`typical`, the
median of their jobs of the same time), so one that has run `age` seconds has about
relative x typical - age to go; compiled afresh it takes about `typical`.  It is taken
back while age < (relative - 1) x typical.  A job that has run longer is left to end:
it may be nearly done, and while a peer's own jobs run, its relative figure counts them
only as far as they got, so it says too little about them.

Only a peer both measured slow (a delivered factor below 1) and out of every line:
one measured slower than it announces but still worth its slots keeps its jobs, and
one left out for what it announces (paused, full, busy) was not judged on its speed.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from p2pcc.core.job_connections import ConnectionKey
from p2pcc.core.turnaround import Turnaround


def jobs_to_take_back(
    open_jobs: Mapping[bytes, Sequence[tuple[ConnectionKey, float]]],
    figures: Mapping[bytes, Turnaround],
    delivered: Mapping[bytes, float],
    in_lines: Collection[bytes],
) -> dict[bytes, list[ConnectionKey]]:
    """The connections of `open_jobs` (peer -> (connection, age)) to give up, by peer,
    by the rule above; `delivered` holds the peers' factors below 1, `in_lines` the
    peers in any of our lines."""
    taken: dict[bytes, list[ConnectionKey]] = {}
    for node_id, jobs in open_jobs.items():
        figure = figures.get(node_id)
        if node_id in in_lines or delivered.get(node_id, 1.0) >= 1.0 or figure is None:
            continue
        if figure.relative is None or figure.typical is None:
            continue
        horizon = (figure.relative - 1.0) * figure.typical
        keys = [key for key, age in jobs if age < horizon]
        if keys:
            taken[node_id] = keys
    return taken
