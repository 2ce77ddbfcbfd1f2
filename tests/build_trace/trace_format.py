"""What Perfetto's JSON importer needs of a Trace Event Format document."""

from __future__ import annotations

import itertools
import json
from typing import Any


def check_trace_event_format(document: dict[str, Any]) -> None:
    """The structure Perfetto's JSON importer reads (Trace Event Format): X events with
    pid, tid, ts, dur and name; C events with args; M events naming processes and
    threads; and no two X events overlapping on one thread unless nested."""
    assert document["displayTimeUnit"] == "ms"
    json.loads(json.dumps(document, allow_nan=False))  # plain JSON, no NaN
    by_thread: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for event in document["traceEvents"]:
        assert event["ph"] in {"X", "C", "M"}
        assert isinstance(event["pid"], int)
        assert isinstance(event["tid"], int)
        assert isinstance(event["name"], str)
        if event["ph"] == "X":
            assert isinstance(event["ts"], int)
            assert isinstance(event["dur"], int)
            assert event["ts"] >= 0
            assert event["dur"] >= 0
            by_thread.setdefault((event["pid"], event["tid"]), []).append(
                (event["ts"], event["ts"] + event["dur"])
            )
        elif event["ph"] == "C":
            assert isinstance(event["ts"], int)
            assert all(isinstance(v, int) for v in event["args"].values())
        else:
            assert event["name"] in {
                "process_name",
                "process_sort_index",
                "thread_name",
            }
    for intervals in by_thread.values():
        intervals.sort()
        for (_, end), (start, _) in itertools.pairwise(intervals):
            assert end <= start
