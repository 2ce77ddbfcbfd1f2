"""The status table: golden output for a fixed document, and each rule on its own.

Golden files live in tests/cli/golden/.  After a deliberate change to the table, rewrite
them with `P2PCC_UPDATE_GOLDEN=1 pytest tests/cli/test_status_view.py` and review the diff.
"""

from __future__ import annotations

import copy
import json
import os
import re
from datetime import UTC, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pcc.cli.status_view import (
    MAX_WIDTH,
    LocalCompiler,
    default_compiler,
    local_compilers,
    ordered_peers,
    render_status,
)
from p2pcc.cli.text_table import ASCII_SYMBOLS, Cell, display_width, truncate

GOLDEN = Path(__file__).parent / "golden"
DOCUMENT: dict[str, Any] = json.loads((GOLDEN / "status.json").read_text())
CC, CXX, GCC11, CLANG = (c["fingerprint"] for c in DOCUMENT["node"]["compilers"])
GENERATED_AT = DOCUMENT["generated_at"]  # 2026-05-28 10:15:30 UTC, a Thursday


def assert_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("P2PCC_UPDATE_GOLDEN"):
        path.write_text(text + "\n")
    assert text + "\n" == path.read_text()


def document(**changes: Any) -> dict[str, Any]:
    """A deep copy of the golden document with top-level fields replaced."""
    return {**copy.deepcopy(DOCUMENT), **changes}


def roomy(**changes: Any) -> dict[str, Any]:
    """The golden document cut down to what 100 columns show whole: cc and c++ only, no
    long peer name or IPv6 address, no stock server (the typical-office golden)."""
    node = {**DOCUMENT["node"], "compilers": DOCUMENT["node"]["compilers"][:2]}
    peers = [copy.deepcopy(p) for p in DOCUMENT["peers"] if not p["name"].startswith("laptop")]
    return document(**{"node": node, "peers": peers, "stock_servers": [], **changes})


def render(doc: dict[str, Any], width: int = MAX_WIDTH, **options: Any) -> str:
    return render_status(doc, width=width, tz=UTC, **options)


def names_in_order(text: str) -> list[str]:
    return [line.split()[0] for line in text.splitlines()[1:-1]]


# --- golden output ------------------------------------------------------------------------


@pytest.mark.parametrize("width", [100, 80, 72])
def test_golden_without_colour(width: int) -> None:
    assert_golden(f"status_{width}.txt", render(DOCUMENT, width))


def test_golden_typical_office() -> None:
    # Two local compilers, short names, IPv4: at 100 columns nothing needs cutting.
    doc = roomy()
    doc["peers"][3]["pause_reason"] = "release meeting"
    assert doc["peers"][3]["name"] == "ws9"
    text = render(doc)
    assert_golden("status_typical_100.txt", text)
    assert "…" not in text


def measured(doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` with turnarounds measured on two peers (a straggler and a fast one), too few
    on a third, none on the rest."""
    figures = {
        "build-server": {"jobs": 9, "median": 1.2, "mean": 1.3, "relative": 0.1},
        "ws3": {"jobs": 6, "median": 11.8, "mean": 12.4, "relative": 9.8},
        "ws9": {"jobs": 2, "median": 0.9, "mean": 0.9, "relative": None},
    }
    for peer in doc["peers"]:
        peer["turnaround"] = figures.get(peer["name"], {"jobs": 0, "median": None})
    return doc


@pytest.mark.parametrize(("width", "symbols"), [(100, None), (80, None), (100, ASCII_SYMBOLS)])
def test_golden_with_measured_turnaround(width: int, symbols: Any) -> None:
    options = {} if symbols is None else {"symbols": symbols}
    name = f"status_turnaround_{width}{'_ascii' if symbols else ''}.txt"
    assert_golden(name, render(measured(roomy()), width, **options))


def test_turnaround_shows_jobs_median_and_relative_figure_or_a_dash() -> None:
    lines = {line.split()[0]: line for line in render(measured(roomy())).splitlines()}
    assert "TURNAROUND" in lines["NAME"]
    assert "9.8× 11.8s (6)" in lines["ws3"]
    assert "0.1× 1.2s (9)" in lines["build-server"]
    assert "— 0.9s (2)" in lines["ws9"]
    assert lines["ws4"].split()[7] == "—"  # measured nothing there


def test_without_a_measured_job_there_is_no_turnaround_column() -> None:
    doc = roomy()
    for peer in doc["peers"]:
        peer["turnaround"] = {"jobs": 0, "median": None, "mean": None, "relative": None}
    assert "TURNAROUND" not in render(doc)


def test_golden_with_colour_forced() -> None:
    assert_golden("status_100_colour.txt", render(DOCUMENT, colour=True))


def test_golden_in_ascii() -> None:
    assert_golden("status_100_ascii.txt", render(DOCUMENT, symbols=ASCII_SYMBOLS))


@pytest.mark.parametrize("width", range(65, 131, 5))
def test_every_line_fits_the_width_and_never_passes_100(width: int) -> None:
    # 65 columns is as narrow as this table goes: four compiler columns and the columns
    # that are never dropped, each at its minimum, one space apart.
    lines = render(DOCUMENT, width).splitlines()
    assert max(display_width(line) for line in lines) <= min(width, MAX_WIDTH)
    assert len(lines) == 1 + 1 + 6 + 1 + 1  # header, self, peers, stock server, summary


def test_no_colour_means_no_escape_sequences_at_all() -> None:
    assert "\x1b" not in render(DOCUMENT) + render(DOCUMENT, 60)


def test_colour_marks_states_and_ticks() -> None:
    coloured = render(DOCUMENT, colour=True)
    assert "\x1b[32mactive\x1b[0m" in coloured
    assert "\x1b[31mdead\x1b[0m" in coloured
    assert "\x1b[33msuspect\x1b[0m" in coloured
    assert "\x1b[32m✓\x1b[0m" in coloured
    # Colour codes take no room: without them the text is exactly the plain table.
    plain = coloured
    for code in ("\x1b[32m", "\x1b[31m", "\x1b[33m", "\x1b[36m", "\x1b[1m", "\x1b[0m"):
        plain = plain.replace(code, "")
    assert plain == render(DOCUMENT)


# --- order ----------------------------------------------------------------------------------


def test_self_first_then_peers_by_rank_for_cc_then_the_rest_by_liveness_and_name() -> None:
    assert names_in_order(render(DOCUMENT)) == [
        "ws7",  # this machine
        "build-server",  # rank 1 for cc
        "ws3",  # rank 2 for cc, although it joined first
        "ws4",  # alive, not usable for cc (only c++)
        "ws9",  # alive, paused
        "laptop-of-a-c…",  # suspect
        "old-box",  # dead
        "distcc@buildb…",  # stock distcc last
    ]


def test_ranks_decide_the_order_not_the_join_order() -> None:
    peers: list[dict[str, Any]] = [
        {"name": f"p{rank}", "liveness": "alive", "ranks": {CC: rank}} for rank in (3, 1, 2)
    ]
    default = LocalCompiler("cc", CC, "", ("cc",))
    assert [p["name"] for p in ordered_peers(peers, default)] == ["p1", "p2", "p3"]


def test_unranked_peers_sort_alive_suspect_dead_then_unknown_then_by_name() -> None:
    peers: list[dict[str, Any]] = [
        {"name": "b", "liveness": "dead"},
        {"name": "z", "liveness": "alive"},
        {"name": "a", "liveness": "weird"},
        {"name": "c", "liveness": "suspect"},
        {"name": "a", "liveness": "alive"},
        {"name": "r", "liveness": "alive", "ranks": {CC: 1}},
    ]
    ordered = ordered_peers(peers, LocalCompiler("cc", CC, "", ("cc",)))
    assert [(p["name"], p["liveness"]) for p in ordered] == [
        ("r", "alive"),
        ("a", "alive"),
        ("z", "alive"),
        ("c", "suspect"),
        ("b", "dead"),
        ("a", "weird"),
    ]


def test_the_default_compiler_is_cc_wherever_it_is_listed_else_the_first() -> None:
    compilers = local_compilers(DOCUMENT)
    assert [c.label for c in compilers] == ["cc", "c++", "gcc-11", "clang"]
    assert default_compiler(compilers) == compilers[0]
    assert default_compiler(compilers[1:]) == compilers[1]
    assert default_compiler(compilers[::-1]) == compilers[0]
    assert default_compiler([]) is None


def test_a_compiler_is_labelled_by_its_shortest_name_and_found_by_cc_anywhere() -> None:
    compilers = copy.deepcopy(DOCUMENT["node"]["compilers"])
    compilers[0]["names"] = ["x86_64-linux-gnu-gcc-12", "gcc", "cc"]  # cc last
    compilers[2]["names"] = ["x86_64-linux-gnu-gcc-11", "gcc-11"]
    node = {**DOCUMENT["node"], "compilers": compilers[::-1]}
    found = local_compilers(document(node=node))
    assert [c.label for c in found] == ["clang", "gcc-11", "c++", "cc"]
    assert default_compiler(found) == found[3]


def test_order_follows_the_default_compiler_only() -> None:
    # ws4 is ranked for c++ but not for cc: with c++ as the only local compiler, it leads.
    node = {**DOCUMENT["node"], "compilers": [DOCUMENT["node"]["compilers"][1]]}
    text = render(document(node=node))
    assert names_in_order(text)[:3] == ["ws7", "build-server", "ws4"]
    assert "c++: 14 free slots on 2 peers, recommended -j16" in text


# --- cells ----------------------------------------------------------------------------------


def row_of(text: str, name: str) -> str:
    (line,) = [line for line in text.splitlines() if line.startswith(name)]
    return line


def test_stock_servers_are_loose_only_where_the_loose_key_matches() -> None:
    line = row_of(render(DOCUMENT), "distcc@buildb…")
    # gcc-12 (cc, c++) matches its x86_64-linux-gnu--12; gcc-11 and clang do not.
    assert line.split()[1:] == [
        "10.0.0.50",
        "stock",
        "distcc",
        "-",
        "-/10",
        "-",
        "-",
        "loose",
        "loose",
        "-",
    ]


def test_ticks_mark_the_local_compilers_a_peer_offers() -> None:
    text = render(DOCUMENT)
    header = text.splitlines()[0]
    columns = {label: header.index(label) for label in ("cc ", "c++", "gcc-11", "clang")}
    build_server = row_of(text, "build-server")
    laptop = row_of(text, "laptop")
    assert [build_server[at] for at in columns.values()] == ["✓", "✓", "✓", " "]
    assert [laptop[at] for at in columns.values()] == [" ", " ", "✓", " "]


def test_this_machine_ticks_only_what_it_offers() -> None:
    line = row_of(render(DOCUMENT), "ws7 (self)")
    assert line.count("✓") == 3  # clang is withheld (not in distccd's whitelist)


def test_paused_here_shows_until_and_reason_as_far_as_there_is_room() -> None:
    assert "paused (until 13:00, benchmarking)" in row_of(render(roomy()), "ws7 (self)")
    assert "paused (until 13:00, benchma…)" in row_of(render(roomy(), 88), "ws7 (self)")
    assert "paused (until 13:00)" in row_of(render(roomy(), 80), "ws7 (self)")
    assert re.search(r"10\.0\.0\.7 +paused +0\.25", row_of(render(DOCUMENT), "ws7 (self)"))


@pytest.mark.parametrize(
    ("until", "shown"),
    [
        (GENERATED_AT + 3600, "until 11:15"),
        (GENERATED_AT + 86400, "until Fri 10:15"),
        (GENERATED_AT + 6 * 86400, "until Wed 10:15"),
        (GENERATED_AT + 7 * 86400, "until 2026-06-04"),
        (GENERATED_AT - 86400, "until 2026-05-27"),
        (1e300, "until ?"),
    ],
)
def test_the_pause_end_is_a_time_today_a_weekday_this_week_else_a_date(
    until: float, shown: str
) -> None:
    node = {**roomy()["node"], "pause": {"reason": "", "by_uid": 0, "until": until}}
    assert f"paused ({shown})" in render(roomy(node=node))


def test_the_pause_end_is_in_the_time_zone_given() -> None:
    node = {**roomy()["node"], "pause": {"reason": "x", "by_uid": 0, "until": GENERATED_AT}}
    tokyo = render_status(roomy(node=node), tz=timezone(timedelta(hours=9)))
    assert "paused (until 19:15, x)" in tokyo


def test_an_untimed_pause_shows_its_reason_only() -> None:
    node = {**DOCUMENT["node"], "pause": {"reason": "demo", "by_uid": 0, "until": None}}
    assert "paused (demo)" in row_of(render(document(node=node)), "ws7")


def test_a_paused_peer_shows_its_reason_and_its_end_when_it_sends_one() -> None:
    text = render(DOCUMENT)
    assert "paused (releas…)" in row_of(text, "ws9")
    ws9 = {**DOCUMENT["peers"][4], "pause_until": GENERATED_AT + 1800, "pause_reason": "lunch"}
    assert "paused (until 10:45, lunch)" in row_of(render(roomy(peers=[ws9])), "ws9")


def test_liveness_overrides_what_a_silent_peer_last_said() -> None:
    peers = copy.deepcopy(DOCUMENT["peers"])
    peers[4]["liveness"] = "dead"  # ws9 was paused when it fell silent
    assert re.match(r"ws9 +10\.0\.0\.11 +dead ", row_of(render(document(peers=peers)), "ws9"))


def test_a_machine_whose_distccd_is_down_is_not_serving() -> None:
    node = {**DOCUMENT["node"], "state": "active", "pause": None, "serving": False}
    assert re.match(
        r"ws7 \(self\) +10\.0\.0\.7 +not serving ", row_of(render(roomy(node=node)), "ws7")
    )


def test_load_is_per_cpu_and_last_heard_is_compact() -> None:
    text = render(DOCUMENT)
    build_server = row_of(text, "build-server").split()
    assert build_server[3] == "0.40"  # 12.8 over 32 CPUs
    assert build_server[-1] == "now"  # 0.4 s ago
    assert row_of(text, "ws3").split()[-1] == "1s"
    assert row_of(text, "old-box").split()[-1] == "2m"  # 150 s


def test_summary_counts_alive_peers_free_slots_for_cc_and_the_recommended_jobs() -> None:
    summary = render(DOCUMENT).splitlines()[-1]
    # Free slots of the peers cc can use now: build-server 14 + ws3 3.
    assert summary == (
        "4/6 peers alive, 1 stock distcc; cc: 17 free slots on 2 peers, recommended -j19"
    )


def test_a_lone_machine() -> None:
    node = {**DOCUMENT["node"], "state": "active", "pause": None, "slots": 8, "jobs": 0}
    text = render(document(node=node, peers=[], stock_servers=[]))
    assert text.splitlines() == [
        "NAME        ADDRESS   STATE   LOAD  SLOTS  JOBS  POWER  cc  c++  gcc-11  clang  HEARD",
        "ws7 (self)  10.0.0.7  active  0.25    8/8     0   1.00  ✓   ✓    ✓                  -",
        "no peers; cc: 0 free slots, recommended -j19",
    ]


def test_an_empty_document_still_renders() -> None:
    assert render({}).splitlines() == [
        "NAME      ADDRESS  STATE  LOAD  SLOTS  JOBS  POWER  HEARD",
        "? (self)  -        ?         ?    ?/?     ?      ?      -",
        "no peers",
    ]


def test_peer_text_cannot_drive_the_terminal() -> None:
    peers = [{"name": "evil\x1b[2J", "state": "paused\n", "liveness": "alive", "addresses": []}]
    text = render(document(peers=peers))
    assert "\x1b" not in text
    assert "evil\\x1b[2J" in text
    assert len(text.splitlines()) == 1 + 1 + 1 + 1 + 1


def test_odd_values_show_as_question_marks() -> None:
    peers: list[Any] = [
        {"name": None, "load": "high", "cpus": 0, "slots": True, "power": float("nan")},
        "junk",
    ]
    line = render(document(peers=peers, stock_servers=[])).splitlines()[2]
    assert line.split() == ["?", "-", "?", "?", "?/?", "?", "?", "?"]


def test_a_wide_character_name_keeps_the_columns_aligned() -> None:
    peers = copy.deepcopy(DOCUMENT["peers"])
    peers[0]["name"] = "ビルド機"  # four characters, eight columns
    text = render(document(peers=peers))
    wide, plain = row_of(text, "ビルド機"), row_of(text, "build-server")
    assert display_width(wide[: wide.index("active")]) == plain.index("active")


# --- the text primitives --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "text"),
    [
        (40, "paused (until 18:00, release meeting)"),
        (30, "paused (until 18:00, release…)"),
        (27, "paused (until 18:00, rele…)"),
        (26, "paused (until 18:00, rel…)"),  # three characters of the note at least
        (25, "paused (until 18:00)"),
        (20, "paused (until 18:00)"),
        (19, "paused"),
        (6, "paused"),
        (4, "pau…"),
    ],
)
def test_a_cell_cuts_its_note_then_drops_details_then_cuts_its_text(width: int, text: str) -> None:
    cell = Cell("paused", details=("until 18:00",), note="release meeting")
    assert cell.fit(width, "…") == text


@pytest.mark.parametrize(
    ("width", "text"),
    [(20, "build-server (self)"), (15, "build-s… (self)"), (10, "bu… (self)"), (9, "build-se…")],
)
def test_a_cell_keeps_its_suffix_while_it_can(width: int, text: str) -> None:
    assert Cell("build-server", suffix=" (self)").fit(width, "…") == text


@pytest.mark.parametrize(
    ("text", "width", "ellipsis", "cut"),
    [
        ("abcdef", 6, "…", "abcdef"),
        ("abcdef", 5, "…", "abcd…"),
        ("abcdef", 5, "...", "ab..."),
        ("abcdef", 1, "...", "."),
        ("abcdef", 0, "…", ""),
        ("ビルド機", 5, "…", "ビル…"),
        ("ビルド機", 6, "…", "ビル…"),
    ],
)
def test_truncate(text: str, width: int, ellipsis: str, cut: str) -> None:
    assert truncate(text, width, ellipsis) == cut
    assert display_width(truncate(text, width, ellipsis)) <= width


def test_display_width_counts_terminal_columns() -> None:
    assert display_width("abc") == 3
    assert display_width("ビルド") == 6
    assert display_width("e\u0301") == 1  # e + combining acute accent
    assert display_width("✓…") == 2


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=8,
)
FIELDS = st.sampled_from(
    [
        "name",
        "state",
        "liveness",
        "load",
        "cpus",
        "slots",
        "jobs",
        "free_slots",
        "power",
        "compilers",
        "ranks",
        "addresses",
        "pause",
        "pause_reason",
        "pause_until",
        "silent_for",
        "serving",
    ]
)


@settings(max_examples=100, deadline=None)
@given(
    node=st.dictionaries(FIELDS, JSON, max_size=6),
    peers=st.lists(st.dictionaries(FIELDS, JSON, max_size=6), max_size=3),
    width=st.integers(min_value=0, max_value=200),
)
def test_any_document_renders_without_error(
    node: dict[str, Any], peers: list[dict[str, Any]], width: int
) -> None:
    text = render({"node": node, "peers": peers, "hosts": {}, "generated_at": GENERATED_AT}, width)
    assert "\x1b" not in text
    assert text.count("\n") == 1 + len(peers) + 1


def test_the_proofs_of_peers_close_the_status() -> None:
    peer = DOCUMENT["peers"][0]
    last = {"outcome": "different object", "detail": "", "seconds": 0.05, "at": GENERATED_AT}
    proofs = [
        {
            "name": peer["name"],
            "compiler": "x86_64-linux-gnu-gcc-12",
            "last": last,
            "excluded": True,
        }
    ]
    lines = render(document(proofs=proofs)).splitlines()
    assert lines[-2:] == [
        f"proof: {peer['name']}: different object for x86_64-linux-gnu-gcc-12 at 10:15: "
        "left out of its hosts line",
        "proofs: 0 ok, 1 failed",
    ]
