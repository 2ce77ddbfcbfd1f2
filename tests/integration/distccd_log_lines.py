"""The jobs a distccd log reports: one `JobRecord` per `dcc_job_summary` line.

Test support only (the daemon does not read distccd's log): the integration tests use it
to see which workstation's distccd served which job.  distccd 3.x with `--log-level info`
writes one such line per job, naming the client, the outcome and the compiler the client
asked for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One job distccd finished, from its `dcc_job_summary` log line."""

    worker_pid: int
    client: str  # "address:port"
    status: str  # "COMPILE_OK", "COMPILE_ERROR", "OTHER", ...
    exit_code: int
    signal: int
    ret: int  # distccd's own status; 0 when the job was served
    seconds: float  # connection accepted to result sent, client preprocessing included
    compiler: str  # as the client named it, "" when the job failed before that
    source: str

    @property
    def compiler_name(self) -> str:
        """The name the client asked for: a distccd behind p2pcc's job guard logs the
        guard script it ran instead (`runtime_dir/guard/NAME`, docs/distccd.md)."""
        return self.compiler.rpartition("/")[2] if "/guard/" in self.compiler else self.compiler

    @property
    def ok(self) -> bool:
        """The job compiled and its object went back to the client."""
        return self.status == "COMPILE_OK" and self.exit_code == 0 and self.ret == 0


_JOB_SUMMARY = re.compile(
    # Digit counts are bounded: int() refuses numbers over 4300 digits, and must not raise.
    r"distccd\[(?P<pid>\d{1,10})\]:? \(dcc_job_summary\) client: (?P<client>\S+)"
    r" (?P<status>[A-Z_]+) exit:(?P<exit>\d{1,10}) sig:(?P<sig>\d{1,10}) core:\d{1,10}"
    r" ret:(?P<ret>\d{1,10}) time:(?P<ms>\d{1,15})ms"
    r"(?: (?P<compiler>\S+))?(?: (?P<source>.*))?$"
)


def parse_distccd_job_line(line: str) -> JobRecord | None:
    """The job a distccd 3.x log line reports, or None for any other line (never raises)."""
    match = _JOB_SUMMARY.search(line.rstrip("\r\n"))
    if match is None:
        return None
    return JobRecord(
        worker_pid=int(match["pid"]),
        client=match["client"],
        status=match["status"],
        exit_code=int(match["exit"]),
        signal=int(match["sig"]),
        ret=int(match["ret"]),
        seconds=int(match["ms"]) / 1000,
        compiler=match["compiler"] or "",
        source=(match["source"] or "").rstrip(),
    )
