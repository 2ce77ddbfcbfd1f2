"""Putting the job guard in place, and reading its refusals as they are appended."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
import trio

from p2pcc.core.errors import P2pccError
from p2pcc.core.guard_refusals import GuardRefusals
from p2pcc.core.job_guard import REFUSED_STATUS
from p2pcc.daemon.distccd.guard_files import (
    GuardPaths,
    find_bwrap,
    install_guard,
    offered_compilers,
    sandbox_problem,
    system_dirs,
)
from p2pcc.daemon.distccd.guard_watch import READ_CAP, Tail, serve_guard_refusals


def paths(tmp_path: Path) -> GuardPaths:
    (tmp_path / "distccd").mkdir()
    return GuardPaths.beside(tmp_path / "distccd")


def test_install_writes_scripts_list_and_a_private_job_directory(tmp_path: Path) -> None:
    where = paths(tmp_path)
    where.guard_dir.mkdir()
    (where.guard_dir / "stale-cc").write_text("old")
    install_guard(where, {"gcc": "/usr/bin/gcc", "cc": "/usr/bin/cc"}, "/usr/bin/bwrap", None)
    assert sorted(os.listdir(where.guard_dir)) == ["cc", "cmdlist", "gcc"]
    assert where.cmdlist.read_text() == f"{where.guard_dir}/cc\n{where.guard_dir}/gcc\n"
    assert stat.S_IMODE(where.cmdlist.stat().st_mode) == 0o644
    script = where.guard_dir / "gcc"
    assert stat.S_IMODE(script.stat().st_mode) == 0o755
    assert script.read_text().endswith(f"'--chdir' '{where.job_dir}' '--' '/usr/bin/gcc' \"$@\"\n")
    assert stat.S_IMODE(where.job_dir.stat().st_mode) == 0o700


def test_an_installed_guard_refuses_and_reports(tmp_path: Path) -> None:
    where = paths(tmp_path)
    install_guard(where, {"gcc": "/usr/bin/gcc"}, "/usr/bin/bwrap", None)
    run = subprocess.run(
        [str(where.guard_dir / "gcc"), "-c", "-wrapper", "/bin/sh"],
        capture_output=True,
        text=True,
        check=False,
        timeout=10,
    )
    assert run.returncode == REFUSED_STATUS
    assert run.stderr.startswith("p2pcc-guard: error: '-wrapper' is not on the job guard's")
    assert (
        where.report_file.read_text()
        == f"{os.getpid()} '-wrapper' is not on the job guard's allowlist\n"
    )


def test_offered_compilers_leave_out_masquerades_and_what_is_outside_usr(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    distcc = bin_dir / "distcc"
    distcc.write_text("#!/bin/sh\n")
    distcc.chmod(0o755)
    (bin_dir / "gcc").symlink_to(distcc)
    mine = bin_dir / "mycc"
    mine.write_text("#!/bin/sh\n")
    mine.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin"}
    found = offered_compilers({"gcc", "mycc", "no-such-cc", "true"}, env)
    assert found == {"true": "/usr/bin/true"}


def test_system_dirs_describe_this_system() -> None:
    for directory in system_dirs():
        assert os.path.islink(directory.path) == (directory.target is not None)


def test_missing_bwrap_says_what_to_install() -> None:
    with pytest.raises(P2pccError, match="apt install bubblewrap"):
        find_bwrap({"PATH": "/nonexistent"})


def test_a_failing_bwrap_is_explained(tmp_path: Path) -> None:
    fake = tmp_path / "bwrap"
    fake.write_text(
        "#!/bin/sh\necho 'bwrap: No permissions to creating new namespace' >&2\nexit 1\n"
    )
    fake.chmod(0o755)
    problem = sandbox_problem(str(fake), None)
    assert problem is not None
    assert "No permissions to creating new namespace" in problem
    assert "user namespaces" in problem


def test_real_bwrap_builds_the_sandbox() -> None:
    assert sandbox_problem(find_bwrap(dict(os.environ)), None) is None


def test_tail_reads_whole_appended_lines(tmp_path: Path) -> None:
    path = tmp_path / "report"
    tail = Tail(path)
    assert tail.read_lines() == ""
    path.write_text("1 a\n2 b")
    assert tail.read_lines() == "1 a\n"
    with path.open("a") as file:
        file.write(" and more\n")
    assert tail.read_lines() == "2 b and more\n"
    path.unlink()
    path.write_text("3 c\n")  # a new file: from its start
    assert tail.read_lines() == "3 c\n"


def test_tail_skips_an_endless_line_and_ignores_what_is_not_a_file(tmp_path: Path) -> None:
    path = tmp_path / "report"
    path.write_bytes(b"x" * (READ_CAP + 10) + b"\n5 r\n")
    tail = Tail(path)
    assert tail.read_lines() == ""
    assert tail.read_lines().endswith("5 r\n")
    path.unlink()
    os.mkfifo(path)
    assert Tail(path).read_lines() == ""
    path.unlink()
    path.symlink_to("/etc/passwd")
    assert Tail(path).read_lines() == ""


async def test_serve_guard_refusals_counts_what_both_files_say(tmp_path: Path) -> None:
    report, log_file = tmp_path / "report", tmp_path / "distccd.log"
    report.write_text("77 '-wrapper' is not on the job guard's allowlist\n")
    log_file.write_text(
        "distccd[77] (dcc_job_summary) client: 10.1.2.3:5555 COMPILE_ERROR exit:87 sig:0 x\n"
    )
    refusals = GuardRefusals()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_guard_refusals, report, log_file, refusals)
            while refusals.total == 0:
                await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    assert refusals.by_client() == {"10.1.2.3": 1}
