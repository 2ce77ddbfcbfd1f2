"""Human durations: every accepted form, every refusal, and the formatter's round trip."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pcc.core import limits
from p2pcc.core.durations import ACCEPTED_FORMS, DurationError, format_duration, parse_duration

#: A Thursday afternoon in a fixed UTC+2 zone: "today" and "tomorrow" are unambiguous.
NOW = datetime(2026, 6, 4, 14, 30, 15, tzinfo=timezone(timedelta(hours=2)))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90),
        ("90.5", 90.5),
        ("90s", 90),
        ("30m", 1800),
        ("2h", 7200),
        ("1h30m", 5400),
        ("1h 30m", 5400),
        ("  1h30m  ", 5400),
        ("1.5h", 5400),
        ("0.5m", 30),
        ("1h30m15s", 5415),
        ("2d", 172800),
        ("1d4h", 100800),
        ("30 m", 1800),
        ("2H", 7200),
        ("1h0m", 3600),
    ],
)
def test_relative_forms(text: str, seconds: float) -> None:
    assert parse_duration(text, NOW) == seconds


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("until 18:00", 3 * 3600 + 29 * 60 + 45),  # later today
        ("until 14:31", 45),
        ("until 18:00:30", 3 * 3600 + 30 * 60 + 15),
        ("until 9:00", 18 * 3600 + 29 * 60 + 45),  # already past: tomorrow morning
        ("until 14:30:15", 86400),  # exactly now is past too: a pause of 0 s means nothing
        ("until 00:00", 9 * 3600 + 29 * 60 + 45),
        ("UNTIL  18:00", 3 * 3600 + 29 * 60 + 45),
        ("until 2026-06-05 09:00", 18 * 3600 + 29 * 60 + 45),
        ("until 2026-06-05T09:00", 18 * 3600 + 29 * 60 + 45),
        ("until 2026-06-04 14:30:16", 1),
        ("until 2026-07-04 14:30:15", 30 * 86400),
    ],
)
def test_until_forms_are_read_in_the_zone_of_now(text: str, seconds: float) -> None:
    assert parse_duration(text, NOW) == seconds


def test_until_counts_real_seconds_across_a_daylight_saving_change() -> None:
    # Paris springs forward at 02:00 on 2026-03-29: from 20:00 the evening before to
    # 09:00 that morning is 13 hours of wall clock but only 12 real hours.
    paris = ZoneInfo("Europe/Paris")
    evening = datetime(2026, 3, 28, 20, 0, tzinfo=paris)
    assert parse_duration("until 09:00", evening) == 12 * 3600
    assert parse_duration("until 2026-03-29 09:00", evening) == 12 * 3600


def test_the_same_moment_in_another_zone_gives_the_same_relative_duration() -> None:
    assert parse_duration("90m", NOW.astimezone(UTC)) == parse_duration("90m", NOW) == 5400


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "soon",
        "-5",
        "-5m",
        "1e3",
        "inf",
        "nan",
        "5x",
        "m",
        "30m2h",  # units out of order
        "1h1h",
        "1.h",
        ".5h",
        "1,5h",
        "until",
        "until tomorrow",
        "until 18",
        "until 18:0",
        "until 1800",
        "until 2026-12-01",
        "until 01.12.2026 09:00",
        "18:00",
        "for 2h",
    ],
)
def test_anything_else_gets_the_list_of_accepted_forms(text: str) -> None:
    with pytest.raises(DurationError) as raised:
        parse_duration(text, NOW)
    message = str(raised.value)
    assert message.startswith("not a duration: ")
    for form in ACCEPTED_FORMS:
        assert form in message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0", "'0' is no time at all: it must be longer than 0 s"),
        ("0s", "'0s' is no time at all: it must be longer than 0 s"),
        ("0h0m", "'0h0m' is no time at all: it must be longer than 0 s"),
        ("until 24:00", "no such time of day: 24:00"),
        ("until 12:60", "no such time of day: 12:60"),
        ("until 12:00:61", "no such time of day: 12:00:61"),
        ("until 2026-02-30 09:00", "no such date: 2026-02-30"),
        ("until 2026-13-01 09:00", "no such date: 2026-13-01"),
        ("until 2026-06-04 14:30", "2026-06-04 14:30 is already past"),
        ("until 2025-12-01 09:00", "2025-12-01 09:00 is already past"),
        ("9" * 400, f"'{'9' * 400}' is too long"),
    ],
)
def test_refusals_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(DurationError) as raised:
        parse_duration(text, NOW)
    assert str(raised.value) == message


def test_a_maximum_is_enforced_and_named() -> None:
    maximum = limits.MAX_PAUSE_SECONDS
    assert parse_duration("31d", NOW, maximum=maximum) == maximum
    with pytest.raises(DurationError, match=r"^'31d1s' is too long; the maximum is 31d$"):
        parse_duration("31d1s", NOW, maximum=maximum)
    with pytest.raises(DurationError, match="too long; the maximum is 31d"):
        parse_duration("until 2026-08-01 00:00", NOW, maximum=maximum)


def test_a_naive_now_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_duration("1h", datetime(2026, 6, 4, 14, 30))


@pytest.mark.parametrize(
    ("seconds", "parts", "text"),
    [
        (0, 2, "0s"),
        (0.9, 2, "0s"),
        (-5, 2, "0s"),
        (45, 2, "45s"),
        (59.99, 2, "59s"),
        (60, 2, "1m"),
        (90, 2, "1m30s"),
        (5400, 2, "1h30m"),
        (5415, 2, "1h30m"),
        (5415, 3, "1h30m15s"),
        (3601, 2, "1h"),  # the window never skips a unit: not "1h1s"
        (3601, 3, "1h1s"),
        (86400 + 120, 2, "1d"),
        (90061, 2, "1d1h"),
        (limits.MAX_PAUSE_SECONDS, 2, "31d"),
        (150, 1, "2m"),
        (float("inf"), 2, "?"),
        (float("nan"), 2, "?"),
    ],
)
def test_format_duration(seconds: float, parts: int, text: str) -> None:
    assert format_duration(seconds, parts=parts) == text


@given(st.integers(min_value=1, max_value=int(limits.MAX_PAUSE_SECONDS)))
def test_formatting_with_every_unit_parses_back(seconds: int) -> None:
    assert parse_duration(format_duration(seconds, parts=4), NOW) == seconds


@given(
    st.integers(min_value=0, max_value=23),
    st.integers(min_value=0, max_value=59),
    st.integers(min_value=0, max_value=59),
)
def test_until_a_time_of_day_is_always_within_the_next_day(
    hour: int, minute: int, second: int
) -> None:
    seconds = parse_duration(f"until {hour}:{minute:02}:{second:02}", NOW)
    assert 0 < seconds <= 86400
    end = NOW + timedelta(seconds=seconds)
    assert (end.hour, end.minute, end.second) == (hour, minute, second)
