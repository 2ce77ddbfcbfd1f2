"""The daemon's part of the masquerade: compilers found past the link directories, and
their checked `-march=native` expansions in the state file."""

from __future__ import annotations

import shutil
from functools import partial
from pathlib import Path

import pytest
import trio

from p2pcc import cli, statefile
from p2pcc.core.local_compilers import native_records
from p2pcc.core.node_change import Change
from p2pcc.daemon.changes import ChangeBoard
from p2pcc.daemon.compilers import find_compilers, serve_compiler_watch
from p2pcc.daemon.state_writer import render_state, state_content
from tests.core.local_nodes import make_node

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
    board = ChangeBoard()
    node = make_node(1, board.notify)
    node.set_compilers(find_compilers(["gcc"], env), 0.0)
    assert statefile.parse(render_state(state_content(node, 0.0), 1.0)) is not None
    assert native_records(node.compilers) == {}
    with board.subscribe(Change.COMPILERS) as compiler_changes:
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(serve_compiler_watch, node, ["gcc"], env, period=3600))
            with trio.fail_after(60):
                while not native_records(node.compilers):
                    await compiler_changes.wait()
            nursery.cancel_scope.cancel()
    content = state_content(node, trio.current_time())
    parsed = statefile.parse(render_state(content, 1.0), native_key="-march=native")
    assert parsed is not None
    [(fingerprint, expansions)] = parsed[3].items()
    assert fingerprint == node.compilers[0].fingerprint.id
    assert expansions["-march=native"][0].startswith("-march=")
