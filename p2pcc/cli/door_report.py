"""How `p2pcc status` and `p2pcc doctor` show distccd's door (`node.door` in the status
document, p2pcc.core.door): members admitted and connections refused, or why the door is
not up, in which case the daemon does not serve (it never runs distccd with an open door).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from p2pcc.cli.doctor_checks import START_DAEMON, Finding, fail, ok, warn

INSTALL_NFT = "install nftables (Debian/Ubuntu: `apt install nftables`)"
RESTART_AFTER_FIX = (
    "do what it says, then restart the daemon (`systemctl restart p2pcc`); docs/distccd.md, "
    "'The door'"
)


def door_line(node: Mapping[str, Any]) -> str | None:
    """The door's line under the status table; None for a daemon that reports no door."""
    door = node.get("door")
    if not isinstance(door, Mapping):
        return None
    problem = door.get("problem")
    if isinstance(problem, str):
        return f"door: NOT UP, distccd does not serve: {_printable(problem)}"
    members, refused = door.get("members"), door.get("refused")
    line = f"door: {_count(members)} member address(es) admitted, {_count(refused)} refused"
    networks = [str(n) for n in door.get("open_networks") or [] if isinstance(n, str)]
    if networks:
        line += f"; also open to {', '.join(_printable(n) for n in networks)}"
    return line


def check_door(status: Mapping[str, Any] | None, nft: str | None) -> Finding:
    """The daemon's door is up (distccd admits only pool members); `nft` is where the nft
    program is, None when it is missing (what the daemon says wins)."""
    door = status.get("node", {}).get("door") if status is not None else None
    if isinstance(door, Mapping):
        return _door_finding(door)
    if nft is None:
        return fail(
            "door",
            "nft is not installed: the daemon cannot keep strangers away from distccd, so it "
            "will not serve",
            INSTALL_NFT,
        )
    if status is None:
        return warn("door", "cannot tell: the daemon is not running", START_DAEMON)
    return warn("door", "the daemon reports no door (an older version?)", START_DAEMON)


def _door_finding(door: Mapping[str, Any]) -> Finding:
    problem = door.get("problem")
    if isinstance(problem, str):
        return fail("door", f"not up, so distccd does not serve: {problem}", RESTART_AFTER_FIX)
    networks = door.get("open_networks") or []
    also = f" and {', '.join(map(str, networks))}" if networks else ""
    return ok(
        "door",
        f"distccd admits only loopback, {_count(door.get('members'))} pool member address(es)"
        f"{also}; {_count(door.get('refused'))} connection(s) refused",
    )


def _count(value: object) -> str:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else "?"


def _printable(text: str) -> str:
    return text if text.isprintable() else text.encode("unicode_escape").decode()
