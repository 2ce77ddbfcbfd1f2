"""The build trace: polls in, spans and a Trace Event Format document out, at exact times."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pcc.core.build_trace import (
    HOST_PID_BASE,
    POOL_PID,
    UNKNOWN_FILE,
    UNKNOWN_HOST,
    BuildTrace,
    Observation,
)
from p2pcc.core.distcc_state import Phase
from tests.build_trace.trace_format import check_trace_event_format

REMOTE = "127.0.0.1:3632"


def obs(pid: int, file: str, host: str, phase: Phase, started: float | None = None) -> Observation:
    return Observation(pid, file, host, phase, started)


def local(pid: int, file: str, started: float | None = None) -> Observation:
    return obs(pid, file, "localhost", Phase.COMPILE, started)


def run_polls(trace: BuildTrace, polls: Iterable[tuple[float, list[Observation]]]) -> None:
    for now, seen in polls:
        trace.poll(now, seen)


def tracks(document: dict[str, Any]) -> dict[str, set[int]]:
    """Host name → the trace process ids whose threads are named after it."""
    names: dict[str, set[int]] = {}
    for event in document["traceEvents"]:
        if event["ph"] == "M" and event["name"] == "thread_name":
            names.setdefault(event["args"]["name"], set()).add(event["pid"])
    return names


def spans_of(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [event for event in document["traceEvents"] if event["ph"] == "X"]


def test_a_local_compile_starts_and_ends_at_the_polls_that_see_and_miss_it() -> None:
    trace = BuildTrace(100.0)
    run_polls(trace, [(100.05, [local(7, "a.c", 99.99)]), (100.10, [local(7, "a.c", 99.99)])])
    trace.poll(100.15, [])
    (span,) = trace.spans(200.0)
    assert (span.file, span.host, span.local) == ("a.c", "localhost", True)
    assert (span.start, span.end) == (100.05, 100.15)
    assert span.waited == pytest.approx(0.06)
    assert span.phases[Phase.COMPILE] == pytest.approx(0.10)


def test_a_remote_compile_takes_its_host_and_file_from_the_remote_record() -> None:
    # distcc 3.4: CPP on the local record (no file, host localhost), then the remote one.
    trace = BuildTrace(0.0)
    run_polls(
        trace,
        [
            (0.05, [obs(9, "", "localhost", Phase.CPP, 0.0)]),
            (0.10, [obs(9, "", "localhost", Phase.CPP, 0.0)]),
            (0.15, [obs(9, "b.c", REMOTE, Phase.COMPILE, 0.0)]),
            (0.20, [obs(9, "b.c", REMOTE, Phase.RECEIVE, 0.0)]),
            (0.25, []),
        ],
    )
    (span,) = trace.spans(1.0)
    assert (span.file, span.host, span.local) == ("b.c", REMOTE, False)
    assert (span.start, span.end, span.waited) == (0.05, 0.25, 0.05)
    assert span.phases[Phase.CPP] == pytest.approx(0.10)
    assert span.phases[Phase.COMPILE] == pytest.approx(0.05)
    assert span.phases[Phase.RECEIVE] == pytest.approx(0.05)


def test_a_compile_seen_only_preprocessing_has_no_host_and_is_not_local() -> None:
    trace = BuildTrace(0.0)
    run_polls(trace, [(0.05, [obs(9, "", "localhost", Phase.CPP)]), (0.10, [])])
    (span,) = trace.spans(1.0)
    assert (span.host, span.local) == ("", False)
    event = spans_of(trace.document(1.0))[0]
    assert (event["name"], event["args"]["host"], event["cat"]) == (
        UNKNOWN_FILE,
        UNKNOWN_HOST,
        "remote",
    )


def test_waiting_without_a_start_time_is_the_time_seen_blocked() -> None:
    trace = BuildTrace(0.0)
    blocked = obs(3, "c.c", "", Phase.BLOCKED)
    run_polls(trace, [(1.0, [blocked]), (1.5, [blocked]), (2.0, [local(3, "c.c")]), (2.5, [])])
    (span,) = trace.spans(3.0)
    assert (span.start, span.end, span.waited) == (2.0, 2.5, 1.0)
    assert span.phases[Phase.BLOCKED] == 1.0


def test_an_unreadable_file_keeps_its_compile_running() -> None:
    trace = BuildTrace(0.0)
    trace.poll(1.0, [local(4, "d.c")])
    trace.poll(2.0, [], present=[4, 99])  # rewritten (O_TRUNC) as we read it; 99 unknown
    assert trace.running() == 1
    trace.poll(3.0, [])
    (span,) = trace.spans(4.0)
    assert (span.end, span.phases[Phase.COMPILE]) == (3.0, 2.0)


def test_a_reused_pid_is_a_new_compile() -> None:
    trace = BuildTrace(0.0)
    trace.poll(1.0, [local(5, "e.c", 0.9)])
    trace.poll(2.0, [local(5, "f.c", 1.9)])
    trace.poll(3.0, [])
    assert [(s.file, s.start, s.end) for s in trace.spans(4.0)] == [
        ("e.c", 1.0, 2.0),
        ("f.c", 2.0, 3.0),
    ]


def test_a_running_compile_ends_at_now_in_the_document_and_stays_running() -> None:
    trace = BuildTrace(10.0)
    trace.poll(10.5, [local(6, "g.c")])
    (event,) = spans_of(trace.document(12.0))
    assert (event["ts"], event["dur"]) == (500_000, 1_500_000)
    assert trace.running() == 1


def test_the_document_has_one_span_per_compile_and_one_track_per_host() -> None:
    trace = BuildTrace(0.0)
    trace.slots(0.0, 4)
    run_polls(
        trace,
        [
            (0.1, [local(1, "a.c"), obs(2, "b.c", REMOTE, Phase.COMPILE)]),
            (0.2, [local(1, "a.c"), obs(2, "b.c", REMOTE, Phase.COMPILE), local(3, "c.c")]),
            (0.3, [obs(4, "d.c", "other:3632", Phase.SEND)]),
            (0.4, []),
        ],
    )
    trace.slots(0.35, 6)
    trace.slots(0.36, None)
    document = trace.document(1.0)
    check_trace_event_format(document)
    spans = spans_of(document)
    assert sorted(span["name"] for span in spans) == ["a.c", "b.c", "c.c", "d.c"]
    assert tracks(document) == {
        "localhost": {HOST_PID_BASE},
        REMOTE: {HOST_PID_BASE + 1},
        "other:3632": {HOST_PID_BASE + 2},
    }
    # Two local compiles overlap: two lanes (threads) of the localhost process.
    assert {(s["name"], s["pid"], s["tid"]) for s in spans if s["cat"] == "local"} == {
        ("a.c", HOST_PID_BASE, 1),
        ("c.c", HOST_PID_BASE, 2),
    }
    counters = [(e["name"], e["ts"], e["args"]) for e in document["traceEvents"] if e["ph"] == "C"]
    assert [c for c in counters if c[0] == "slots"] == [
        ("slots", 0, {"slots": 4}),
        ("slots", 350_000, {"slots": 6}),
    ]
    assert [c[2]["compiles"] for c in counters if c[0] == "compiles"] == [2, 3, 1, 0]
    assert all(e["pid"] == POOL_PID for e in document["traceEvents"] if e["ph"] == "C")
    b = next(span for span in spans if span["name"] == "b.c")
    assert b["args"] == {
        "file": "b.c",
        "host": REMOTE,
        "where": "remote",
        "waited_for_slot_s": 0.0,
        "phases_s": {"Compile": 0.2},
        "distcc_pid": 2,
    }
    assert document["otherData"]["compiles"] == 4


def test_host_process_ids_stay_the_same_as_the_build_goes_on() -> None:
    trace = BuildTrace(0.0)
    trace.poll(1.0, [obs(1, "a.c", REMOTE, Phase.COMPILE)])
    first = tracks(trace.document(1.5))
    trace.poll(2.0, [local(2, "b.c")])
    trace.poll(3.0, [])
    assert tracks(trace.document(3.5))[REMOTE] == first[REMOTE]


def test_spans_and_samples_beyond_the_caps_are_counted_as_dropped() -> None:
    trace = BuildTrace(0.0, max_spans=2, max_samples=2)
    for pid in range(1, 5):
        trace.poll(float(pid), [local(pid, f"{pid}.c")])
    trace.poll(5.0, [])
    assert [s.file for s in trace.spans(6.0)] == ["1.c", "2.c"]
    for count in range(3):
        trace.slots(float(count), count)
    other = trace.document(6.0, {"poll_period_s": 0.05})["otherData"]
    assert other["dropped_compiles"] == 2
    assert other["dropped_counter_samples"] == 1  # slots 0, 1, 2: the third change
    assert other["poll_period_s"] == 0.05


polls = st.lists(
    st.lists(
        st.builds(
            Observation,
            st.integers(1, 6),
            st.sampled_from(["", "a.c", "b.c"]),
            st.sampled_from(["", "localhost", REMOTE]),
            st.sampled_from(Phase),
            st.one_of(st.none(), st.sampled_from([0.0, 0.5])),
        ),
        max_size=5,
    ),
    max_size=12,
)


@given(polls)
def test_any_polls_give_a_valid_document_with_spans_inside_the_polls(
    seen: list[list[Observation]],
) -> None:
    trace = BuildTrace(0.0)
    for index, items in enumerate(seen, start=1):
        trace.poll(float(index), items)
    end = float(len(seen) + 1)
    document = trace.document(end)
    check_trace_event_format(document)
    for span in trace.spans(end):
        assert 1.0 <= span.start <= span.end <= end
        # Phases cover the span, and before it the time seen waiting for a slot.
        assert span.end - span.start - 1e-9 <= sum(span.phases) <= span.end - 1.0 + 1e-9
    assert len(spans_of(document)) == len(trace.spans(end))
