"""A link directory written by an older p2pcc (links pointing at a Python entry script)
keeps working, and `install-links` turns it into the trampoline layout in place."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from p2pcc.wrapper.lookup import ENTRY_NAME, PYTHON_ENTRY_NAME
from p2pcc.wrapper.trampoline import is_trampoline
from tests.wrapper.bed import REMOTE_NAME, WrapperBed

COMPILE = ["-O2", "-c", "a.c", "-o", "a.o"]


def make_old_layout(bed: WrapperBed) -> None:
    """What `install-links` wrote before the trampoline: `p2pcc-wrapper` the Python
    entry itself (`#!<python> -IS`), the links pointing at it, no `p2pcc-wrapper.py`."""
    entry = bed.links / ENTRY_NAME
    text = (bed.links / PYTHON_ENTRY_NAME).read_text().replace("del sys.argv[0]\n", "")
    entry.write_text(f"#!{sys.executable} -IS\n{text}")
    entry.chmod(0o755)
    (bed.links / PYTHON_ENTRY_NAME).unlink()


def test_an_old_layout_still_builds_and_is_upgraded_in_place(tmp_path: Path) -> None:
    bed = WrapperBed(tmp_path)
    bed.install()
    make_old_layout(bed)
    assert not is_trampoline(bed.links)
    bed.write_state()
    env = bed.env(DISTCC_DIR=str(tmp_path / "dd"))
    assert bed.run("gcc", COMPILE, env).argv == [str(bed.distcc), REMOTE_NAME, *COMPILE]
    links_before = {p.name: os.lstat(p).st_ino for p in bed.links.iterdir() if p.is_symlink()}

    bed.install()
    assert is_trampoline(bed.links)
    links_after = {p.name: os.lstat(p).st_ino for p in bed.links.iterdir() if p.is_symlink()}
    assert links_after == links_before  # the links stay; what they lead to changed
    assert bed.run("gcc", COMPILE, env).argv == [str(bed.distcc), REMOTE_NAME, *COMPILE]
    run = bed.run("gcc", ["a.o", "-o", "prog"], env)
    assert run.argv == [str(bed.gcc), "a.o", "-o", "prog"]
