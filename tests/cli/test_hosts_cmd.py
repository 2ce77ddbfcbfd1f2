"""`p2pcc hosts` and `p2pcc jobs`: the wrapper's view of the state file, for scripts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from p2pcc import cli
from tests.wrapper.bed import WrapperBed


@pytest.fixture
def bed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> WrapperBed:
    wrapper_bed = WrapperBed(tmp_path)
    monkeypatch.setenv("PATH", f"{wrapper_bed.links}:{wrapper_bed.realbin}")
    monkeypatch.delenv("P2PCC_RUNTIME_DIR", raising=False)
    return wrapper_bed


def run(bed: WrapperBed, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = cli.main([*args, "--config", str(bed.config)])
    out, err = capsys.readouterr()
    return status, out, err


def test_hosts_prints_the_line_the_wrapper_would_use(
    bed: WrapperBed, capsys: pytest.CaptureFixture[str]
) -> None:
    bed.write_state("10.0.0.2:3632/4 localhost/2 10.0.0.3:3632/2")
    assert run(bed, capsys, "hosts", "gcc") == (
        0,
        "10.0.0.2:3632/4 localhost/2 10.0.0.3:3632/2\n",
        "",
    )


def test_hosts_defaults_to_cc(bed: WrapperBed, capsys: pytest.CaptureFixture[str]) -> None:
    (bed.realbin / "cc").symlink_to("gcc")
    bed.write_state("10.0.0.2:3632/4 localhost/2")
    status, out, _ = run(bed, capsys, "hosts")
    assert (status, out) == (0, "10.0.0.2:3632/4 localhost/2\n")


def test_hosts_without_peers_says_the_compile_stays_local(
    bed: WrapperBed, capsys: pytest.CaptureFixture[str]
) -> None:
    bed.write_state("localhost/2")
    assert run(bed, capsys, "hosts", "gcc") == (
        0,
        "localhost/2\n",
        "p2pcc: no peer has gcc's compiler now: it compiles locally\n",
    )


def test_hosts_with_the_daemon_down_exits_3(
    bed: WrapperBed, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(bed, capsys, "hosts", "gcc")
    assert (status, out) == (3, "")
    assert "the p2pcc daemon is not running" in err
    assert "the wrapper compiles gcc locally" in err
    bed.write_state(age=600)
    status, out, err = run(bed, capsys, "hosts", "gcc")
    assert (status, out) == (3, "")
    assert "has not updated" in err


def test_hosts_for_an_unknown_or_missing_compiler(
    bed: WrapperBed, capsys: pytest.CaptureFixture[str]
) -> None:
    bed.write_state(compilers={})
    status, out, err = run(bed, capsys, "hosts", "gcc")
    assert (status, out) == (1, "")
    assert "is not a compiler the p2pcc daemon knows" in err
    status, _, err = run(bed, capsys, "hosts", "no-such-cc")
    assert status == 1
    assert err == "p2pcc: no no-such-cc on PATH (outside p2pcc link directories)\n"


def test_hosts_accepts_a_path(bed: WrapperBed, capsys: pytest.CaptureFixture[str]) -> None:
    bed.write_state("10.0.0.9:3632/1 localhost/2")
    status, out, _ = run(bed, capsys, "hosts", str(bed.gcc))
    assert (status, out) == (0, "10.0.0.9:3632/1 localhost/2\n")


def test_jobs_prints_the_recommended_j(bed: WrapperBed, capsys: pytest.CaptureFixture[str]) -> None:
    bed.write_state()  # the bed's record recommends -j6
    assert run(bed, capsys, "jobs", "gcc") == (0, "6\n", "")


def test_jobs_without_the_daemon_is_this_machines_cpu_count(
    bed: WrapperBed, capsys: pytest.CaptureFixture[str]
) -> None:
    cpus = len(os.sched_getaffinity(0))
    status, out, err = run(bed, capsys, "jobs", "gcc")
    assert (status, out) == (0, f"{cpus}\n")
    assert f"-j{cpus} for this machine alone" in err
