"""Durations as fsql understands them: WINDOW, EVERY and TTL values.

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
from datetime import timedelta

_UNITS = {
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
    "w": 604800, "week": 604800, "weeks": 604800,
}  # fmt: skip

_PART = re.compile(r"\s*(\d+)\s*([a-z]+)\s*")


class IntervalSyntaxError(ValueError):
    """The text is not a duration fsql accepts."""


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
