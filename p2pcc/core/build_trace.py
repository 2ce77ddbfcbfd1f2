"""The trace of one build: its compiles as spans, the pool's slots as a counter.

The recorder polls distcc's state files (`p2pcc.core.distcc_state`) and hands each poll
here whole: `poll(now, seen, present)`, where `seen` holds one `Observation` per compile
of the build whose file it read and `present` the pids whose file was there but could
not be read this time (distcc rewrites it with O_TRUNC: an empty or short file is bad
timing, not an ended compile).  `slots(now, count)` records the pool's slot count.

How a poll becomes a span:

- A compile starts at the first poll that sees it holding a slot (a phase after BLOCKED)
  and ends at the first poll that misses it; both are late by less than one period, so
  its duration is right on average.  A compile shorter than a period may be missed.
- Its host is the host of its latest phase other than CPP: distcc 3.4 writes CPP with
  host "localhost" while a *remote* compile preprocesses here (a file seen only then
  has host "", shown as "(host not seen)").  "local" means host "localhost".
- Time waited for a slot: from the process's start (`started`, from /proc) to the poll
  that first saw it holding one, less than a period late; with no start time, the time
  it was seen in STARTUP or BLOCKED (distcc 3.4 writes neither: a waiting client has no
  file).  It includes the start-up of the wrapper and of distcc, a few milliseconds.
- Each phase is charged the time from the poll that saw it to the next poll.
- A pid seen again with another start time is a new compile (the pid was reused).

Memory is bounded: `MAX_SPANS` finished compiles and `MAX_SAMPLES` counter changes are
kept, more are counted as dropped (the document says how many); running compiles are as
many as the recorder passes (it caps the files it reads per poll).  Nothing here reads a
clock or a file: every call takes `now`, in the caller's clock, seconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from p2pcc.core import limits
from p2pcc.core.distcc_state import Phase

#: Finished compiles kept, and changes kept of each counter (see `limits`).
MAX_SPANS = limits.MAX_TRACE_SPANS
MAX_SAMPLES = limits.MAX_TRACE_SAMPLES

#: distcc's name for this machine in DISTCC_HOSTS and in its state files.
LOCALHOST = "localhost"

#: Track label of compiles whose host was never seen.
UNKNOWN_HOST = "(host not seen)"

#: Span name of compiles whose source file was never seen.
UNKNOWN_FILE = "(file not seen)"

_WAITING = (Phase.STARTUP, Phase.BLOCKED)


@dataclass(frozen=True, slots=True)
class Observation:
    """What one poll read about one compile; `started`: its process's start time."""

    pid: int
    file: str
    host: str
    phase: Phase
    started: float | None = None


@dataclass(frozen=True, slots=True)
class Span:
    """One compile: where, when, how long it waited and how long each phase took."""

    pid: int
    file: str
    host: str  # "" when never seen
    start: float
    end: float
    waited: float
    phases: tuple[float, ...]  # seconds per `Phase`, by its value

    @property
    def local(self) -> bool:
        """Whether it compiled on this machine."""
        return self.host == LOCALHOST


@dataclass(slots=True)
class _Running:
    pid: int
    started: float | None
    first_seen: float
    phase: Phase
    since: float  # the poll that last saw it
    file: str = ""
    host: str = ""
    slot_at: float | None = None  # the poll that first saw it holding a slot
    durations: list[float] = field(default_factory=lambda: [0.0] * len(Phase))

    def charge(self, now: float) -> None:
        self.durations[self.phase] += max(0.0, now - self.since)
        self.since = now

    def note(self, seen: Observation, now: float) -> None:
        self.phase = seen.phase
        self.file = seen.file or self.file
        if seen.host and seen.phase is not Phase.CPP:
            self.host = seen.host
        if self.slot_at is None and seen.phase not in _WAITING:
            self.slot_at = now

    def span(self, end: float) -> Span:
        durations = list(self.durations)
        durations[self.phase] += max(0.0, end - self.since)
        held = self.slot_at if self.slot_at is not None else end
        if self.started is not None:
            waited = max(0.0, held - self.started)
        else:
            waited = sum(durations[phase] for phase in _WAITING)
        start = self.slot_at if self.slot_at is not None else self.first_seen
        return Span(self.pid, self.file, self.host, start, end, waited, tuple(durations))


class BuildTrace:
    """The compiles and slot counts of one build, from `origin` (the trace's time zero)."""

    def __init__(
        self, origin: float, *, max_spans: int = MAX_SPANS, max_samples: int = MAX_SAMPLES
    ) -> None:
        self.origin = origin
        self._max_spans = max_spans
        self._max_samples = max_samples
        self._running: dict[int, _Running] = {}
        self._finished: list[Span] = []
        self._hosts: dict[str, int] = {}  # host → its index, in order of first appearance
        self._counters: dict[str, list[tuple[float, int]]] = {"slots": [], "compiles": []}
        self.dropped_spans = 0
        self.dropped_samples = 0

    def poll(self, now: float, seen: Iterable[Observation], present: Iterable[int] = ()) -> None:
        """One poll: the compiles read at `now`, and the pids whose file was unreadable."""
        observed = {item.pid: item for item in seen}
        kept = set(present) | observed.keys()
        for pid in [pid for pid in self._running if pid not in kept]:
            self._finish(self._running.pop(pid), now)
        for pid, item in observed.items():
            job = self._running.get(pid)
            if job is not None and item.started is not None and item.started != job.started:
                self._finish(self._running.pop(pid), now)  # the pid was reused
                job = None
            if job is None:
                job = self._running[pid] = _Running(pid, item.started, now, item.phase, now)
            job.charge(now)
            job.note(item, now)
            if job.host:
                self._hosts.setdefault(job.host, len(self._hosts))
        for pid in kept - observed.keys():
            if pid in self._running:
                self._running[pid].charge(now)
        self._sample("compiles", now, len(self._running))

    def slots(self, now: float, count: int | None) -> None:
        """The pool's slot count at `now`; None (unknown) is not drawn."""
        if count is not None:
            self._sample("slots", now, count)

    def running(self) -> int:
        """Compiles running at the last poll."""
        return len(self._running)

    def spans(self, now: float) -> list[Span]:
        """Every compile kept, in order of start, those still running ending at `now`."""
        spans = self._finished + [job.span(now) for job in self._running.values()]
        return sorted(spans, key=lambda span: (span.start, span.end, span.pid))

    def document(self, now: float, other: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The Trace Event Format object of the build so far; `other` joins `otherData`."""
        spans = self.spans(now)
        for span in spans:
            self._hosts.setdefault(span.host, len(self._hosts))
        events = _pool_events(self._counters, self.origin)
        events += _host_events(spans, self._hosts, self.origin)
        data = {
            "generator": "p2pcc build --trace",
            "compiles": len(spans),
            "dropped_compiles": self.dropped_spans,
            "dropped_counter_samples": self.dropped_samples,
            "max_compiles": self._max_spans,
            **(other or {}),
        }
        return {"traceEvents": events, "displayTimeUnit": "ms", "otherData": data}

    def _finish(self, job: _Running, now: float) -> None:
        if len(self._finished) < self._max_spans:
            self._finished.append(job.span(now))
        else:
            self.dropped_spans += 1

    def _sample(self, name: str, now: float, value: int) -> None:
        samples = self._counters[name]
        if samples and samples[-1][1] == value:
            return
        if len(samples) < self._max_samples:
            samples.append((now, value))
        else:
            self.dropped_samples += 1


#: Trace process of the pool's counters; hosts follow from HOST_PID_BASE, in order of
#: first appearance, so a host keeps its process id as the build goes on.
POOL_PID = 1
HOST_PID_BASE = 2


def _micros(seconds: float) -> int:
    return round(seconds * 1_000_000)


def _pool_events(counters: Mapping[str, list[tuple[float, int]]], origin: float) -> list[Any]:
    events: list[Any] = [_meta("process_name", POOL_PID, 0, name="pool")]
    events.append(_meta("process_sort_index", POOL_PID, 0, sort_index=0))
    for name, samples in counters.items():
        events += [
            {"ph": "C", "name": name, "pid": POOL_PID, "tid": 0, "ts": _micros(t - origin),
             "args": {name: value}}
            for t, value in samples
        ]  # fmt: skip
    return events


def _host_events(spans: list[Span], hosts: Mapping[str, int], origin: float) -> list[Any]:
    """Per host a process named after it, one thread per lane of overlapping compiles."""
    events: list[Any] = []
    lanes: dict[str, list[float]] = {}  # host → each lane's end
    for span in spans:
        ends = lanes.setdefault(span.host, [])
        lane = next((i for i, end in enumerate(ends) if end <= span.start), len(ends))
        label = span.host or UNKNOWN_HOST
        pid = HOST_PID_BASE + hosts[span.host]
        if lane == len(ends):
            ends.append(span.end)
            if lane == 0:
                events.append(_meta("process_name", pid, 0, name=label))
                events.append(_meta("process_sort_index", pid, 0, sort_index=pid))
            events.append(_meta("thread_name", pid, lane + 1, name=label))
        ends[lane] = span.end
        events.append(_complete(span, pid, lane + 1, origin))
    return events


def _meta(kind: str, pid: int, tid: int, **args: Any) -> dict[str, Any]:
    return {"ph": "M", "name": kind, "pid": pid, "tid": tid, "args": args}


def _complete(span: Span, pid: int, tid: int, origin: float) -> dict[str, Any]:
    where = "local" if span.local else "remote"
    phases = {phase.label: round(span.phases[phase], 6) for phase in Phase if span.phases[phase]}
    args = {
        "file": span.file,
        "host": span.host or UNKNOWN_HOST,
        "where": where,
        "waited_for_slot_s": round(span.waited, 6),
        "phases_s": phases,
        "distcc_pid": span.pid,
    }
    start = _micros(span.start - origin)
    return {
        "ph": "X",
        "name": span.file or UNKNOWN_FILE,
        "cat": where,
        "pid": pid,
        "tid": tid,
        "ts": start,
        "dur": max(0, _micros(span.end - origin) - start),
        "args": args,
    }
