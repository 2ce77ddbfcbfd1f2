"""The door's line in `status` and its `doctor` check."""

from __future__ import annotations

from typing import Any

from p2pcc.cli.doctor_checks import Level
from p2pcc.cli.door_report import check_door, door_line
from p2pcc.cli.status_view import render_status

UP = {"table": "p2pcc_door_3632", "members": 3, "refused": 12, "open_networks": [], "problem": None}
DOWN = {**UP, "members": 0, "problem": "cannot set up distccd's door: Operation not permitted"}


def status(door: dict[str, Any] | None) -> dict[str, Any]:
    return {"node": {"name": "alpha", "door": door}}


def test_the_status_line_counts_members_and_refusals() -> None:
    assert door_line({"door": UP}) == "door: 3 member address(es) admitted, 12 refused"
    assert door_line({"door": {**UP, "open_networks": ["10.0.0.0/24"]}}) == (
        "door: 3 member address(es) admitted, 12 refused; also open to 10.0.0.0/24"
    )
    assert render_status(status(UP)).splitlines()[-1].startswith("door: 3 member")


def test_a_door_that_is_not_up_says_distccd_does_not_serve() -> None:
    assert door_line({"door": DOWN}) == (
        "door: NOT UP, distccd does not serve: cannot set up distccd's door: "
        "Operation not permitted"
    )
    assert door_line({"door": {**DOWN, "problem": "bad\x1b[31m"}}) == (
        "door: NOT UP, distccd does not serve: bad\\x1b[31m"
    )
    assert door_line({}) is None  # an older daemon: no line


def test_doctor_fails_without_nft_or_a_door_and_is_happy_with_one() -> None:
    assert check_door(status(UP), None).level is Level.OK  # the daemon found it
    assert check_door(status(None), None).level is Level.FAIL
    assert "apt install nftables" in check_door(None, None).fix
    assert check_door(None, "/usr/sbin/nft").level is Level.WARN
    assert check_door(status(None), "/usr/sbin/nft").level is Level.WARN
    down = check_door(status(DOWN), "/usr/sbin/nft")
    assert (down.level, down.check) == (Level.FAIL, "door")
    assert "Operation not permitted" in down.message
    assert "restart" in down.fix
    up = check_door(status({**UP, "open_networks": ["10.0.0.0/24"]}), "/usr/sbin/nft")
    assert up.line() == (
        "ok    door: distccd admits only loopback, 3 pool member address(es) and 10.0.0.0/24; "
        "12 connection(s) refused"
    )
