"""`p2pcc install-links`: which names get links, idempotence, --remove, never clobbering."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from p2pcc import cli
from p2pcc.cli.link_install import (
    COMPILER_NAME,
    known_symlinks,
    path_line,
    state_files,
)
from p2pcc.config import load_config
from p2pcc.wrapper.lookup import ENTRY_NAME, MARKER, PYTHON_ENTRY_NAME

LINKED = ["cc", "g++", "gcc", "gcc-12", "x86_64-linux-gnu-gcc-12", "clang++-14"]
NOT_LINKED = ["gcc-ar", "gcc-ar-12", "x86_64-linux-gnu-gcc-ar-12", "c89-gcc", "clang-tidy-14"]
NOT_LINKED += ["cc1", "ccache", "gcc-12-old", "x86_64-linux-gnu-as"]


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH with only our stand-in programs and a config with a private runtime dir."""
    directory = tmp_path / "bin"
    directory.mkdir()
    for name in [*LINKED, *NOT_LINKED]:
        (directory / name).write_text("#!/bin/sh\n")
        (directory / name).chmod(0o755)
    (directory / "g++-11").write_text("not executable")
    monkeypatch.setenv("PATH", str(directory))
    monkeypatch.setenv("P2PCC_CONFIG", str(tmp_path / "p2pcc.toml"))
    (tmp_path / "p2pcc.toml").write_text(f'runtime_dir = "{tmp_path / "run"}"\n')
    return directory


def install(link_dir: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    assert cli.main(["install-links", str(link_dir), *extra]) == 0
    return capsys.readouterr().out


def links_in(link_dir: Path) -> list[str]:
    return sorted(p.name for p in link_dir.iterdir() if p.is_symlink())


@pytest.mark.parametrize("name", LINKED)
def test_compiler_names_match(name: str) -> None:
    assert COMPILER_NAME.fullmatch(name)


@pytest.mark.parametrize("name", NOT_LINKED)
def test_other_programs_do_not(name: str) -> None:
    assert not COMPILER_NAME.fullmatch(name)


def test_install_links_every_compiler_and_prints_the_path_line(
    bin_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    link_dir = tmp_path / "links"
    out = install(link_dir, capsys)
    assert links_in(link_dir) == sorted(LINKED)
    assert all(os.readlink(link_dir / name) == ENTRY_NAME for name in LINKED)
    assert (link_dir / MARKER).is_file()
    entry = link_dir / ENTRY_NAME
    assert os.access(entry, os.X_OK)
    assert entry.read_text().startswith("#!/bin/sh\n")
    assert f"exec '{sys.executable}' -I -S '{link_dir}/{PYTHON_ENTRY_NAME}'" in entry.read_text()
    python_entry = link_dir / PYTHON_ENTRY_NAME
    assert repr((f"{tmp_path / 'run'}/state",)) in python_entry.read_text()
    assert stat.S_IMODE(python_entry.stat().st_mode) == 0o644  # run by the trampoline only
    assert stat.S_IMODE(entry.stat().st_mode) == 0o755
    assert f"links run the trampoline {entry} (/bin/sh)" in out
    assert out.splitlines()[-1] == f'export PATH="{link_dir}:$PATH"'
    assert "is not on PATH yet" in out


def test_install_is_idempotent_and_refreshes(
    bin_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    link_dir = tmp_path / "links"
    install(link_dir, capsys)
    before = {p.name: os.lstat(p).st_ino for p in link_dir.iterdir()}
    out = install(link_dir, capsys)
    assert "(0 new, 0 removed)" in out
    after = {p.name: os.lstat(p).st_ino for p in link_dir.iterdir()}
    assert after.keys() == before.keys()
    assert all(after[name] == before[name] for name in LINKED)  # links kept as they were
    (bin_dir / "gcc-12").unlink()  # a compiler uninstalled
    (bin_dir / "clang-14").write_text("#!/bin/sh\n")
    (bin_dir / "clang-14").chmod(0o755)  # and one installed
    out = install(link_dir, capsys)
    assert "(1 new, 1 removed)" in out
    assert links_in(link_dir) == sorted([*set(LINKED) - {"gcc-12"}, "clang-14"])


def test_install_never_clobbers_what_is_not_ours(
    bin_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    link_dir = tmp_path / "links"
    install(link_dir, capsys)
    (link_dir / "gcc").unlink()
    (link_dir / "gcc").write_text("my own gcc script")
    (link_dir / "cc").unlink()
    (link_dir / "cc").symlink_to("/usr/bin/true")
    out = install(link_dir, capsys)
    assert (link_dir / "gcc").read_text() == "my own gcc script"
    assert os.readlink(link_dir / "cc") == "/usr/bin/true"
    assert "gcc not linked" in out
    assert "a file that is not a p2pcc link" in out
    assert "cc not linked" in out
    assert "a link to /usr/bin/true, not ours" in out


def test_a_foreign_non_empty_directory_is_refused(
    bin_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["install-links", str(bin_dir)]) == 1
    err = capsys.readouterr().err
    assert "is not empty and holds no p2pcc links" in err
    assert not (bin_dir / MARKER).exists()
    assert not (bin_dir / ENTRY_NAME).exists()


def test_remove_takes_only_our_files(
    bin_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    link_dir = tmp_path / "links"
    install(link_dir, capsys)
    (link_dir / "notes.txt").write_text("mine")
    out = install(link_dir, capsys, "--remove")
    assert f"removed {len(LINKED) + 3} files" in out
    assert "left alone (not ours): notes.txt" in out
    assert sorted(p.name for p in link_dir.iterdir()) == ["notes.txt"]
    (link_dir / "notes.txt").unlink()
    install(link_dir, capsys)
    install(link_dir, capsys, "--remove")
    assert not link_dir.exists()  # empty once ours are gone: removed too
    assert "removed 0 files" in install(link_dir, capsys, "--remove")


def test_remove_refuses_a_directory_without_the_marker(
    bin_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["install-links", str(bin_dir), "--remove"]) == 1
    assert "holds no p2pcc links" in capsys.readouterr().err
    assert sorted(p.name for p in bin_dir.iterdir()) != []


def test_path_lines_are_quoted_for_the_shell(tmp_path: Path) -> None:
    odd = tmp_path / 'a "dir" with $HOME'
    line = path_line(odd)
    done = subprocess.run(
        ["sh", "-c", f'PATH=/x; {line}; printf %s "$PATH"'],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.stdout == f"{odd}:/x"


def test_a_user_without_a_configured_runtime_dir_also_finds_the_system_daemon(
    tmp_path: Path,
) -> None:
    (tmp_path / "c.toml").write_text("")
    env = {"HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(tmp_path / "xdg")}
    loaded = load_config(str(tmp_path / "c.toml"), env)
    files = state_files(loaded, env)
    if os.geteuid() == 0:
        assert files == ("/run/p2pcc/state",)
    else:
        assert files == (f"{tmp_path}/xdg/p2pcc/state", "/run/p2pcc/state")
    env["P2PCC_RUNTIME_DIR"] = str(tmp_path / "mine")
    assert state_files(load_config(str(tmp_path / "c.toml"), env), env) == (
        f"{tmp_path}/mine/state",
    )


def test_interpreter_and_directory_paths_with_blanks_and_quotes_work(
    bin_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    odd = tmp_path / "it's a dir"
    odd.mkdir()
    python = odd / "python 3"
    python.symlink_to(sys.executable)
    link_dir = odd / "links $HOME"
    install(link_dir, capsys, "--python", str(python))
    done = subprocess.run(
        [link_dir / "gcc", "-c", "x.c"],
        env={"PATH": f"{link_dir}:{bin_dir}", "P2PCC_VERBOSE": "1"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr  # Python ran (it says why it stays local)
    assert f"{bin_dir}/gcc -c x.c" in done.stderr


def test_symlinked_compilers_are_read_at_install_time(bin_dir: Path) -> None:
    (bin_dir / "gcc").unlink()
    (bin_dir / "gcc").symlink_to("gcc-12")
    (bin_dir / "cc").unlink()
    (bin_dir / "cc").symlink_to("ccache")  # a masquerade: left to the trampoline to judge
    marked = bin_dir.parent / "marked"
    marked.mkdir()
    (marked / MARKER).write_text("")
    (marked / "gcc").symlink_to(bin_dir / "gcc-12")
    known = known_symlinks(["cc", "gcc", "gcc-12"], [str(marked), str(bin_dir)])
    assert known == {f"{bin_dir}/gcc": str(bin_dir / "gcc-12")}


def test_a_directory_others_may_write_is_refused(
    bin_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    link_dir = tmp_path / "links"
    link_dir.mkdir()
    link_dir.chmod(0o777)
    assert cli.main(["install-links", str(link_dir)]) == 1
    assert f"`chmod go-w {link_dir}`" in capsys.readouterr().err
    assert not (link_dir / ENTRY_NAME).exists()


def test_another_interpreter_can_run_the_links(
    bin_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    python = "/usr/bin/python3"
    if not os.access(python, os.X_OK):
        pytest.skip("needs /usr/bin/python3")
    link_dir = tmp_path / "links"
    install(link_dir, capsys, "--python", python)
    assert f"exec '{python}' -I -S" in (link_dir / ENTRY_NAME).read_text()
    done = subprocess.run(
        [link_dir / "gcc", "x.o"],
        env={"PATH": f"{link_dir}:{bin_dir}", "P2PCC_VERBOSE": "1"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0
    assert f"{bin_dir}/gcc x.o" in done.stderr  # the stand-in gcc ran, through the links


def test_an_interpreter_that_is_not_python_311_is_refused(
    bin_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["install-links", str(tmp_path / "l"), "--python", "/bin/false"]) == 1
    assert "is not Python 3.11 or newer" in capsys.readouterr().err
    assert not (tmp_path / "l").exists()
