"""The fingerprint cache: hits run nothing, changes re-probe, damage is survived."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from p2pcc.compilers import cache
from p2pcc.compilers.cache import HEADER, MAX_BYTES, MAX_ENTRIES, lookup_cached, read_lines
from p2pcc.compilers.probe import lookup, probe
from tests.compilers.fake_compiler import FakeCompiler


def cache_path(fake: FakeCompiler) -> str:
    return cache.cache_file(fake.env)


def entry(command: str, fingerprint: str = "0123456789abcdef") -> str:
    """A well-formed cache line with made-up values."""
    fields = [command, "1:2:3:4", fingerprint, "gcc", "c", "x86_64-linux-gnu--12", "gcc-12"]
    fields += ["x86_64-linux-gnu", "12.2.0", "driver", "/usr/bin/gcc-12", "a" * 64, "1:2:3:4"]
    return "\t".join(fields)


# --- hits -------------------------------------------------------------------------------


def test_second_lookup_runs_no_process(fake_gcc: FakeCompiler) -> None:
    first = lookup("gcc", fake_gcc.env)
    runs = fake_gcc.runs()
    assert runs > 0
    assert lookup("gcc", fake_gcc.env) == first
    assert fake_gcc.runs() == runs


def test_hot_lookup_serves_the_wrapper_without_running_anything(fake_gcc: FakeCompiler) -> None:
    command = str(fake_gcc.path)
    assert lookup_cached(command, cache_path(fake_gcc)) is None
    fingerprint = lookup(command, fake_gcc.env)
    runs = fake_gcc.runs()
    hit = lookup_cached(command, cache_path(fake_gcc))
    assert hit is not None
    assert (hit.fingerprint, hit.family, hit.language, hit.loose_key, hit.remote_name) == (
        fingerprint.id,
        "gcc",
        "c",
        "x86_64-linux-gnu--12",
        "gcc",
    )
    assert fake_gcc.runs() == runs


def test_hot_path_module_imports_nothing_but_itself() -> None:
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "from p2pcc.compilers.cache import lookup_cached\n"
        "lookup_cached('/usr/bin/cc', '/nonexistent/fingerprints')\n"
        "print(sorted(set(sys.modules) - before))\n"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True
    )
    modules = ["p2pcc", "p2pcc.compilers", "p2pcc.compilers.cache"]
    modules += ["p2pcc.safe_files", "p2pcc.statefile"]
    assert result.stdout.strip() == repr(modules)


def test_clang_and_clangxx_are_cached_apart(real_env: dict[str, str]) -> None:
    # One file, two fingerprints: the cache is keyed by the invoked path.
    ids = {name: lookup(name, real_env).id for name in ("clang", "clang++")}
    path = cache.cache_file(real_env)
    hits = {name: lookup_cached(f"/usr/bin/{name}", path) for name in ("clang", "clang++")}
    assert {name: hit.fingerprint if hit else None for name, hit in hits.items()} == ids
    assert ids["clang"] != ids["clang++"]


# --- invalidation -----------------------------------------------------------------------


def test_changed_mtime_reprobes(fake_gcc: FakeCompiler) -> None:
    first = lookup("gcc", fake_gcc.env)
    runs = fake_gcc.runs()
    status = fake_gcc.path.stat()
    os.utime(fake_gcc.path, ns=(status.st_atime_ns, status.st_mtime_ns + 10**9))
    assert lookup_cached(str(fake_gcc.path), cache_path(fake_gcc)) is None
    assert lookup("gcc", fake_gcc.env).id == first.id  # same bytes, same compiler
    assert fake_gcc.runs() > runs


def test_changed_size_reprobes_and_changes_the_id(fake_gcc: FakeCompiler) -> None:
    first = lookup("gcc", fake_gcc.env)
    runs = fake_gcc.runs()
    fake_gcc.append("# patched\n")
    second = lookup("gcc", fake_gcc.env)
    assert fake_gcc.runs() > runs
    assert second.id != first.id
    hit = lookup_cached(str(fake_gcc.path), cache_path(fake_gcc))
    assert hit is not None
    assert hit.fingerprint == second.id


def test_replaced_file_with_same_size_and_mtime_reprobes(fake_gcc: FakeCompiler) -> None:
    lookup("gcc", fake_gcc.env)
    runs = fake_gcc.runs()
    status = fake_gcc.path.stat()
    replacement = fake_gcc.path.with_name("gcc.new")
    replacement.write_bytes(fake_gcc.path.read_bytes())
    replacement.chmod(0o755)
    os.utime(replacement, ns=(status.st_atime_ns, status.st_mtime_ns))
    os.replace(replacement, fake_gcc.path)  # only the inode differs now
    assert lookup_cached(str(fake_gcc.path), cache_path(fake_gcc)) is None
    lookup("gcc", fake_gcc.env)
    assert fake_gcc.runs() > runs


def test_changed_helper_is_caught_by_the_full_lookup(fake_gcc: FakeCompiler) -> None:
    first = lookup("gcc", fake_gcc.env)
    runs = fake_gcc.runs()
    fake_gcc.cc1.write_text("fake cc1, rebuilt with another optimiser\n")
    # The hot path trusts the driver's stamp alone until a full lookup refreshes it.
    stale = lookup_cached(str(fake_gcc.path), cache_path(fake_gcc))
    assert stale is not None
    assert stale.fingerprint == first.id
    second = lookup("gcc", fake_gcc.env)
    assert fake_gcc.runs() > runs
    assert second.id != first.id
    fresh = lookup_cached(str(fake_gcc.path), cache_path(fake_gcc))
    assert fresh is not None
    assert fresh.fingerprint == second.id


def test_new_versioned_name_updates_the_remote_name_without_probing(
    fake_gcc: FakeCompiler,
) -> None:
    assert lookup("gcc", fake_gcc.env).remote_name == "gcc"
    runs = fake_gcc.runs()
    (fake_gcc.path.parent / "gcc-12").symlink_to("gcc")
    assert lookup("gcc", fake_gcc.env).remote_name == "gcc-12"
    assert fake_gcc.runs() == runs
    hit = lookup_cached(str(fake_gcc.path), cache_path(fake_gcc))
    assert hit is not None
    assert hit.remote_name == "gcc-12"


# --- damage -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\x00\xff\xfe\x80 binary garbage \x00" * 50,
        b"p2pcc-fingerprints 2\nfrom a newer p2pcc\n",
        b"p2pcc-state 1\nwritten\t1.0\n",
        HEADER.encode() + b"\nno tabs at all\nnot\tan\tentry\n\xff\xfe\t\t\t\n",
        HEADER.encode() + b"\n" + b"x" * (MAX_BYTES + 1),
    ],
    ids=["empty", "garbage", "newer", "foreign", "bad-lines", "huge"],
)
def test_damaged_cache_is_ignored_and_rebuilt(fake_gcc: FakeCompiler, content: bytes) -> None:
    expected = probe("gcc", fake_gcc.env).id
    path = Path(cache_path(fake_gcc))
    path.parent.mkdir()
    path.write_bytes(content)
    runs = fake_gcc.runs()
    assert lookup_cached(str(fake_gcc.path), str(path)) is None
    assert lookup("gcc", fake_gcc.env).id == expected
    assert fake_gcc.runs() > runs
    assert path.read_text().startswith(HEADER + "\n")
    hit = lookup_cached(str(fake_gcc.path), str(path))
    assert hit is not None
    assert hit.fingerprint == expected


def test_a_fifo_in_the_caches_place_does_not_block(fake_gcc: FakeCompiler) -> None:
    path = Path(cache_path(fake_gcc))
    path.parent.mkdir()
    os.mkfifo(path)
    code = (
        "import sys; from p2pcc.compilers.cache import lookup_cached\n"
        "print(lookup_cached(sys.argv[1], sys.argv[2]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(fake_gcc.path), str(path)],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    assert done.stdout.strip() == "None"
    assert lookup_cached(str(fake_gcc.path), "nul\0byte") is None


@pytest.mark.parametrize("keep", [0.3, 0.5, 0.9, 0.99])
def test_truncated_cache_is_survived(fake_gcc: FakeCompiler, keep: float) -> None:
    expected = lookup("gcc", fake_gcc.env).id
    path = Path(cache_path(fake_gcc))
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    hit = lookup_cached(str(fake_gcc.path), str(path))
    assert hit is None or hit.fingerprint == expected
    assert lookup("gcc", fake_gcc.env).id == expected
    assert path.read_bytes() == data  # rebuilt to the very same entry


@pytest.mark.parametrize("fields_kept", [1, 2, 3])
def test_entry_cut_after_its_first_fields_is_survived(
    fake_gcc: FakeCompiler, fields_kept: int
) -> None:
    expected = lookup("gcc", fake_gcc.env).id
    path = Path(cache_path(fake_gcc))
    header, line = path.read_text().splitlines()
    path.write_text(header + "\n" + "\t".join(line.split("\t")[:fields_kept]))
    assert lookup_cached(str(fake_gcc.path), str(path)) is None
    assert lookup("gcc", fake_gcc.env).id == expected
    assert path.read_text() == f"{header}\n{line}\n"


def test_cache_path_that_is_a_directory_means_no_caching(fake_gcc: FakeCompiler) -> None:
    Path(cache_path(fake_gcc)).mkdir(parents=True)
    first = lookup("gcc", fake_gcc.env)
    runs = fake_gcc.runs()
    assert lookup("gcc", fake_gcc.env) == first
    assert fake_gcc.runs() == 2 * runs  # probed again: nothing could be cached
    assert lookup_cached(str(fake_gcc.path), cache_path(fake_gcc)) is None


def test_uncreatable_cache_dir_means_no_caching(fake_gcc: FakeCompiler, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    env = {**fake_gcc.env, "P2PCC_CACHE_DIR": str(blocker / "cache")}
    first = lookup("gcc", env)
    assert lookup("gcc", env) == first
    assert not cache.store(cache.cache_file(env), entry("/usr/bin/gcc"))


# --- the file itself --------------------------------------------------------------------


def test_store_replaces_an_entry_and_keeps_the_newest(tmp_path: Path) -> None:
    path = str(tmp_path / "fingerprints")
    for index in range(MAX_ENTRIES + 5):
        assert cache.store(path, entry(f"/bin/cc{index}"))
    assert cache.store(path, entry("/bin/cc7", "fedcba9876543210"))
    lines = read_lines(path)
    assert len(lines) == MAX_ENTRIES
    assert lines[-1] == entry("/bin/cc7", "fedcba9876543210")
    assert lines[0] == entry("/bin/cc5")  # cc0 .. cc4 dropped as the oldest
    assert sum(line.startswith("/bin/cc7\t") for line in lines) == 1


def test_store_refuses_a_line_break_in_a_field(tmp_path: Path) -> None:
    path = str(tmp_path / "fingerprints")
    assert not cache.store(path, entry("/bin/odd\nname"))
    assert not os.path.exists(path)


def test_decode_entry_refuses_a_bad_hash() -> None:
    fields = entry("/usr/bin/gcc").split("\t")
    assert cache.decode_entry(fields) is not None
    fields[11] = "z" * 64
    assert cache.decode_entry(fields) is None


def test_concurrent_writers_never_crash_or_leave_a_broken_file(tmp_path: Path) -> None:
    path = str(tmp_path / "fingerprints")
    results: list[bool] = []

    def writer(number: int) -> None:
        results.extend(cache.store(path, entry(f"/bin/cc{number}-{i}")) for i in range(20))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [True] * 160
    lines = read_lines(path)
    assert lines
    assert all(cache.well_formed(line.split("\t")) for line in lines)
    assert os.listdir(tmp_path) == ["fingerprints"]  # no temp file left behind
