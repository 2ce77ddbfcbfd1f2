"""Aligned text tables that fit a width: cells cut with an ellipsis, columns dropped.

Pure text layout, no I/O.  Each column is first as wide as its widest cell; when the
table is too wide, cuttable columns lose width one column at a time, always from the
one furthest above its floor (`preferred` first, then `minimum`), and cells cut their
least important part first (see `Cell`).  Layouts are tried best first: whole cells
two spaces apart; then one space apart, cutting as needed; only when every column is at
its minimum do the columns marked `drop` go, lowest number first.  Widths are terminal
columns: wide East Asian characters count two, combining marks none.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

#: SGR code of the header row when colour is on.
BOLD = "1"


@dataclass(frozen=True, slots=True)
class Symbols:
    """The characters that are not ASCII, and their stand-ins for terminals without UTF-8."""

    tick: str = "✓"
    ellipsis: str = "…"
    dash: str = "—"  # a figure that is not known yet
    times: str = "×"  # a ratio, as in 9.8 times the others


UNICODE_SYMBOLS = Symbols()
ASCII_SYMBOLS = Symbols(tick="yes", ellipsis="...", dash="-", times="x")


@dataclass(frozen=True, slots=True)
class Cell:
    """Text that can be cut to a width, its least important parts first.

    Shown as `text (details, note)suffix`.  To fit, the note is cut with an ellipsis, then
    left out, then the details are left out from the last; only then is the text cut,
    keeping the suffix.
    """

    text: str
    details: tuple[str, ...] = ()  # shown whole or not at all, like "until 18:00"
    note: str = ""  # cut first, like a pause reason
    suffix: str = ""  # kept when the text is cut, like " (self)"
    colour: str = ""

    def full(self) -> str:
        """The cell with nothing cut."""
        return self._shown(self.details, self.note)

    def fit(self, width: int, ellipsis: str) -> str:
        """The longest form of the cell that is at most `width` wide."""
        if display_width(self.full()) <= width:
            return self.full()
        if self.note:
            room = width - display_width(self._shown(self.details, "x")) + 1
            if room >= display_width(ellipsis) + 3:
                return self._shown(self.details, truncate(self.note, room, ellipsis))
        for kept in range(len(self.details), -1, -1):
            text = self._shown(self.details[:kept], "")
            if display_width(text) <= width:
                return text
        if display_width(self.suffix) + 3 > width:
            return truncate(self.text + self.suffix, width, ellipsis)
        return truncate(self.text, width - display_width(self.suffix), ellipsis) + self.suffix

    def _shown(self, details: Sequence[str], note: str) -> str:
        inside = [*details, note] if note else list(details)
        return (f"{self.text} ({', '.join(inside)})" if inside else self.text) + self.suffix


@dataclass(slots=True)
class Column:
    """A header and one cell per row, cut when needed down to `preferred`, then `minimum`.

    A column with `minimum` 0 is never cut.
    """

    header: str
    cells: list[Cell]
    right: bool = False
    minimum: int = 0
    preferred: int = 0
    drop: int = 0  # when the table is too narrow, 1 goes first, then 2, 3; 0 stays
    width: int = field(init=False, default=0)

    def natural(self) -> int:
        """The width that shows every cell whole."""
        return max(display_width(cell.full()) for cell in [Cell(self.header), *self.cells])


def render_table(columns: list[Column], width: int, colour: bool, symbols: Symbols) -> list[str]:
    """Header and rows, at most `width` wide when dropping columns allows; SGR colour codes."""
    shown, gap = _fit(columns, width)
    rows = [[Cell(column.header, colour=BOLD) for column in shown]]
    rows += [[column.cells[index] for column in shown] for index in range(len(shown[0].cells))]
    return [_line(cells, shown, gap, colour, symbols) for cells in rows]


def _fit(columns: list[Column], width: int) -> tuple[list[Column], int]:
    """The columns to show, their widths set, and the gap between them."""
    # Best first: two spaces between whole columns; then one space, cutting text as far
    # as needed (to `preferred`, then to `minimum`); then dropping columns.
    layouts = [(0, 2, False)] + [
        (level, 1, True) for level in range(max(c.drop for c in columns) + 1)
    ]
    for dropped, gap, may_cut in layouts:
        shown = [column for column in columns if not 0 < column.drop <= dropped]
        for column in shown:
            column.width = column.natural()
        excess = sum(column.width for column in shown) + gap * (len(shown) - 1) - width
        if may_cut:
            excess = _cut(shown, excess, lambda c: max(c.preferred, c.minimum))
            excess = _cut(shown, excess, lambda c: c.minimum)
        if excess <= 0:
            break
    return shown, gap


def _cut(columns: list[Column], excess: int, floor: Callable[[Column], int]) -> int:
    """Take up to `excess` columns of width, always from the widest above its floor."""
    while excess > 0:
        cuttable = [c for c in columns if c.minimum > 0 and c.width > floor(c)]
        if not cuttable:
            break
        max(cuttable, key=lambda c: c.width - floor(c)).width -= 1
        excess -= 1
    return excess


def _line(cells: list[Cell], columns: list[Column], gap: int, colour: bool, sym: Symbols) -> str:
    parts = []
    for cell, column in zip(cells, columns, strict=True):
        text = cell.fit(column.width, sym.ellipsis)
        padding = " " * (column.width - display_width(text))
        shown = f"\x1b[{cell.colour}m{text}\x1b[0m" if colour and cell.colour and text else text
        parts.append(padding + shown if column.right else shown + padding)
    return (" " * gap).join(parts).rstrip()


def display_width(text: str) -> int:
    """Terminal columns: wide East Asian characters take two, combining marks none."""
    return sum(
        0 if unicodedata.combining(char) else 2 if unicodedata.east_asian_width(char) in "WF" else 1
        for char in text
    )


def truncate(text: str, width: int, ellipsis: str) -> str:
    """`text` if it fits `width`, else as much of it as fits before `ellipsis`."""
    if display_width(text) <= width:
        return text
    room = width - display_width(ellipsis)
    if room < 0:
        return ellipsis[: max(0, width)]
    kept = ""
    for char in text:
        if display_width(kept + char) > room:
            break
        kept += char
    return kept + ellipsis
