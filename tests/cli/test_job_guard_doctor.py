"""How `p2pcc status` and `p2pcc doctor` show the job guard."""

from __future__ import annotations

from p2pcc.cli.doctor_checks import Level
from p2pcc.cli.doctor_guard import check_guard, guard_line
from p2pcc.core.guard_refusals import GuardRefusals


def document(refusals: GuardRefusals) -> dict[str, object]:
    return {"node": {"job_guard": refusals.as_document()}}


def test_the_status_line_counts_refusals_by_reason() -> None:
    refusals = GuardRefusals()
    refusals.set_problem(None)
    assert guard_line({"job_guard": refusals.as_document()}) == "job guard: 0 job(s) refused"
    refusals.add([(1, "'-wrapper' is not allowed"), (2, "x\x1b")], [(1, "10.0.0.2"), (2, "a")])
    line = guard_line({"job_guard": refusals.as_document()})
    assert line == "job guard: 2 job(s) refused ('-wrapper' is not allowed: 1; x\\x1b: 1)"
    assert guard_line({}) is None


def test_a_problem_means_not_serving_in_status_and_a_failure_in_doctor() -> None:
    refusals = GuardRefusals()
    refusals.set_problem("bwrap was not found on PATH: install bubblewrap")
    line = guard_line({"job_guard": refusals.as_document()})
    assert line is not None
    assert line.startswith("job guard: NOT IN PLACE, distccd does not serve: bwrap was not")
    finding = check_guard(document(refusals), "distccd")
    assert finding.level is Level.FAIL
    assert "install bubblewrap" in finding.line()


def test_doctor_is_ok_when_the_daemon_guards_jobs() -> None:
    refusals = GuardRefusals()
    refusals.set_problem(None)
    refusals.add([(1, "r")], [(1, "10.0.0.2")])
    finding = check_guard(document(refusals), "distccd")
    assert finding.level is Level.OK
    assert "1 refused" in finding.line()


def test_doctor_without_a_daemon_checks_bwrap_itself() -> None:
    finding = check_guard(None, "p2pcc-no-such-user-for-distccd")
    assert finding.level in (Level.FAIL, Level.WARN)
