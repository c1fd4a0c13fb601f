"""Time as fsql understands it: durations (WINDOW, EVERY and TTL values) and ticks.

Accepted spellings: ``'30 days'``, ``'12 hours'``, ``'90 minutes'``, ``'45 seconds'``,
``'2 weeks'``, singular units, short units (``'30d'``, ``'12h'``, ``'90m'``, ``'45s'``,
``'2w'``) and sums (``'1 day 12 hours'``). Months and years are rejected: their length varies,
so ticks would not be whole multiples of the cadence.

>>> parse_interval("30 days")
datetime.timedelta(days=30)
>>> format_interval(parse_interval("90 minutes"))
'90 minutes'
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from fsql.errors import InstantSyntaxError, IntervalSyntaxError

_UNITS = {
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
    "w": 604800, "week": 604800, "weeks": 604800,
}  # fmt: skip

_PART = re.compile(r"\s*(\d+)\s*([a-z]+)\s*")


def parse_interval(text: str) -> timedelta:
    """Parse a duration such as ``'30 days'`` into a positive :class:`timedelta`."""
    s = text.strip().lower()
    if not s:
        raise IntervalSyntaxError("an empty duration; write e.g. '30 days' or '12 hours'")
    pos, seconds = 0, 0
    while pos < len(s):
        m = _PART.match(s, pos)
        if not m or m.group(2) not in _UNITS:
            bad = s[pos:].strip()
            if bad.split()[-1:] and bad.split()[-1] in {"month", "months", "year", "years"}:
                raise IntervalSyntaxError(
                    f"'{text}' uses months or years, whose length varies; use days or weeks"
                )
            raise IntervalSyntaxError(
                f"'{text}' is not a duration; write e.g. '30 days', '12 hours' or '90 minutes'"
            )
        seconds += int(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if seconds <= 0:
        raise IntervalSyntaxError(f"'{text}' is not a positive duration")
    return timedelta(seconds=seconds)


def format_interval(value: timedelta) -> str:
    """Render a duration canonically in its largest whole unit: ``'30 days'``, ``'90 minutes'``."""
    seconds = int(value.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    raise AssertionError("unreachable")


#: tick 0: every cadence's ticks are whole multiples of it since the Unix epoch (UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def floor_tick(instant: datetime, every_seconds: int) -> datetime:
    """The latest tick ≤ ``instant`` (ticks: whole multiples of ``every_seconds`` since epoch)."""
    seconds = int((instant - EPOCH).total_seconds() // every_seconds) * every_seconds
    return EPOCH + timedelta(seconds=seconds)


def ceil_tick(instant: datetime, every_seconds: int) -> datetime:
    """The earliest tick ≥ ``instant``."""
    floor = floor_tick(instant, every_seconds)
    return floor if floor == instant else floor + timedelta(seconds=every_seconds)


def tick_range(start: datetime, end: datetime, every: timedelta) -> tuple[datetime, datetime]:
    """[a, b) with the same ticks as [start, end) but tick-aligned ends (a == b: no tick)."""
    seconds = int(every.total_seconds())
    return ceil_tick(start, seconds), ceil_tick(end, seconds)


def as_utc(value: datetime) -> datetime:
    """Any aware datetime (pendulum's included) or naive UTC one as a plain UTC datetime."""
    if value.tzinfo is None:
        return datetime(value.year, value.month, value.day, value.hour, value.minute,
                        value.second, value.microsecond, tzinfo=UTC)  # fmt: skip
    return datetime.fromtimestamp(value.timestamp(), UTC).replace(microsecond=value.microsecond)


def watermark_end(now: datetime, every: timedelta, lateness: timedelta | None = None) -> datetime:
    """The exclusive end of the ticks that may be materialized at ``now``: every tick T with
    T + lateness ≤ now (a tick's value reads only events before it, so T ≤ now is complete;
    ``lateness`` waits for data that arrives late). Tick-aligned.

    >>> watermark_end(datetime(2024, 3, 5, 16, 45, tzinfo=UTC), timedelta(days=1))
    datetime.datetime(2024, 3, 6, 0, 0, tzinfo=datetime.timezone.utc)
    """
    seconds = int(every.total_seconds())
    return floor_tick(now - (lateness or timedelta(0)), seconds) + every


_RELATIVE = re.compile(r"\s*([+-])\s*(.+)")


def parse_instant(text: str, now: datetime | None = None) -> datetime:
    """An instant as the command line takes it, as an aware UTC datetime: an ISO date or
    datetime (without a zone: UTC), ``now``, ``today`` (midnight UTC), or a duration before or
    after now (``-7d``, ``-12 hours``, ``+1 day``).

    >>> parse_instant("2024-01-31")
    datetime.datetime(2024, 1, 31, 0, 0, tzinfo=datetime.timezone.utc)
    >>> parse_instant("-1 day", now=datetime(2024, 1, 31, 6, tzinfo=UTC))
    datetime.datetime(2024, 1, 30, 6, 0, tzinfo=datetime.timezone.utc)
    """
    word = text.strip().lower()
    current = as_utc(now) if now is not None else datetime.now(UTC)
    if word == "now":
        return current
    if word == "today":
        return floor_tick(current, 86_400)
    relative = _RELATIVE.fullmatch(word)
    if relative:
        try:
            offset = parse_interval(relative.group(2))
        except IntervalSyntaxError as exc:
            raise InstantSyntaxError(f"{text!r}: {exc}") from None
        return current - offset if relative.group(1) == "-" else current + offset
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InstantSyntaxError(
            f"{text!r} is not a time; write e.g. 2024-01-31, 2024-01-31T06:00:00 (UTC when no "
            "zone is given), now, today or -7d"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
