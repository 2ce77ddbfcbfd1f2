"""The state file format shared by the daemon (writer) and the wrapper (reader)."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from p2pcc import statefile
from p2pcc.core import limits
from p2pcc.core.hosts import host_spec, local_entry
from p2pcc.safe_files import replace_file
from tests.core.policies import default_policy
from tests.core.roomy_peers import BASE

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


# --- trust: only root's or the caller's file, in root's or the caller's directory -------

NOBODY = 65534
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="giving a file away needs root")


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """A valid state file, ours, 0644, in a directory of ours, 0700."""
    directory = tmp_path / "run"
    directory.mkdir(mode=0o700)
    path = directory / statefile.FILE_NAME
    replace_file(path, statefile.render(5.0, HOSTS, COMPILERS).encode())
    return path


def read_as(path: Path, uids: tuple[int, ...]) -> tuple[statefile.Parsed | None, str]:
    return statefile.read_trusted(str(path), uids)


def test_our_own_file_in_our_own_directory_is_read(state: Path) -> None:
    assert read_as(state, (0, os.getuid())) == ((5.0, HOSTS, COMPILERS, {}), "")
    assert read_as(state.parent / "absent", (0, os.getuid())) == (None, "")
    assert read_as(state.parent / "nodir" / "state", (0, os.getuid())) == (None, "")


def test_a_file_of_someone_else_is_not_trusted(state: Path) -> None:
    stranger = os.getuid() + 1
    parsed, why = read_as(state, (stranger,))
    assert parsed is None
    assert why == (
        f"not trusting the state file {state}: it belongs to uid {os.getuid()}, "
        f"not to uid {stranger}"
    )


@as_root
def test_root_trusts_only_roots_files_and_a_user_also_their_own(state: Path) -> None:
    os.chown(state, NOBODY, NOBODY)
    parsed, why = read_as(state, (0, 0))  # `trusted_uids()` when root runs the build
    assert parsed is None
    assert f"belongs to uid {NOBODY}, not to root" in why
    assert read_as(state, (0, NOBODY))[0] is not None  # nobody's own view
    os.chown(state, 0, 0)
    os.chown(state.parent, NOBODY, NOBODY)  # root's file in nobody's directory
    assert read_as(state, (0, NOBODY))[0] is not None
    assert read_as(state, (0, 0))[1].endswith(
        f": its directory {state.parent} belongs to uid {NOBODY}, not to root"
    )


@pytest.mark.parametrize(
    ("mode", "writers"),
    [(0o664, "its group"), (0o646, "others"), (0o666, "its group and others")],
)
def test_a_file_others_may_write_is_not_trusted(state: Path, mode: int, writers: str) -> None:
    state.chmod(mode)
    assert read_as(state, (0, os.getuid())) == (
        None,
        f"not trusting the state file {state}: it is writable by {writers}",
    )


@pytest.mark.parametrize(("mode", "writers"), [(0o770, "its group"), (0o1757, "others")])
def test_a_directory_others_may_write_is_not_trusted(state: Path, mode: int, writers: str) -> None:
    state.parent.chmod(mode)
    parsed, why = read_as(state, (0, os.getuid()))
    assert parsed is None
    assert why.endswith(f": its directory {state.parent} is writable by {writers}")


def test_a_link_or_a_fifo_in_the_files_place_is_not_followed(state: Path) -> None:
    real = state.with_name("real-state")
    state.rename(real)
    state.symlink_to(real)  # to a perfectly good state file: still not read
    parsed, why = read_as(state, (0, os.getuid()))
    assert parsed is None
    assert why == f"not trusting the state file {state}: it is a symbolic link, not a regular file"
    state.unlink()
    os.mkfifo(state)
    assert "it is a FIFO, not a regular file" in read_as(state, (0, os.getuid()))[1]


def test_a_trusted_file_that_is_not_a_state_file_says_so(state: Path) -> None:
    state.write_text("p2pcc-state 1\nwritten\tsoon\n")
    parsed, why = read_as(state, (0, os.getuid()))
    assert parsed is None
    assert why == f"{state} is not a p2pcc state file (corrupt, or another version)"
    state.write_bytes(statefile.HEADER.encode() + b"\n" + b"x" * statefile.MAX_BYTES)
    assert "not a p2pcc state file" in read_as(state, (0, os.getuid()))[1]


# --- the hosts line: exactly the core's grammar ------------------------------------------

scope_ids = st.from_regex(r"[A-Za-z0-9_.-]{1,15}", fullmatch=True)
ipv4 = st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))
ipv6 = st.builds(
    lambda n, scope: str(ipaddress.IPv6Address(n)) + (f"%{scope}" if scope else ""),
    st.integers(0, 2**128 - 1) | st.sampled_from([0, 1, 0xFFFF00000000 + 0x01020304]),
    st.none() | scope_ids,
)
remote_hosts = st.tuples(
    ipv4 | ipv6, st.integers(1, limits.MAX_PORT), st.integers(1, limits.MAX_SLOTS), st.booleans()
)


@given(st.lists(remote_hosts, max_size=6), st.integers(-3, limits.MAX_SLOTS + 3), st.data())
@example([("::ffff:1.2.3.4", 3632, 4, True), ("fe80::1%eth0", 1, 1, False)], 8, None)
def test_every_line_the_core_renders_parses_back_to_itself(
    remotes: list[tuple[str, int, int, bool]], local_slots: int, data: st.DataObject | None
) -> None:
    specs = [host_spec(*remote) for remote in remotes]
    where = 0 if data is None else data.draw(st.integers(0, len(specs)))
    specs.insert(where, local_entry(BASE, local_slots, default_policy()).spec)
    line = " ".join(specs)
    assert statefile.parse_hosts_line(line) == line


def test_the_slot_bound_is_the_cores() -> None:
    assert statefile.MAX_HOST_SLOTS == limits.MAX_SLOTS
    assert statefile.parse_hosts_line(f"localhost/{limits.MAX_SLOTS}") is not None
    assert statefile.parse_hosts_line(f"localhost/{limits.MAX_SLOTS + 1}") is None


@pytest.mark.parametrize(
    "line",
    [
        "",
        "localhost/2 ",  # an empty word
        "localhost/2  10.0.0.2:3632/4",
        "localhost",  # no job limit
        "localhost/0",
        "localhost/02",
        "localhost/2,lzo",  # never written for localhost
        "10.0.0.2/4",  # no port: distcc's default would decide
        "10.0.0.2:3632",
        "10.0.0.2:0/4",
        "10.0.0.2:65536/4",
        "10.0.0.2:3632/4,cpp",
        "10.0.0.2:3632/4,lzo,cpp",
        "10.0.0.02:3632/4",  # a leading zero: octal to inet_aton
        "10.0.0:3632/4",
        "256.0.0.1:3632/4",
        "build.example.com:3632/4",  # a name: DNS on every compile
        "fe80::1:3632/4",  # IPv6 without brackets
        "[fe80::1%eth0 x]:3632/4",
        "[fe80::1%]:3632/4",
        "[1.2.3.4::]:3632/4",
        "[1::2::3]:3632/4",
        "[1:2:3:4:5:6:7:8:9]:3632/4",
        "[1:2:3:4:5:6:7]:3632/4",
        "[FE80::1]:3632/4",  # not how ipaddress spells it
        "user@10.0.0.2/4",  # ssh: distcc would run a command there
        "@10.0.0.2/4",
        "--randomize",
        "--localslots=99",
        "10.0.0.2:3632/4 --randomize",
        "10.0.0.2:3632/4 -wrapper",
        "10.0.0.2:3632/4\x00",
        "10.0.0.2:3632/٤",  # a digit, but not an ASCII one
        "10.0.0.2:3632/99999999999999999999",
    ],
)
def test_anything_else_in_a_hosts_line_is_refused(line: str) -> None:
    assert statefile.parse_hosts_line(line) is None
