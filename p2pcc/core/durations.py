"""Human durations for `p2pcc pause --for`: `90`, `90s`, `30m`, `1h30m`, `1.5h`, `until 18:00`.

A relative form is a plain number of seconds or a run of `<number><unit>` parts with
units d, h, m, s in that order, each at most once (`2h`, `1h30m`, `1.5h`, `1d 4h`).
An absolute form starts with `until`: `until 18:00` is the next 18:00 (today, or
tomorrow once it is past) and `until 2026-12-01 09:00` a date and time; both are read
in the time zone of the caller's `now`, which must be timezone-aware (the caller reads
the clock, this module never does).  Every form that does not parse gets the same
message, which lists the accepted forms.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, time, timedelta

from p2pcc.core.errors import P2pccError

#: What the error message offers, in the order people are likely to want them.
ACCEPTED_FORMS = (
    "90 (seconds)",
    "90s",
    "30m",
    "2h",
    "1h30m",
    "1.5h",
    "2d",
    "'until 18:00'",
    "'until 2026-12-01 09:00'",
)

_UNIT_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_NUMBER = r"\d+(?:\.\d+)?"
_RELATIVE = re.compile(
    "".join(rf"(?:(?P<{unit}>{_NUMBER})\s*{unit}\s*)?" for unit in _UNIT_SECONDS),
    re.IGNORECASE,
)
_PLAIN_SECONDS = re.compile(_NUMBER)
_TIME = r"(?P<hour>\d{1,2}):(?P<minute>\d\d)(?::(?P<second>\d\d))?"
_UNTIL_TIME = re.compile(rf"until\s+{_TIME}", re.IGNORECASE)
_UNTIL_DATE_TIME = re.compile(
    rf"until\s+(?P<year>\d{{4}})-(?P<month>\d\d)-(?P<day>\d\d)(?:\s+|T){_TIME}", re.IGNORECASE
)


class DurationError(P2pccError):
    """A duration that does not parse, is not in the future, or is too long."""


def parse_duration(text: str, now: datetime, *, maximum: float | None = None) -> float:
    """Seconds from `now` that `text` means: above 0 and, when given, at most `maximum`."""
    if now.tzinfo is None:
        raise ValueError("parse_duration needs a timezone-aware `now`")
    words = " ".join(text.split())
    seconds = _relative_seconds(words)
    if seconds is None:
        seconds = _seconds_until(words, now)
    if not seconds > 0:
        raise DurationError(f"{words!r} is no time at all: it must be longer than 0 s")
    if not math.isfinite(seconds) or (maximum is not None and seconds > maximum):
        longest = "" if maximum is None else f"; the maximum is {format_duration(maximum)}"
        raise DurationError(f"{words!r} is too long{longest}")
    return seconds


def format_duration(seconds: float, *, parts: int = 2) -> str:
    """Compact text such as `1h30m`, `2m` or `45s`: `parts` adjacent units, rounded down."""
    if not math.isfinite(seconds):
        return "?"
    remaining = max(0, math.floor(seconds))
    pieces: list[str] = []
    for unit, size in _UNIT_SECONDS.items():
        count, remaining = divmod(remaining, int(size))
        if count or pieces:
            pieces.append(f"{count}{unit}")
    # The window starts at the largest unit used and never skips one (3601 s with two
    # parts is "1h", not "1h1s"); zero counts inside it are left out.
    shown = [piece for piece in pieces[:parts] if not piece.startswith("0")]
    return "".join(shown) or "0s"


def _relative_seconds(words: str) -> float | None:
    if _PLAIN_SECONDS.fullmatch(words):
        return float(words)
    match = _RELATIVE.fullmatch(words)
    if match is None or not any(match.groupdict().values()):
        return None
    return sum(
        float(value) * _UNIT_SECONDS[unit]
        for unit, value in match.groupdict().items()
        if value is not None
    )


def _seconds_until(words: str, now: datetime) -> float:
    if match := _UNTIL_TIME.fullmatch(words):
        clock = _clock(match)
        target = datetime.combine(now.date(), clock, tzinfo=now.tzinfo)
        if not _after(target, now):
            target = datetime.combine(now.date() + timedelta(days=1), clock, tzinfo=now.tzinfo)
    elif match := _UNTIL_DATE_TIME.fullmatch(words):
        day = _calendar_day(match)
        target = datetime.combine(day, _clock(match), tzinfo=now.tzinfo)
        if not _after(target, now):
            raise DurationError(f"{target:%Y-%m-%d %H:%M} is already past")
    else:
        raise DurationError(f"not a duration: {words!r}; use one of {', '.join(ACCEPTED_FORMS)}")
    # Both sides in UTC: subtracting two datetimes that share a tzinfo ignores a DST
    # change between them.
    return (target.astimezone(UTC) - now.astimezone(UTC)).total_seconds()


def _after(target: datetime, now: datetime) -> bool:
    return target.astimezone(UTC) > now.astimezone(UTC)


def _clock(match: re.Match[str]) -> time:
    hour, minute = int(match["hour"]), int(match["minute"])
    second = int(match["second"] or 0)
    if hour > 23 or minute > 59 or second > 59:
        shown = ":".join(part for part in match.group("hour", "minute", "second") if part)
        raise DurationError(f"no such time of day: {shown}")
    return time(hour, minute, second)


def _calendar_day(match: re.Match[str]) -> date:
    try:
        return date(int(match["year"]), int(match["month"]), int(match["day"]))
    except ValueError:
        raise DurationError(
            f"no such date: {match['year']}-{match['month']}-{match['day']}"
        ) from None
