"""`p2pcc fingerprint`: text and JSON output, partial failures and exit statuses."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from p2pcc.cli import main
from p2pcc.config.schema import DEFAULT_COMPILERS

JSON_FIELDS = {
    "name",
    "id",
    "family",
    "language",
    "version",
    "major",
    "triple",
    "loose_key",
    "remote_name",
    "command",
    "real_path",
    "binaries",
    "remote_name_checks",
}
NOT_FOUND = "p2pcc: compiler 'no-such-cc' was not found on PATH; install it or give its full path\n"


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("P2PCC_CACHE_DIR", str(cache))
    return cache


def headings(out: str) -> list[str]:
    """The "<name>: <id>" line opening each compiler's block."""
    return re.findall(r"^(\S+): [0-9a-f]{16}$", out, flags=re.MULTILINE)


def test_text_output_describes_the_compiler(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fingerprint", "gcc"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert headings(out) == ["gcc"]
    for line in (
        "  family       gcc",
        "  language     c",
        "  triple       x86_64-linux-gnu",
        "  loose key    x86_64-linux-gnu--12",
        "  remote name  x86_64-linux-gnu-gcc-12",
        "    ✓ x86_64-linux-gnu-gcc-12: /usr/bin/x86_64-linux-gnu-gcc-12",
        "  command      /usr/bin/gcc -> /usr/bin/x86_64-linux-gnu-gcc-12",
    ):
        assert line in out.splitlines()
    assert re.search(r"^    cc1 +[0-9a-f]{64}  /usr/lib/gcc/x86_64-linux-gnu/12/cc1$", out, re.M)
    assert re.search(r"^    as +[0-9a-f]{64}  /\S+as$", out, re.M)


def test_json_output_lists_every_documented_field(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fingerprint", "--json", "gcc", "clang++"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [set(item) for item in listed] == [JSON_FIELDS, JSON_FIELDS]
    gcc, clangxx = listed
    assert (gcc["name"], gcc["language"], gcc["major"], gcc["loose_key"]) == (
        "gcc",
        "c",
        "12",
        "x86_64-linux-gnu--12",
    )
    assert (clangxx["family"], clangxx["language"], clangxx["remote_name"]) == (
        "clang",
        "c++",
        "clang++-14",
    )
    assert re.fullmatch(r"[0-9a-f]{16}", gcc["id"])
    assert {"driver", "cc1", "cc1plus", "as"} <= {binary["role"] for binary in gcc["binaries"]}
    assert clangxx["remote_name_checks"][-1] == {
        "name": "clang++-14",
        "accepted": True,
        "detail": "/usr/bin/clang++-14",
    }


def test_a_failure_is_one_line_and_the_others_are_still_shown(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["fingerprint", "gcc", "no-such-cc", "g++"]) == 1
    out, err = capsys.readouterr()
    assert headings(out) == ["gcc", "g++"]
    assert err == NOT_FOUND


def test_json_with_a_failure_lists_the_successes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fingerprint", "--json", "no-such-cc", "cc"]) == 1
    out, err = capsys.readouterr()
    assert [item["name"] for item in json.loads(out)] == ["cc"]
    assert err == NOT_FOUND


def test_nothing_probed_prints_nothing_but_the_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["fingerprint", "no-such-cc", str(tmp_path / "gcc")]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        NOT_FOUND.rstrip("\n"),
        f"p2pcc: compiler {tmp_path / 'gcc'} does not exist; check the path",
    ]


def test_default_compilers_are_those_found_on_path(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fingerprint"]) == 0
    expected = [name for name in DEFAULT_COMPILERS if shutil.which(name)]
    assert expected  # gcc and clang are installed on the test machine
    assert headings(capsys.readouterr().out) == expected


def test_no_compiler_on_path_is_an_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["fingerprint"]) == 1
    assert capsys.readouterr().err.startswith(
        "p2pcc: none of cc, c++, gcc, g++, clang, clang++ is on PATH;"
    )


def test_the_cache_is_written_unless_told_not_to(
    capsys: pytest.CaptureFixture[str], private_cache: Path
) -> None:
    assert main(["fingerprint", "--no-cache", "gcc"]) == 0
    uncached = capsys.readouterr().out
    assert not private_cache.exists()
    assert main(["fingerprint", "gcc"]) == 0
    assert capsys.readouterr().out == uncached
    assert (private_cache / "fingerprints").read_text().startswith("p2pcc-fingerprints 1\n")
