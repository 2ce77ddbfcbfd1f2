"""`p2pcc remeasure` against a real control server."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import trio

from p2pcc.cli import main
from p2pcc.cli.remeasure_cmd import describe_remeasured
from p2pcc.core.control_protocol import BAD_ARGUMENT, ControlError
from tests.cli.control_fixtures import UnexpectedHandler, daemon, run_cli

PEERS = ("ws2", "ws3")


class RemeasureHandler(UnexpectedHandler):
    """Knows two peers, ws3 judged slow; records each remeasure."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[str, ...], int]] = []

    def remeasure(self, peers: tuple[str, ...], uid: int) -> dict[str, Any]:
        self.calls.append((peers, uid))
        if set(peers) - set(PEERS):
            raise ControlError(BAD_ARGUMENT, "no peer named 'ws9' (peers: ws2, ws3)")
        chosen = list(peers or PEERS)
        return {"forgotten": chosen, "judged_slow": [p for p in chosen if p == "ws3"]}


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        ((), "remeasuring ws2, ws3 from their next jobs; judged slow before: ws3"),
        (("ws2",), "remeasuring ws2 from their next jobs"),
    ],
)
async def test_remeasure_names_what_it_forgot(
    capsys: pytest.CaptureFixture[str],
    runtime_dir: Path,
    config_file: str,
    argv: tuple[str, ...],
    line: str,
) -> None:
    handler = RemeasureHandler()
    with trio.fail_after(10):
        async with daemon(runtime_dir, handler):
            status = await run_cli("remeasure", *argv, "--config", config_file)
    out, err = capsys.readouterr()
    assert (status, out, err) == (0, line + "\n", "")
    assert handler.calls == [(argv, os.getuid())]


async def test_an_unknown_peer_is_an_error_naming_the_known_ones(
    capsys: pytest.CaptureFixture[str], runtime_dir: Path, config_file: str
) -> None:
    with trio.fail_after(10):
        async with daemon(runtime_dir, RemeasureHandler()):
            status = await run_cli("remeasure", "ws2", "ws9", "--config", config_file)
    out, err = capsys.readouterr()
    assert (status, out) == (1, "")
    assert err == "p2pcc: no peer named 'ws9' (peers: ws2, ws3)\n"


def test_without_a_daemon_the_exit_status_is_3(
    capsys: pytest.CaptureFixture[str], config_file: str
) -> None:
    assert main(["remeasure", "--config", config_file]) == 3
    assert "not running" in capsys.readouterr().err


def test_a_result_without_peers_says_so() -> None:
    assert describe_remeasured({"forgotten": [], "judged_slow": []}) == "no peer to remeasure"
    assert describe_remeasured({"odd": 1}) == "{'odd': 1}"


def test_the_peers_proven_again_are_named() -> None:
    result = {"forgotten": ["ws2", "ws3"], "judged_slow": [], "proving": ["ws3"]}
    assert describe_remeasured(result) == (
        "remeasuring ws2, ws3 from their next jobs; proving again when this machine is idle: ws3"
    )
