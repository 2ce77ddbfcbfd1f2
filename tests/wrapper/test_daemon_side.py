"""The daemon's part of the masquerade: compilers found past the link directories, and
their checked `-march=native` expansions in the state file."""

from __future__ import annotations

import shutil
from functools import partial
from pathlib import Path

import pytest
import trio

from p2pcc import cli, statefile
from p2pcc.daemon.compilers import find_compilers, serve_compiler_watch
from p2pcc.daemon.state_writer import render_state
from tests.daemon.test_node import make_node

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")


@pytest.fixture
def links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    (tmp_path / "c.toml").write_text(f'runtime_dir = "{tmp_path}"\n')
    link_dir = tmp_path / "links"
    assert cli.main(["install-links", str(link_dir), "--config", str(tmp_path / "c.toml")]) == 0
    return link_dir


def test_compilers_are_found_past_the_link_directories(links: Path, tmp_path: Path) -> None:
    env = {"PATH": f"{links}:/usr/bin:/bin", "P2PCC_CACHE_DIR": str(tmp_path / "cache")}
    [gcc] = find_compilers(["gcc"], env)
    assert gcc.fingerprint.command == "/usr/bin/gcc"  # not the link, which runs the wrapper
    assert all(not path.startswith(str(links)) for path, _ in gcc.commands)
    assert all(not binary.path.startswith(str(links)) for binary in gcc.fingerprint.binaries)


async def test_the_watch_adds_native_expansions_to_the_state_file(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "P2PCC_CACHE_DIR": str(tmp_path / "cache")}
    node = make_node(1)
    node.set_compilers(find_compilers(["gcc"], env), 0.0)
    assert statefile.parse(render_state(node, 1.0)) is not None
    assert node.native_records() == {}
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(serve_compiler_watch, node, ["gcc"], env, period=3600))
        with trio.fail_after(60):
            while not node.native_records():
                await node.changed.wait_until(trio.current_time() + 0.5)
        nursery.cancel_scope.cancel()
    parsed = statefile.parse(render_state(node, 1.0), native_key="-march=native")
    assert parsed is not None
    [(fingerprint, expansions)] = parsed[3].items()
    assert fingerprint == node.compilers[0].fingerprint.id
    assert expansions["-march=native"][0].startswith("-march=")
