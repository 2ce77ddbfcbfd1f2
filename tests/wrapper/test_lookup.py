"""Finding the real compiler past the link directories, and naming it from the state file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from p2pcc import statefile
from p2pcc.compilers import cache
from p2pcc.safe_files import replace_file
from p2pcc.wrapper import lookup, main
from p2pcc.wrapper.lookup import MARKER, find_real, identify, remote_hosts


def executable(path: Path, text: str = "#!/bin/sh\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def test_link_directories_and_non_executables_are_skipped(tmp_path: Path) -> None:
    links = tmp_path / "links"
    executable(links / "gcc")
    (links / MARKER).write_text("")
    plain = tmp_path / "plain"
    (plain / "gcc").parent.mkdir()
    (plain / "gcc").write_text("not executable")
    (tmp_path / "dir" / "gcc").mkdir(parents=True)  # a directory named gcc
    real = executable(tmp_path / "real" / "gcc")
    entries = [str(links), str(plain), str(tmp_path / "dir"), "/nonexistent", str(real.parent)]
    found = find_real("gcc", entries)
    assert found is not None
    assert found[0] == str(real)
    assert found[1].st_ino == real.stat().st_ino


def test_our_own_entry_script_under_another_name_is_skipped(tmp_path: Path) -> None:
    entry = executable(tmp_path / "links" / lookup.ENTRY_NAME)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "cc").symlink_to(entry)
    own = lookup.file_identity(str(entry))
    assert find_real("cc", [str(tmp_path / "elsewhere")], own) is None
    assert find_real("cc", [str(tmp_path / "elsewhere")]) is not None


def test_empty_path_entries_mean_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    executable(tmp_path / "cc")
    monkeypatch.chdir(tmp_path)
    assert lookup.path_dirs("/nonexistent::/also-not") == ["/nonexistent", "", "/also-not"]
    found = find_real("cc", lookup.path_dirs("/nonexistent::"))
    assert found is not None
    assert found[0] == "./cc"


def test_without_link_dirs_keeps_order_and_the_rest(tmp_path: Path) -> None:
    marked = tmp_path / "marked"
    marked.mkdir()
    (marked / MARKER).write_text("")
    entries = ["/usr/bin", str(marked), "", "/bin", str(marked)]
    assert lookup.without_link_dirs(entries) == ["/usr/bin", "", "/bin"]


def test_a_replaced_compiler_gets_a_new_stamp(tmp_path: Path) -> None:
    """A package upgrade replaces the file (new inode) or rewrites it (new size or time):
    either way its old record must stop matching."""
    gcc = executable(tmp_path / "gcc")
    before = statefile.stamp_of(os.stat(gcc))
    assert statefile.stamp_of(os.stat(gcc)) == before
    executable(tmp_path / "gcc.new", "#!/bin/sh\nexit 0\n").replace(gcc)
    assert statefile.stamp_of(os.stat(gcc)) != before


GCC = ("1:10:100:1000", "aaaaaaaaaaaaaaaa", "x86_64-linux-gnu-gcc-12")
GXX = ("1:11:100:1000", "bbbbbbbbbbbbbbbb", "x86_64-linux-gnu-g++-12")
CLANG = ("1:20:100:1000", "cccccccccccccccc", "clang-14")
CLANGXX = ("1:20:100:1000", "dddddddddddddddd", "clang++-14")
RECORDS = {
    "/usr/bin/gcc": GCC,
    "/usr/bin/cc": GCC,
    "/usr/bin/g++": GXX,
    "/usr/bin/clang": CLANG,
    "/usr/bin/clang++": CLANGXX,
}


def status_with(stamp: str) -> os.stat_result:
    dev, ino, size, mtime = (int(part) for part in stamp.split(":"))
    fields = [0o100755, ino, dev, 1, 0, 0, size, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    fields[8] = mtime // 1_000_000_000
    return os.stat_result((*fields[:10],), {"st_mtime_ns": mtime})


@pytest.mark.parametrize(
    ("path", "name", "stamp", "expected"),
    [
        ("/usr/bin/gcc", "gcc", GCC[0], GCC[1:]),  # the very name the daemon probed
        ("/usr/bin/gcc", "gcc", "1:10:100:2000", None),  # changed since: not trusted
        ("/usr/bin/gcc-12", "gcc-12", GCC[0], GCC[1:]),  # same file, same language
        ("/usr/bin/x86_64-linux-gnu-g++-12", "x86_64-linux-gnu-g++-12", GXX[0], GXX[1:]),
        ("/usr/bin/clang-14", "clang-14", CLANG[0], CLANG[1:]),  # C, not clang++'s
        ("/usr/bin/clang++-14", "clang++-14", CLANG[0], CLANGXX[1:]),
        ("/opt/gcc-13/bin/gcc", "gcc", "9:9:9:9", None),  # unknown file
    ],
)
def test_compilers_are_identified_by_path_else_by_stamp_and_language(
    path: str, name: str, stamp: str, expected: tuple[str, str] | None
) -> None:
    assert identify(path, status_with(stamp), name, RECORDS) == expected


def test_a_stamp_shared_by_two_fingerprints_of_one_language_is_ambiguous() -> None:
    records = {"/a/cc": GCC, "/b/cc": (GCC[0], "eeeeeeeeeeeeeeee", "other-gcc")}
    assert identify("/c/gcc", status_with(GCC[0]), "gcc", records) is None


def test_the_fingerprint_cache_is_the_fallback(tmp_path: Path) -> None:
    compiler = executable(tmp_path / "gcc")
    cache = tmp_path / "fingerprints"
    stamp = statefile.stamp_of(os.stat(compiler))
    binary = ["driver", str(compiler), "0" * 64, stamp]
    fields = [str(compiler), stamp, "f" * 16, "gcc", "c", "key", "gcc-99", "x86_64", "99.1"]
    cache.write_text(f"p2pcc-fingerprints 1\n{chr(9).join([*fields, *binary])}\n")
    assert lookup.identify_cached(str(compiler), str(cache)) == ("f" * 16, "gcc-99")
    assert lookup.identify_cached(str(compiler), str(tmp_path / "missing")) is None


@pytest.mark.parametrize(
    ("line", "remote"),
    [
        ("localhost/2", []),
        ("10.0.0.2:3632/4 localhost/2", ["10.0.0.2:3632/4"]),
        ("--randomize localhost/2 [fd00::2]:3632/2,lzo", ["[fd00::2]:3632/2,lzo"]),
        ("127.0.0.1:4000/2", ["127.0.0.1:4000/2"]),  # loopback over TCP is a server
        ("localhost", []),
        ("", []),
    ],
)
def test_remote_hosts_of_a_line(line: str, remote: list[str]) -> None:
    assert remote_hosts(line) == remote


def test_native_records_round_trip_through_the_state_file(tmp_path: Path) -> None:
    natives = {
        "aaaaaaaaaaaaaaaa": {
            "-march=native": ("-march=znver3", "--param=l1-cache-size=32"),
            "-mtune=native,-march=*": (),
        }
    }
    hosts = {"aaaaaaaaaaaaaaaa": (3, "localhost/3")}
    path = str(tmp_path / "state")
    replace_file(path, statefile.render(5.0, hosts, {}, natives).encode())
    for key, flags in natives["aaaaaaaaaaaaaaaa"].items():
        only = {"aaaaaaaaaaaaaaaa": {key: flags}}
        assert statefile.read(path, native_key=key) == (5.0, hosts, {}, only)
    text = statefile.render(5.0, hosts, {}, natives)
    assert "native\taaaaaaaaaaaaaaaa\t-mtune=native,-march=*\n" in text
    assert statefile.parse(text) == (5.0, hosts, {}, {})  # no key: no native records
    assert statefile.parse(text, native_key="-mcpu=native") == (5.0, hosts, {}, {})


def test_make_dirs_creates_parents_and_accepts_existing(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "c"
    lookup.make_dirs(str(target))
    assert target.is_dir()
    lookup.make_dirs(str(target))  # exists already: fine
    (tmp_path / "file").write_text("")
    with pytest.raises(FileExistsError):
        lookup.make_dirs(str(tmp_path / "file"))


def test_the_environment_names_the_files_the_cli_and_the_daemon_use() -> None:
    settings = main.Settings(
        state_files=["/run/p2pcc/state"],
        cache_file="/cache/fingerprints",
        link_dir="/links",
        distcc="distcc",
        state_max_age=10.0,
    )
    assert settings.state_files_for({}) == ("/run/p2pcc/state",)
    assert settings.cache_file_for({}) == "/cache/fingerprints"
    env = {"P2PCC_RUNTIME_DIR": "/elsewhere/run", "P2PCC_CACHE_DIR": "/elsewhere/cache"}
    assert settings.state_files_for(env) == (f"/elsewhere/run/{statefile.FILE_NAME}",)
    assert settings.cache_file_for(env) == cache.cache_file(env)
