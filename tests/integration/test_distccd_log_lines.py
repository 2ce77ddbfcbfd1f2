"""distccd's job summary lines, as the integration tests read them (no root, no distccd)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.integration.distccd_log_lines import JobRecord, parse_distccd_job_line

# Captured from distccd 3.4 --log-level info on this project's Debian 12 machine.
LOG_OK = (
    "distccd[10058] (dcc_job_summary) client: 127.0.0.1:57522 COMPILE_OK exit:0 sig:0 "
    "core:0 ret:0 time:6176ms x86_64-linux-gnu-gcc slow.c"
)
LOG_ERROR = (
    "distccd[10059] (dcc_job_summary) client: 127.0.0.1:57536 COMPILE_ERROR exit:1 sig:0 "
    "core:0 ret:0 time:23ms x86_64-linux-gnu-gcc bad.c"
)
# A client that hung up before sending its job (note the trailing space).
LOG_OTHER = (
    "distccd[30337] (dcc_job_summary) client: 127.0.0.1:42650 OTHER exit:0 sig:0 core:0 "
    "ret:108 time:6ms "
)
# The same summary as logged through syslog (a user's report, distcc 3.x).
LOG_SYSLOG = (
    "Sep 17 16:51:38 pc46 distccd[17815]: (dcc_job_summary) client: 10.1.7.199:56978 "
    "COMPILE_OK exit:0 sig:0 core:0 ret:0 time:13250ms /opt/gcc-6.2.0/bin/g++ "
    "/home/u/src/my file.cpp"
)
# distccd 3.4 logs these around every job; the CPU times are always zero in 3.4.
LOG_OTHER_LINES = [
    "distccd[10058] (dcc_check_client) connection from 127.0.0.1:57522",
    "distccd[10058] compile from slow.c to slow.o",
    "distccd[10058] (dcc_r_file_timed) 256897 bytes received in 0.000569s, rate 440907kB/s",
    "distccd[10058] (dcc_collect_child) cc times: user 0.000000s, system 0.000000s, "
    "0 minflt, 0 majflt",
    "distccd[10058] x86_64-linux-gnu-gcc slow.c on localhost completed ok",
    "distccd[10058] job complete",
    "",
]


def test_a_real_job_summary_line() -> None:
    assert parse_distccd_job_line(LOG_OK + "\n") == JobRecord(
        worker_pid=10058,
        client="127.0.0.1:57522",
        status="COMPILE_OK",
        exit_code=0,
        signal=0,
        ret=0,
        seconds=6.176,
        compiler="x86_64-linux-gnu-gcc",
        source="slow.c",
    )


def test_failed_jobs_are_reported_as_such() -> None:
    error = parse_distccd_job_line(LOG_ERROR)
    other = parse_distccd_job_line(LOG_OTHER)
    assert error is not None
    assert other is not None
    assert (error.status, error.exit_code, error.ok) == ("COMPILE_ERROR", 1, False)
    assert (other.status, other.ret, other.compiler, other.source, other.ok) == (
        "OTHER",
        108,
        "",
        "",
        False,
    )


def test_a_syslog_line_with_a_path_and_a_space() -> None:
    record = parse_distccd_job_line(LOG_SYSLOG)
    assert record is not None
    assert (record.worker_pid, record.seconds, record.ok) == (17815, 13.25, True)
    assert (record.compiler, record.source) == ("/opt/gcc-6.2.0/bin/g++", "/home/u/src/my file.cpp")


@pytest.mark.parametrize(
    "line",
    [
        *LOG_OTHER_LINES,
        LOG_OK.replace("time:6176ms", "time:ms"),
        LOG_OK.replace("distccd[10058]", "distccd[" + "9" * 5000 + "]"),
        "\x00\xff garbage",
    ],
)
def test_other_lines_are_not_jobs(line: str) -> None:
    assert parse_distccd_job_line(line) is None


@given(st.text(max_size=400))
def test_parsing_any_text_never_raises(text: str) -> None:
    record = parse_distccd_job_line(text)
    assert record is None or record.seconds >= 0
