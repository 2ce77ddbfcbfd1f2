"""How `p2pcc status` shows a peer's measured turnaround (`peers[].turnaround` in the
status document, p2pcc.core.turnaround): one short cell, `9.8x 11.8s (6)` — the relative
figure, the median seconds, the jobs measured — with a dash for what is not known.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from p2pcc.cli.text_table import Symbols


def turnaround_cell(figures: Mapping[str, Any], symbols: Symbols) -> str:
    """The cell for a peer's `turnaround` object; `symbols.dash` alone when nothing was
    measured (or the object is not one)."""
    jobs, median = figures.get("jobs"), _number(figures.get("median"))
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs <= 0 or median is None:
        return symbols.dash
    relative = _number(figures.get("relative"))
    ratio = symbols.dash if relative is None else f"{relative:.1f}{symbols.times}"
    return f"{ratio} {median:.1f}s ({jobs})"


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None
