"""The insecure-pool banner of `p2pcc status`: above the table, wrapped, only when due."""

from __future__ import annotations

from typing import Any

from p2pcc.cli.status_banner import INSECURE_BANNER, banner_lines
from p2pcc.cli.status_view import render_status


def document(insecure: bool) -> dict[str, Any]:
    return {
        "generated_at": 0.0,
        "node": {
            "name": "ws1",
            "addresses": ["10.0.0.1"],
            "state": "active",
            "compilers": [],
            "insecure": insecure,
        },
        "peers": [],
        "stock_servers": [],
        "hosts": {},
    }


def test_an_insecure_pool_gets_a_banner_above_the_table() -> None:
    text = render_status(document(True), width=60)
    lines = text.splitlines()
    assert lines[0].startswith("WARNING: unauthenticated pool (gossip.insecure = true).")
    assert all(len(line) <= 60 for line in lines)
    banner = " ".join(lines[: len(banner_lines({"insecure": True}, 60, False))])
    assert banner == INSECURE_BANNER
    assert "ws1" in text


def test_a_keyed_pool_has_none() -> None:
    assert "WARNING" not in render_status(document(False))
    assert banner_lines({}, 80, False) == []  # an older daemon says nothing: no banner


def test_the_banner_is_red_on_a_colour_terminal() -> None:
    lines = banner_lines({"insecure": True}, 100, True)
    assert lines
    assert all(line.startswith("\x1b[31m") and line.endswith("\x1b[0m") for line in lines)
