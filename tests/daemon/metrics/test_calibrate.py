"""Power calibration with real compilers: measured once, cached per compiler and machine."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from p2pcc.core.metrics import calibrated_power
from p2pcc.daemon.metrics import calibrate
from p2pcc.daemon.metrics.calibrate import (
    CACHE_HEADER,
    benchmark_source,
    machine_key_of,
    parse_measurements,
    parse_power_cache,
    reference_seconds,
    render_power_cache,
)

MACHINE = "a1" * 8
OTHER_MACHINE = "b2" * 8
GCC12_ID = "1212121212121212"
GCC11_ID = "1111111111111111"


@dataclass(frozen=True)
class Compiler:
    """The fields of a Fingerprint that calibration reads."""

    id: str
    command: str
    family: str = "gcc"
    language: str = "c"
    major: str = "12"


def counting_wrapper(directory: Path, real: str) -> tuple[Path, Path]:
    """A script that records each call in a counter file, then runs the real compiler."""
    script, counter = directory / f"counting-{real}", directory / f"{real}.calls"
    script.write_text(f'#!/bin/sh\necho "$*" >> {counter}\nexec {real} "$@"\n')
    script.chmod(0o755)
    return script, counter


def calls(counter: Path) -> int:
    return len(counter.read_text().splitlines()) if counter.exists() else 0


needs_gcc = pytest.mark.skipif(
    not (shutil.which("gcc-12") and shutil.which("gcc-11") and shutil.which("g++-12")),
    reason="needs gcc-12, g++-12 and gcc-11",
)

# --- pure parts -------------------------------------------------------------------------


def test_the_benchmark_is_fixed_text_without_headers() -> None:
    source = benchmark_source()
    assert source == benchmark_source()
    assert "#include" not in source
    assert source.count("unsigned bench_") == calibrate.BENCH_FUNCTIONS


@needs_gcc
@pytest.mark.parametrize(("compiler", "suffix"), [("gcc-12", ".c"), ("g++-12", ".cc")])
def test_the_benchmark_is_valid_c_and_cxx(tmp_path: Path, compiler: str, suffix: str) -> None:
    source = tmp_path / f"bench{suffix}"
    source.write_text(benchmark_source(2))
    result = subprocess.run(
        [compiler, "-Wall", "-Wextra", "-Werror", "-fsyntax-only", str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_reference_seconds_fall_back_to_the_nearest_version() -> None:
    assert reference_seconds("gcc", "c", "12") == 0.200
    assert reference_seconds("gcc", "c", "13") == 0.200  # nearest: 12
    assert reference_seconds("gcc", "c++", "9") == 0.160  # nearest: 11
    assert reference_seconds("clang", "c", "17") == 0.152
    assert reference_seconds("icc", "c", "2021") == calibrate.DEFAULT_REFERENCE
    assert reference_seconds("gcc", "c", "x") == calibrate.DEFAULT_REFERENCE


def test_machine_keys_tell_machines_and_cpus_apart() -> None:
    key = machine_key_of("0123abcd\n", "AMD EPYC")
    assert len(key) == 16
    assert key == machine_key_of("0123abcd", " AMD EPYC ")
    assert key != machine_key_of("0123abce", "AMD EPYC")
    assert key != machine_key_of("0123abcd", "Intel Xeon")


def test_cache_round_trip_keeps_the_newest_entries() -> None:
    entries = {(f"{n:016x}", MACHINE): 0.1 + n / 1000 for n in range(70)}
    text = render_power_cache(entries, {("0000000000000045", MACHINE): [0.2, 0.169, 0.18]})
    assert text.splitlines()[0] == CACHE_HEADER
    assert (
        text.splitlines()[-1]
        == f"0000000000000045\t{MACHINE}\t0.169000\t0.200000 0.169000 0.180000"
    )
    parsed = parse_power_cache(text)
    assert len(parsed) == calibrate.MAX_CACHE_ENTRIES
    assert list(parsed) == list(entries)[-calibrate.MAX_CACHE_ENTRIES :]
    assert parsed["0000000000000045", MACHINE] == 0.169


def test_a_damaged_cache_costs_only_the_damaged_lines() -> None:
    lines = [
        CACHE_HEADER,
        f"{GCC12_ID}\t{MACHINE}\t0.25",
        f"{GCC11_ID}\t{MACHINE}\tnan",
        f"{GCC11_ID}\t{MACHINE}\t-1",
        f"short\t{MACHINE}\t0.3",
        f"{GCC11_ID}\t{MACHINE}",
        "\x00garbage",
    ]
    assert parse_power_cache("\n".join(lines)) == {(GCC12_ID, MACHINE): 0.25}
    assert parse_power_cache("p2pcc-power 1 bench-0\n" + "\n".join(lines[1:])) == {}
    assert parse_power_cache("") == {}


def test_parse_measurements() -> None:
    assert parse_measurements("0 0.25\n0 0.2\n") == ([0.25, 0.2], "")
    assert parse_measurements("0 0.25\n1 0.01\n") == ([0.25], "exit status 1")
    assert parse_measurements("error Permission denied\n") == ([], "Permission denied")


# --- real compilers ---------------------------------------------------------------------


@needs_gcc
@pytest.mark.integration
async def test_calibrates_once_and_reuses_the_cache(tmp_path: Path) -> None:
    gcc12, gcc12_calls = counting_wrapper(tmp_path, "gcc-12")
    gcc11, gcc11_calls = counting_wrapper(tmp_path, "gcc-11")
    compilers = [Compiler(GCC12_ID, str(gcc12)), Compiler(GCC11_ID, str(gcc11), major="11")]
    cache_dir = tmp_path / "cache"

    with trio.fail_after(60):
        first = await calibrate.calibrate(compilers, cache_dir, machine=MACHINE)
    assert (calls(gcc12_calls), calls(gcc11_calls)) == (3, 3)
    assert "-O2 -c" in gcc12_calls.read_text()
    cached = parse_power_cache((cache_dir / "power").read_text())
    assert list(cached) == [(GCC12_ID, MACHINE), (GCC11_ID, MACHINE)]
    assert first == {
        GCC12_ID: calibrated_power(0.200, cached[GCC12_ID, MACHINE]),
        GCC11_ID: calibrated_power(0.150, cached[GCC11_ID, MACHINE]),
    }
    assert all(0 < seconds < 10 for seconds in cached.values())

    with trio.fail_after(60):
        again = await calibrate.calibrate(reversed(compilers), cache_dir, machine=MACHINE)
    assert (calls(gcc12_calls), calls(gcc11_calls)) == (3, 3)  # nothing compiled
    assert again == first


@needs_gcc
@pytest.mark.integration
async def test_a_changed_compiler_or_machine_recalibrates(tmp_path: Path) -> None:
    gcc12, gcc12_calls = counting_wrapper(tmp_path, "gcc-12")
    gcc11, gcc11_calls = counting_wrapper(tmp_path, "gcc-11")
    old = [Compiler(GCC12_ID, str(gcc12)), Compiler(GCC11_ID, str(gcc11), major="11")]
    cache_dir = tmp_path / "cache"
    with trio.fail_after(60):
        await calibrate.calibrate(old, cache_dir, machine=MACHINE, runs=1)
        # gcc-12 was upgraded in place: same command, new fingerprint.
        upgraded = [Compiler("1313131313131313", str(gcc12)), old[1]]
        powers = await calibrate.calibrate(upgraded, cache_dir, machine=MACHINE, runs=1)
    assert set(powers) == {"1313131313131313", GCC11_ID}
    assert (calls(gcc12_calls), calls(gcc11_calls)) == (2, 1)

    with trio.fail_after(60):
        await calibrate.calibrate(old[1:], cache_dir, machine=OTHER_MACHINE, runs=1)
    assert (calls(gcc12_calls), calls(gcc11_calls)) == (2, 2)
    assert set(parse_power_cache((cache_dir / "power").read_text())) == {
        (GCC12_ID, MACHINE),
        (GCC11_ID, MACHINE),
        ("1313131313131313", MACHINE),
        (GCC11_ID, OTHER_MACHINE),
    }


@needs_gcc
@pytest.mark.integration
async def test_a_cxx_compiler_compiles_the_benchmark_as_cxx(tmp_path: Path) -> None:
    gxx, gxx_calls = counting_wrapper(tmp_path, "g++-12")
    with trio.fail_after(60):
        powers = await calibrate.calibrate(
            [Compiler(GCC12_ID, str(gxx), language="c++")], tmp_path, machine=MACHINE, runs=1
        )
    assert list(powers) == [GCC12_ID]
    assert "bench.cc" in gxx_calls.read_text()


async def test_a_failing_compiler_is_left_out_and_not_cached(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = tmp_path / "broken-cc"
    broken.write_text("#!/bin/sh\necho 'cc1: out of cheese' >&2\nexit 1\n")
    broken.chmod(0o755)
    compilers = [Compiler(GCC12_ID, str(broken)), Compiler(GCC11_ID, str(tmp_path / "absent"))]
    with trio.fail_after(30):
        assert await calibrate.calibrate(compilers, tmp_path, machine=MACHINE) == {}
    assert not (tmp_path / "power").exists()
    assert [record.getMessage() for record in caplog.records] == [
        f"calibration of {broken} failed: exit status 1: cc1: out of cheese",
        f"calibration of {tmp_path / 'absent'} failed: No such file or directory",
    ]


async def test_a_hung_compiler_is_killed_with_its_children(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    pid_file = tmp_path / "sleeper.pid"
    hung = tmp_path / "hung-cc"
    hung.write_text(f"#!/bin/sh\nsleep 600 &\necho $! > {pid_file}\nwait\n")
    hung.chmod(0o755)
    monkeypatch.setattr(calibrate, "CALIBRATION_TIMEOUT", 0.5)
    with trio.fail_after(30):
        assert await calibrate.calibrate([Compiler(GCC12_ID, str(hung))], tmp_path) == {}
    assert [record.getMessage() for record in caplog.records] == [
        f"calibration of {hung} took over 0.5s: skipped"
    ]
    stat = Path(f"/proc/{pid_file.read_text().strip()}/stat")
    # The grandchild got SIGKILL with the group: gone, or a zombie awaiting its reaper.  A
    # signalled process still has to be scheduled to die, which a busy machine delays.
    with trio.move_on_after(5):
        while not _gone_or_zombie(stat):
            await trio.sleep(0.01)
    assert _gone_or_zombie(stat)


def _gone_or_zombie(stat: Path) -> bool:
    try:
        return stat.read_text().split(") ")[1].startswith("Z")
    except (FileNotFoundError, ProcessLookupError):
        return True


@needs_gcc
@pytest.mark.integration
async def test_an_unwritable_cache_still_gives_results(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    not_a_directory = tmp_path / "cache"
    not_a_directory.write_text("")
    with trio.fail_after(60):
        powers = await calibrate.calibrate(
            [Compiler(GCC11_ID, "gcc-11", major="11")], not_a_directory, machine=MACHINE, runs=1
        )
    assert list(powers) == [GCC11_ID]
    assert any("not written" in record.getMessage() for record in caplog.records)
    assert list(tmp_path.iterdir()) == [not_a_directory]  # no stray temporary file
