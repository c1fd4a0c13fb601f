"""A slow, obviously-correct reference implementation of docs/semantics.md, in plain Python.

Written from the semantics document alone: it imports nothing from fsql and uses no SQL. For
every tick it scans every row, so it is quadratic and only for small test data. A feature is
described by a :class:`Spec` whose filter, arguments and expressions are Python functions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
Row = Mapping[str, Any]
Key = tuple[Any, ...]


def as_utc(t: datetime) -> datetime:
    """Naive datetimes are UTC."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


@dataclass(frozen=True)
class Spec:
    """One feature, as the semantics describe it.

    - ``kind="aggregate"``: ``aggregates`` is a list of ``(func, arg)`` with ``func`` in
      sum/count/count_distinct/avg/min/max and ``arg`` a function of a row (``None`` for
      ``COUNT(*)``); ``combine`` maps the list of aggregate results to the value.
    - ``kind="latest"``: ``value`` maps the latest row to the value.
    - ``kind="derived"``: ``inputs`` names other specs; ``combine`` maps their values (a dict by
      name, NULL = None) to the value.
    """

    name: str
    kind: str
    every: timedelta
    keys: Sequence[str] = ("k",)
    window: timedelta | None = None
    ttl: timedelta | None = None
    where: Callable[[Row], bool] = lambda row: True
    aggregates: Sequence[tuple[str, Callable[[Row], Any] | None]] = ()
    value: Callable[[Row], Any] | None = None
    combine: Callable[[Any], Any] = lambda values: values[0]
    inputs: Sequence[str] = ()
    event_time: str = "ts"
    created_time: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def ticks(start: datetime, end: datetime, every: timedelta) -> list[datetime]:
    """Every whole multiple of ``every`` since the epoch in [start, end)."""
    start, end = as_utc(start), as_utc(end)
    n = (start - EPOCH) // every
    t = EPOCH + n * every
    if t < start:
        t += every
    out = []
    while t < end:
        out.append(t)
        t += every
    return out


def _key(spec: Spec, row: Row) -> Key | None:
    key = tuple(row[k] for k in spec.keys)
    return None if any(v is None for v in key) else key


def _eligible(spec: Spec, rows: Iterable[Row]) -> list[tuple[Key, datetime, Row]]:
    """Rows passing the filter with a key and an event time, with their UTC event time."""
    out = []
    for row in rows:
        key = _key(spec, row)
        if key is None or row[spec.event_time] is None:
            continue
        if spec.where(row) is not True:  # SQL: a NULL condition drops the row
            continue
        out.append((key, as_utc(row[spec.event_time]), row))
    return out


def _aggregate(func: str, values: list[Any]) -> Any:
    present = [v for v in values if v is not None]
    if func == "count":
        return len(present)
    if func == "count_distinct":
        return len(set(present))
    if not present:
        return None
    if func == "sum":
        return sum(present)
    if func == "avg":
        return sum(present) / len(present)
    if func == "min":
        return min(present)
    if func == "max":
        return max(present)
    raise ValueError(func)


def _latest(spec: Spec, rows: list[Row]) -> Row:
    """The greatest event time, then created time (NULL oldest), then value (NULL lowest)."""
    assert spec.value is not None

    def rank(row: Row) -> tuple[Any, ...]:
        created = row[spec.created_time] if spec.created_time else None
        value = spec.value(row)  # type: ignore[misc]
        return (
            as_utc(row[spec.event_time]),
            created is not None,
            as_utc(created) if created is not None else EPOCH,
            value is not None,
            value if value is not None else 0,
        )

    return max(rows, key=rank)


def value_at(
    spec: Spec, eligible: list[tuple[Key, datetime, Row]], key: Key, tick: datetime
) -> tuple[bool, Any]:
    """(seen at tick, value at tick) for one entity of an aggregate or latest-value feature."""
    mine = [(t, row) for k, t, row in eligible if k == key]
    seen = any(t < tick for t, _ in mine)
    if not seen:
        return False, None
    lower = tick - spec.window if spec.window is not None else None
    in_window = [row for t, row in mine if t < tick and (lower is None or t >= lower)]
    if spec.kind == "aggregate":
        results = []
        for func, arg in spec.aggregates:
            values = [1 if arg is None else arg(row) for row in in_window]
            results.append(_aggregate(func, values))
        return True, spec.combine(results)
    if spec.kind == "latest":
        if not in_window:
            return True, None
        return True, spec.value(_latest(spec, in_window))  # type: ignore[misc]
    raise ValueError(spec.kind)


def timeline(
    spec: Spec,
    rows: Iterable[Row],
    ticks_: Iterable[datetime],
    specs: Mapping[str, Spec] | None = None,
    timelines: Mapping[str, dict[tuple[Key, datetime], Any]] | None = None,
) -> dict[tuple[Key, datetime], Any]:
    """The dense timeline {(key, tick): value} at the given ticks: a row for every entity seen
    at the tick. Derived specs read ``timelines`` of their inputs (at the same ticks)."""
    ticks_ = list(ticks_)
    out: dict[tuple[Key, datetime], Any] = {}
    if spec.kind == "derived":
        assert timelines is not None
        for tick in ticks_:
            keys = {k for name in spec.inputs for (k, t) in timelines[name] if t == tick}
            for key in keys:
                values = {name: timelines[name].get((key, tick)) for name in spec.inputs}
                out[(key, tick)] = spec.combine(values)
        return out
    eligible = _eligible(spec, list(rows))
    keys = {k for k, _, _ in eligible}
    for tick in ticks_:
        for key in keys:
            seen, value = value_at(spec, eligible, key, tick)
            if seen:
                out[(key, tick)] = value
    return out


def lookup(spec: Spec, tl: Mapping[tuple[Key, datetime], Any], key: Key, t: datetime | None) -> Any:
    """Point-in-time value for a spine row: the row at the latest materialized tick T ≤ t
    with a row for the key; NULL if none or if t − T > TTL."""
    if t is None or any(v is None for v in key):
        return None
    t = as_utc(t)
    best = None
    for k, tick in tl:
        if k == key and tick <= t and (best is None or tick > best):
            best = tick
    if best is None:
        return None
    if spec.ttl is not None and t - best > spec.ttl:
        return None
    return tl[(key, best)]


def training_set(
    specs: Sequence[Spec],
    timelines: Mapping[str, Mapping[tuple[Key, datetime], Any]],
    spine: Sequence[Row],
    time_column: str = "event_time",
) -> list[dict[str, Any]]:
    """Each spine row (unchanged) plus one value per spec."""
    out = []
    for row in spine:
        result = dict(row)
        for spec in specs:
            key = tuple(row[k] for k in spec.keys)
            result[spec.name] = lookup(spec, timelines[spec.name], key, row[time_column])
        out.append(result)
    return out
