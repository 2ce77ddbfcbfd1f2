"""Which client each job-guard refusal came from, counted, and which to log.

The guard (see `p2pcc.core.job_guard_sh`) appends `PID REASON` to its report file,
PID being the distccd child that ran it; that child then logs the job's summary,
`distccd[PID] (dcc_job_summary) client: ADDRESS:PORT COMPILE_ERROR exit:87 ...`.
Joining the two by PID, in order, names the client of each refusal.  Both files are
written by distccd's user, and a job's client chooses much of the text: every line is
bounded, cut to printable characters, and parsed or dropped, and what is kept waiting
for its other half is bounded too (the oldest is counted for an unknown client).
"""

from __future__ import annotations

import re
from collections import Counter, deque
from dataclasses import dataclass

from p2pcc.core.job_guard import REFUSED_STATUS

#: A report line or a reason longer than this is cut.
MAX_REASON = 160
#: Refusals or summaries waiting for their other half, at most.
MAX_PENDING = 256
#: Distinct (client, reason) pairs remembered as logged, and distinct keys counted.
MAX_KEYS = 1024

UNKNOWN_CLIENT = "unknown"

_REPORT_LINE = re.compile(rf"(\d{{1,10}}) ([ -~]{{1,{MAX_REASON}}})")
_SUMMARY_LINE = re.compile(
    r"distccd\[(\d{1,10})\] \(dcc_job_summary\) client: (\S{1,64}) COMPILE_ERROR "
    rf"exit:{REFUSED_STATUS} "
)


@dataclass(frozen=True, slots=True)
class Refusal:
    """A refused job: who sent it, why, and whether this pair is new (log it)."""

    client: str
    reason: str
    first: bool


def parse_report(text: str) -> list[tuple[int, str]]:
    """(pid, reason) of each well-formed line of the guard's report file."""
    found = []
    for line in text.splitlines():
        match = _REPORT_LINE.fullmatch(line[: MAX_REASON + 12])
        if match:
            found.append((int(match.group(1)), match.group(2)))
    return found


def parse_summaries(text: str) -> list[tuple[int, str]]:
    """(pid, client address) of each job summary distccd logged for a refused job."""
    found = []
    for line in text.splitlines():
        match = _SUMMARY_LINE.search(line)
        if match:
            address = match.group(2).rpartition(":")[0] or match.group(2)
            found.append((int(match.group(1)), address))
    return found


class GuardRefusals:
    """Refusals counted by reason and client; whether the guard is in place, and why not."""

    def __init__(self) -> None:
        self.problem: str | None = "not checked yet"
        self.total = 0
        self._by_reason: Counter[str] = Counter()
        self._by_client: Counter[str] = Counter()
        self._logged: set[tuple[str, str]] = set()
        self._reports: deque[tuple[int, str]] = deque()
        self._summaries: deque[tuple[int, str]] = deque()

    def set_problem(self, problem: str | None) -> None:
        """None: every job runs guarded; else why distccd does not serve."""
        self.problem = problem

    def add(
        self, reports: list[tuple[int, str]], summaries: list[tuple[int, str]]
    ) -> list[Refusal]:
        """New report lines and summaries, in file order: the refusals they complete."""
        self._reports.extend(reports)
        self._summaries.extend(summaries)
        joined = []
        for pid, reason in list(self._reports):
            client = self._take_summary(pid)
            if client is None:
                continue
            self._reports.remove((pid, reason))
            joined.append(self._count(client, reason))
        while len(self._reports) > MAX_PENDING:
            joined.append(self._count(UNKNOWN_CLIENT, self._reports.popleft()[1]))
        while len(self._summaries) > MAX_PENDING:
            self._summaries.popleft()
        return joined

    def _take_summary(self, pid: int) -> str | None:
        for entry in self._summaries:
            if entry[0] == pid:
                self._summaries.remove(entry)
                return entry[1]
        return None

    def _count(self, client: str, reason: str) -> Refusal:
        self.total += 1
        for counter, key in ((self._by_reason, reason), (self._by_client, client)):
            if key in counter or len(counter) < MAX_KEYS:
                counter[key] += 1
        pair = (client, reason)
        first = pair not in self._logged and len(self._logged) < MAX_KEYS
        if first:
            self._logged.add(pair)
        return Refusal(client, reason, first)

    def by_reason(self) -> dict[str, int]:
        return dict(sorted(self._by_reason.items()))

    def by_client(self) -> dict[str, int]:
        return dict(sorted(self._by_client.items()))

    def as_document(self) -> dict[str, object]:
        """The status document's `job_guard` object (docs/status-json.md)."""
        return {
            "problem": self.problem,
            "refusals": self.total,
            "by_reason": self.by_reason(),
            "by_client": self.by_client(),
        }
