"""Where a running daemon's CPU goes: py-spy samples summed by function.

`py-spy record --format raw` writes one line per distinct stack, frames separated by
`;`, ending with its sample count; idle samples are left out by py-spy, so every sample
is time on a CPU.  Self time is the innermost frame's, total time each frame's once per
stack.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections import Counter
from pathlib import Path

RATE = 100  # samples a second
TOP = 15


def profile_lines(
    py_spy: str, pid: int, seconds: float, rate: int = RATE, top: int = TOP
) -> list[str]:
    """Lines naming the functions with most self and total samples over `seconds`."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "stacks.txt"
        command = [
            py_spy, "record", "--gil", "--nonblocking", "--format", "raw", "--rate", str(rate),
            "--duration", str(int(seconds)), "--pid", str(pid), "--output", str(out),
        ]  # fmt: skip
        done = subprocess.run(
            command, check=False, capture_output=True, text=True, timeout=seconds + 60
        )
        if done.returncode != 0 or not out.exists():
            return [f"py-spy failed: {done.stderr.strip()[-300:]}"]
        own, total = summed(out.read_text())
    samples = sum(own.values())
    lines = [f"py-spy: {samples} samples on CPU in {seconds:.0f} s at {rate}/s"]
    for title, counts in (("self", own), ("total", total)):
        lines.append(f"top {title}:")
        for frame, count in counts.most_common(top):
            lines.append(f"  {100 * count / max(1, samples):5.1f} %  {frame}")
    return lines


def summed(text: str) -> tuple[Counter[str], Counter[str]]:
    """Self and total samples per frame in py-spy's raw output."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [_short(frame) for frame in stack.split(";")[1:]]  # [0] is the thread
        if not frames:
            continue
        own[frames[-1]] += int(count)
        for frame in set(frames):
            total[frame] += int(count)
    return own, total


def _short(frame: str) -> str:
    """`func (path/to/p2pcc/core/x.py:12)` as `func (core/x.py)`."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rpartition(":")[0]
    parts = Path(path).parts
    return f"{name} ({'/'.join(parts[-2:])})"
