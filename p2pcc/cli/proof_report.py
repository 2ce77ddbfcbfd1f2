"""The daemon's proofs of its peers by a real compile, under `p2pcc status`'s table,
from the status document's `proofs` (docs/status-json.md).

Under the table: one line for every pair whose last proof failed (a different
object first: it takes the peer out of that compiler's hosts line), then one line that
sums up the rest (`proofs: 3 ok (41-95 ms), 1 not yet`).  The document's text came
partly from peers, so control characters are escaped.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, tzinfo
from typing import Any

from p2pcc.core.proof import Outcome


def proof_lines(document: Mapping[str, Any], tz: tzinfo | None = None) -> list[str]:
    """The lines under the status table; none when no peer offers our compilers."""
    entries = [e for e in document.get("proofs") or [] if isinstance(e, Mapping)]
    failed, passed, waiting = [], [], 0
    for entry in entries:
        last = entry.get("last")
        if not isinstance(last, Mapping):
            waiting += 1
        elif last.get("outcome") == Outcome.OK.value:
            passed.append(_number(last.get("seconds")))
        else:
            failed.append(_failed_line(entry, last, tz))
    if not entries:
        return []
    summary = f"proofs: {len(passed)} ok"
    times = sorted(seconds * 1000 for seconds in passed if seconds is not None)
    if times:
        summary += f" ({times[0]:.0f}-{times[-1]:.0f} ms)"
    if failed:
        summary += f", {len(failed)} failed"
    if waiting:
        summary += f", {waiting} not yet"
    return [*sorted(failed, key=lambda line: "different object" not in line), summary]


def _failed_line(entry: Mapping[str, Any], last: Mapping[str, Any], tz: tzinfo | None) -> str:
    at = _number(last.get("at"))
    when = "?" if at is None else _clock(at, tz)
    line = (
        f"proof: {text(entry.get('name'))}: {text(last.get('outcome'))} for "
        f"{text(entry.get('compiler'))} at {when}"
    )
    if last.get("detail"):
        line += f" ({text(last.get('detail'))})"
    if entry.get("excluded") is True:
        line += ": left out of its hosts line"
    return line


def _clock(timestamp: float, tz: tzinfo | None) -> str:
    try:
        return datetime.fromtimestamp(timestamp, tz).strftime("%H:%M")
    except (OverflowError, OSError, ValueError):
        return "?"


def text(value: object) -> str:
    """`value` if a string (else "?"), control characters escaped."""
    shown = value if isinstance(value, str) else "?"
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in shown)


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None
