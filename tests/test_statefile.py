"""The state file format shared by the daemon (writer) and the wrapper (reader)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pcc import statefile
from p2pcc.safe_files import replace_file

HOSTS = {
    "a1b2c3d4e5f60718": (9, "10.0.0.2:3632/4 localhost/2 10.0.0.3:3632/3"),
    "0011223344556677": (2, "localhost/2"),
}


COMPILERS = {
    "/usr/bin/gcc": ("2049:1234:1000:1700000000000000000", "a1b2c3d4e5f60718", "x86-gcc-12"),
}


def test_render_is_exact() -> None:
    assert statefile.render(1700000000.5, HOSTS, COMPILERS) == (
        "p2pcc-state 1\n"
        "written\t1700000000.5\n"
        "hosts\t0011223344556677\t2\tlocalhost/2\n"
        "hosts\ta1b2c3d4e5f60718\t9\t10.0.0.2:3632/4 localhost/2 10.0.0.3:3632/3\n"
        "compiler\t/usr/bin/gcc\t2049:1234:1000:1700000000000000000\ta1b2c3d4e5f60718\tx86-gcc-12\n"
    )


def test_round_trip_through_a_file(tmp_path: Path) -> None:
    path = str(tmp_path / "state")
    replace_file(path, statefile.render(12.25, HOSTS, COMPILERS).encode())
    assert statefile.read(path) == (12.25, HOSTS, COMPILERS, {})
    assert [p.name for p in tmp_path.iterdir()] == ["state"]  # no temp file left behind


def test_unknown_records_are_ignored() -> None:
    text = statefile.render(3.0, HOSTS) + "future\tsomething\tnew\n"
    assert statefile.parse(text) == (3.0, HOSTS, {}, {})


@pytest.mark.parametrize(
    "text",
    [
        "",
        "p2pcc-state 2\nwritten\t1.0\n",
        "p2pcc-state 1\n",  # no written record: age unknown
        "p2pcc-state 1\nwritten\tnan\n",
        "p2pcc-state 1\nwritten\tsoon\n",
        "p2pcc-state 1\nwritten\t1.0\nhosts\tabc\tmany\tlocalhost/2\n",
        "\x00\x01garbage",
    ],
)
def test_corrupt_text_is_not_a_state_file(text: str) -> None:
    assert statefile.parse(text) is None


def test_missing_binary_and_oversized_files_read_as_none(tmp_path: Path) -> None:
    assert statefile.read(str(tmp_path / "absent")) is None
    (tmp_path / "binary").write_bytes(b"p2pcc-state 1\n\xff\xfe")
    assert statefile.read(str(tmp_path / "binary")) is None
    (tmp_path / "huge").write_text(statefile.HEADER + "\n" + "x" * statefile.MAX_BYTES)
    assert statefile.read(str(tmp_path / "huge")) is None


def test_a_tab_in_a_hosts_line_is_refused() -> None:
    with pytest.raises(ValueError, match="contains a tab or newline"):
        statefile.render(1.0, {"ab": (1, "a\tb")})
    with pytest.raises(ValueError, match="compiler record field"):
        statefile.render(1.0, {}, {"/odd\npath": ("1:2:3:4", "ab", "gcc")})


@given(st.binary(max_size=300))
def test_any_bytes_parse_or_give_none(data: bytes) -> None:
    result = statefile.parse(data.decode("utf-8", "replace"))
    assert result is None or isinstance(result[0], float)


def test_import_costs_nothing_beyond_os() -> None:
    root = str(Path(statefile.__file__).parent.parent)
    code = (
        f"import os, sys; sys.path.insert(0, {root!r}); before = set(sys.modules); "
        "import p2pcc.statefile; print(sorted(set(sys.modules) - before))"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == "['p2pcc', 'p2pcc.safe_files', 'p2pcc.statefile']"
