"""The people's view of the status document (docs/status-json.md): an aligned table.

Pure: a document, a width, colour or not, a time zone in; text out.  Rows are this
machine, then the peers in the order of the default compiler's host list (its `ranks`),
then the peers it cannot use (alive, suspect, dead, then by name), then stock distcc
servers.  The default compiler is the local one named `cc` (else the first).  Once this
machine has measured a job on any peer, a TURNAROUND column (turnaround_cell.py) follows
POWER.  To fit the width (text_table.py), the gaps narrow to one space and names,
addresses and pause reasons are cut with an ellipsis; only when that is not enough do
the address, power (with turnaround) and jobs columns go, in that order.  Text that came
from peers has its control characters escaped, so a peer cannot drive the terminal.
Lines on the door, the guard, the seeds and the proofs of peers follow the table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any, TypeGuard

from p2pcc.cli.doctor_guard import guard_line
from p2pcc.cli.door_report import door_line
from p2pcc.cli.proof_report import proof_lines
from p2pcc.cli.seed_report import seeds_line
from p2pcc.cli.status_banner import banner_lines
from p2pcc.cli.text_table import (
    UNICODE_SYMBOLS,
    Cell,
    Column,
    Symbols,
    display_width,
    render_table,
    truncate,
)
from p2pcc.cli.turnaround_cell import turnaround_cell
from p2pcc.core.durations import format_duration

#: The table never grows wider than this, however wide the terminal.
MAX_WIDTH = 100

DEFAULT_COMPILER_NAME = "cc"

_GREEN, _YELLOW, _RED, _CYAN = "32", "33", "31", "36"
_STATE_COLOURS = {
    "active": _GREEN,
    "paused": _YELLOW,
    "suspect": _YELLOW,
    "leaving": _YELLOW,
    "not serving": _YELLOW,
    "dead": _RED,
    "stock distcc": _CYAN,
}
_LIVENESS_ORDER = {"alive": 0, "suspect": 1, "dead": 2}


@dataclass(frozen=True, slots=True)
class LocalCompiler:
    """A column of compiler matches: one compiler of this machine."""

    label: str  # its shortest name (`cc`, `c++`, `gcc-11`)
    fingerprint: str
    loose_key: str
    names: tuple[str, ...] = ()  # every configured name that reaches it


def render_status(
    document: Mapping[str, Any],
    *,
    width: int = MAX_WIDTH,
    colour: bool = False,
    tz: tzinfo | None = None,
    symbols: Symbols = UNICODE_SYMBOLS,
) -> str:
    """The table and a summary line, at most `width` columns; `tz` None: system local time."""
    compilers = local_compilers(document)
    default = default_compiler(compilers)
    node = _mapping(document.get("node"))
    peers = ordered_peers(_mappings(document.get("peers")), default)
    stock = _mappings(document.get("stock_servers"))
    moment = _number(document.get("generated_at"))
    rows = [
        _node_row(node, compilers, moment, tz, symbols),
        *(_peer_row(peer, compilers, moment, tz, symbols) for peer in peers),
        *(_stock_row(server, compilers) for server in stock),
    ]
    width = min(width, MAX_WIDTH)
    measured = any(row.turnaround not in ("-", symbols.dash) for row in rows)
    columns = _columns(rows, compilers, measured=measured)
    table = render_table(columns, width, colour, symbols)
    summary = _summary(document, peers, stock, default, width=width, ellipsis=symbols.ellipsis)
    extra = [door_line(node), guard_line(node), seeds_line(document), *proof_lines(document, tz)]
    return "\n".join([*banner_lines(node, width, colour), *table, summary, *filter(None, extra)])


def local_compilers(document: Mapping[str, Any]) -> list[LocalCompiler]:
    """This machine's compilers, in the document's order, labelled by their shortest name."""
    found = []
    for entry in _mappings(_mapping(document.get("node")).get("compilers")):
        fingerprint = entry.get("fingerprint")
        if not isinstance(fingerprint, str):
            continue
        names = tuple(_printable(n) for n in _list(entry.get("names")) if isinstance(n, str))
        label = min(names, key=len) if names else _printable(fingerprint[:8])
        loose_key = _printable(entry.get("loose_key"))
        found.append(LocalCompiler(label, fingerprint, loose_key, names))
    return found


def default_compiler(compilers: Sequence[LocalCompiler]) -> LocalCompiler | None:
    """The compiler `cc` reaches (what a build uses unless told otherwise), else the first."""
    for compiler in compilers:
        if DEFAULT_COMPILER_NAME in compiler.names:
            return compiler
    return compilers[0] if compilers else None


def ordered_peers(
    peers: Sequence[Mapping[str, Any]], default: LocalCompiler | None
) -> list[Mapping[str, Any]]:
    """Peers ranked for `default` by rank, then the others by liveness and name."""
    fingerprint = default.fingerprint if default else ""
    ranked: list[tuple[int, Mapping[str, Any]]] = []
    others: list[Mapping[str, Any]] = []
    for peer in peers:
        rank = _mapping(peer.get("ranks")).get(fingerprint)
        if _is_int(rank):
            ranked.append((rank, peer))
        else:
            others.append(peer)
    ranked.sort(key=lambda pair: pair[0])
    others.sort(
        key=lambda p: (_LIVENESS_ORDER.get(str(p.get("liveness")), 3), _printable(p.get("name")))
    )
    return [peer for _, peer in ranked] + others


# --- rows -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Row:
    name: Cell
    address: str
    state: Cell
    load: str
    slots: str
    jobs: str
    power: str
    matches: tuple[str, ...]
    heard: str
    turnaround: str = "-"  # for rows that have none (this machine, stock servers)


def _node_row(
    node: Mapping[str, Any],
    compilers: Sequence[LocalCompiler],
    moment: float | None,
    tz: tzinfo | None,
    symbols: Symbols,
) -> _Row:
    offered = {
        entry["fingerprint"]
        for entry in _mappings(node.get("compilers"))
        if isinstance(entry.get("fingerprint"), str) and entry.get("offered", True) is True
    }
    pause = _mapping(node.get("pause"))
    state = _state_cell(
        _printable(node.get("state")), pause.get("until"), pause.get("reason"), moment, tz
    )
    if state.text == "active" and node.get("serving") is False:
        state = Cell("not serving", colour=_STATE_COLOURS["not serving"])
    slots, jobs = node.get("slots"), node.get("jobs")
    free = max(0, slots - jobs) if _is_int(slots) and _is_int(jobs) else None
    return _Row(
        name=Cell(_printable(node.get("name")), suffix=" (self)"),
        address=_first_address(node),
        state=state,
        load=_load_per_cpu(node),
        slots=f"{_count(free)}/{_count(slots)}",
        jobs=_count(jobs),
        power=_decimal(node.get("power")),
        matches=tuple(symbols.tick if c.fingerprint in offered else "" for c in compilers),
        heard="-",
    )


def _peer_row(
    peer: Mapping[str, Any],
    compilers: Sequence[LocalCompiler],
    moment: float | None,
    tz: tzinfo | None,
    symbols: Symbols,
) -> _Row:
    liveness = _printable(peer.get("liveness"))
    if liveness in ("suspect", "dead"):
        state = Cell(liveness, colour=_STATE_COLOURS[liveness])
    else:
        state = _state_cell(
            _printable(peer.get("state")),
            peer.get("pause_until"),
            peer.get("pause_reason"),
            moment,
            tz,
        )
    offers = {offer for offer in _list(peer.get("compilers")) if isinstance(offer, str)}
    silent = _number(peer.get("silent_for"))
    return _Row(
        name=Cell(_printable(peer.get("name"))),
        address=_first_address(peer),
        state=state,
        load=_load_per_cpu(peer),
        slots=f"{_count(peer.get('free_slots'))}/{_count(peer.get('slots'))}",
        jobs=_count(peer.get("jobs")),
        power=_decimal(peer.get("power")),
        matches=tuple(symbols.tick if c.fingerprint in offers else "" for c in compilers),
        heard="?" if silent is None else "now" if silent < 1 else format_duration(silent, parts=1),
        turnaround=turnaround_cell(_mapping(peer.get("turnaround")), symbols),
    )


def _stock_row(server: Mapping[str, Any], compilers: Sequence[LocalCompiler]) -> _Row:
    loose_key = server.get("loose_key")
    return _Row(
        name=Cell(_printable(server.get("instance"))),
        address=_first_address(server),
        state=Cell("stock distcc", colour=_STATE_COLOURS["stock distcc"]),
        load="-",
        slots=f"-/{_count(server.get('jobs'))}",
        jobs="-",
        power="-",
        matches=tuple("loose" if c.loose_key == loose_key else "" for c in compilers),
        heard="-",
    )


def _state_cell(
    state: str, until: object, reason: object, moment: float | None, tz: tzinfo | None
) -> Cell:
    if state != "paused":
        return Cell(state, colour=_STATE_COLOURS.get(state, ""))
    end = _number(until)
    return Cell(
        state,
        details=() if end is None else (f"until {_clock(end, moment, tz)}",),
        note=_printable(reason) if isinstance(reason, str) else "",
        colour=_STATE_COLOURS["paused"],
    )


def _clock(timestamp: float, moment: float | None, tz: tzinfo | None) -> str:
    """`18:00` on the document's day, `Fri 18:00` within a week, else the date."""
    try:
        when = datetime.fromtimestamp(timestamp, tz)
        today = datetime.fromtimestamp(moment, tz).date() if moment is not None else None
    except (OverflowError, OSError, ValueError):
        return "?"
    if today is None or when.date() == today:
        return when.strftime("%H:%M")
    if 0 < (when.date() - today).days < 7:
        return when.strftime("%a %H:%M")
    return when.strftime("%Y-%m-%d")


# --- layout -----------------------------------------------------------------------------


def _columns(
    rows: Sequence[_Row], compilers: Sequence[LocalCompiler], *, measured: bool
) -> list[Column]:
    def plain(values: list[str]) -> list[Cell]:
        return [Cell(value) for value in values]

    columns = [
        Column("NAME", [row.name for row in rows], minimum=10, preferred=18),
        Column("ADDRESS", plain([row.address for row in rows]), minimum=15, drop=1),
        Column("STATE", [row.state for row in rows], minimum=12, preferred=24),
        Column("LOAD", plain([row.load for row in rows]), right=True),
        Column("SLOTS", plain([row.slots for row in rows]), right=True),
        Column("JOBS", plain([row.jobs for row in rows]), right=True, drop=3),
        Column("POWER", plain([row.power for row in rows]), right=True, drop=2),
    ]
    if measured:
        turnarounds = plain([row.turnaround for row in rows])
        columns.append(Column("TURNAROUND", turnarounds, right=True, drop=2))
    for index, compiler in enumerate(compilers):
        matches = [
            Cell(row.matches[index], colour=_GREEN if row.matches[index] != "loose" else "")
            for row in rows
        ]
        column = Column(compiler.label, matches)
        # Cut last, and never below 6: "loose" and the usual names stay whole.
        column.minimum, column.preferred = min(column.natural(), 6), column.natural()
        columns.append(column)
    columns.append(Column("HEARD", plain([row.heard for row in rows]), right=True))
    return columns


def _summary(
    document: Mapping[str, Any],
    peers: Sequence[Mapping[str, Any]],
    stock: Sequence[Mapping[str, Any]],
    default: LocalCompiler | None,
    *,
    width: int,
    ellipsis: str,
) -> str:
    """Peers alive, and for the default compiler the free slots and the `-j` to use.

    The longest wording that fits `width`: the peer count behind the free slots and the
    stock servers go first.
    """
    alive = sum(1 for peer in peers if peer.get("liveness") == "alive")
    pool = f"{alive}/{len(peers)} peers alive" if peers else "no peers"
    short_pool = f"{alive}/{len(peers)} alive" if peers else "no peers"
    stock_part = f", {len(stock)} stock distcc" if stock else ""
    if default is None:
        return truncate(pool + stock_part, width, ellipsis)
    usable = [peer for peer in peers if default.fingerprint in _mapping(peer.get("ranks"))]
    free = sum(peer["free_slots"] for peer in usable if _is_int(peer.get("free_slots")))
    jobs = _mapping(_mapping(document.get("hosts")).get(default.fingerprint)).get("jobs")
    on = f" on {len(usable)} peer{'' if len(usable) == 1 else 's'}" if usable else ""
    compiler = f"; {default.label}: {free} free slots"
    job_count = f", recommended -j{_count(jobs)}"
    variants = [
        pool + stock_part + compiler + on + job_count,
        pool + stock_part + compiler + job_count,
        pool + compiler + job_count,
        f"{short_pool}; {default.label}: {free} free, -j{_count(jobs)}",
    ]
    for text in variants:
        if display_width(text) <= width:
            return text
    return truncate(variants[-1], width, ellipsis)


# --- values -----------------------------------------------------------------------------


def _printable(value: object) -> str:
    # Names, states and reasons come from peers over the network: printable text only,
    # no escape sequences into the user's terminal.
    if value is None:
        return "?"
    text = str(value)
    return text if text.isprintable() else text.encode("unicode_escape").decode()


def _first_address(entry: Mapping[str, Any]) -> str:
    addresses = entry.get("addresses")
    return _printable(addresses[0]) if isinstance(addresses, list) and addresses else "-"


def _load_per_cpu(entry: Mapping[str, Any]) -> str:
    load, cpus = _number(entry.get("load")), entry.get("cpus")
    if load is None or not _is_int(cpus) or cpus <= 0:
        return "?"
    return f"{max(0.0, load) / cpus:.2f}"


def _decimal(value: object) -> str:
    number = _number(value)
    return "?" if number is None else f"{number:.2f}"


def _count(value: object) -> str:
    return str(value) if _is_int(value) else "?"


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _mappings(value: object) -> list[Mapping[str, Any]]:
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []
