"""A compiler's names: resolving on PATH without our links, symlink chains, language and
remote name from the name a compiler is invoked by."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from p2pcc.compilers.names import resolve_command, symlink_names
from p2pcc.compilers.probe import probe


def test_resolve_keeps_the_invoked_path() -> None:
    assert resolve_command("cc", os.environ) == shutil.which("cc")
    assert resolve_command("/usr/bin/../bin/gcc", os.environ) == "/usr/bin/gcc"


def test_link_directories_are_skipped_when_resolving_a_compiler(tmp_path: Path) -> None:
    links = tmp_path / "links"
    links.mkdir()
    (links / ".p2pcc-links").write_text("")
    (links / "gcc").symlink_to("/bin/true")  # stands for our masquerade link
    env = {"PATH": f"{links}:/usr/bin"}
    assert resolve_command("gcc", env) == "/usr/bin/gcc"


def test_language_comes_from_the_invoked_name(tmp_path: Path) -> None:
    alias = tmp_path / "my++"
    alias.symlink_to("/usr/bin/clang")
    fingerprint = probe(str(alias), os.environ)
    assert fingerprint.language == "c++"
    assert fingerprint.id == probe("clang++", os.environ).id


def test_clangxx_without_a_versioned_name_falls_back_to_its_own_name(tmp_path: Path) -> None:
    alias = tmp_path / "clang++"
    alias.symlink_to("/usr/lib/llvm-14/bin/clang")
    fingerprint = probe("clang++", {"PATH": str(tmp_path)})
    assert fingerprint.remote_name == "clang++"
    details = {check.name: check.detail for check in fingerprint.remote_name_checks}
    assert details["clang"] == "/usr/lib/llvm-14/bin/clang does not mean C++"
    assert details["clang++"] == str(alias)


def test_symlink_names_follow_the_chain() -> None:
    assert symlink_names("/usr/bin/c++")[:3] == ["c++", "c++", "g++"]
    assert symlink_names("/usr/bin/x86_64-linux-gnu-gcc-12") == ["x86_64-linux-gnu-gcc-12"]
