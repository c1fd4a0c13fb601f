"""Push the latest values of a materialized feature timeline into the online store.

The online store serves, for (entity, now), what the offline point-in-time lookup returns:
the value at the latest materialized tick (docs/semantics.md). The timeline holds changes, so
each entity's value at the version's **last materialized tick** (the greatest tick inside the
ledger's committed intervals) is its latest row at or before that tick. A push computes those
with one DuckDB aggregate over the offline store's Parquet files (``arg_max_null``: DuckDB
streams the files and spills to disk under its memory limit), streams the result in record
batches of ``batch_size``, writes each value stamped with the last tick (the time at which it
holds: TTL is applied at read time, against that time), and only then activates the version
and records in the ledger that the committed intervals are online.

If the store fails mid-push the error propagates (``OnlineStoreUnavailable``), nothing is
activated and the ledger keeps saying "not online", so the next ``materialize`` run pushes
again (:func:`online_push_pending`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from fsql.engines.duckdb import connect
from fsql.registry.ledger import subtract_intervals
from fsql.stores.online.base import OnlineStore
from fsql.stores.online.codec import EPOCH, encode_column, encode_entity_key

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow.dataset as pads

    from fsql.language.definitions import ResolvedFeature
    from fsql.registry.base import Registry

Interval = tuple[datetime, datetime]


class TimelineLike(Protocol):
    """What a push reads: committed timeline files (:class:`fsql.stores.files.TimelineFiles`)."""

    def dataset(self) -> Any: ...


@dataclass(frozen=True)
class PushResult:
    """What one push wrote."""

    feature: str
    version: int
    #: the tick whose values were written (None: nothing materialized yet)
    tick: datetime | None
    rows: int
    seconds: float
    #: True when this push made ``version`` the active version in the online store
    activated: bool


def last_tick(intervals: Iterable[Interval], every: timedelta) -> datetime | None:
    """The greatest tick (whole multiple of ``every`` since the epoch) in any [start, end)."""
    step = every // timedelta(microseconds=1)
    best: datetime | None = None
    for start, end in intervals:
        end_us = (end - EPOCH) // timedelta(microseconds=1)
        start_us = (start - EPOCH) // timedelta(microseconds=1)
        tick_us = ((end_us - 1) // step) * step  # the last tick strictly before `end`
        if tick_us >= start_us:
            tick = EPOCH + timedelta(microseconds=tick_us)
            best = tick if best is None or tick > best else best
    return best


def online_push_pending(registry: Registry, feature: str, version: int) -> bool:
    """True when some committed interval of this version is not marked as pushed online
    (a previous push failed or never ran): the next materialize run should push again."""
    committed = registry.ledger_intervals(feature, version)
    online = registry.ledger_online_intervals(feature, version)

    return any(subtract_intervals(interval, online) for interval in committed)


def push_feature(
    store: OnlineStore,
    registry: Registry,
    feature: ResolvedFeature,
    version: int,
    timeline: TimelineLike | pads.Dataset,
    *,
    batch_size: int = 10_000,
    memory_limit: str | None = None,
) -> PushResult:
    """Push ``feature`` v``version``'s values at its last materialized tick, activate the
    version (unless a newer one is active) and mark every committed interval online.

    Call it after the offline data and its ledger entry are committed. Raises
    :class:`~fsql.errors.OnlineStoreUnavailable` / :class:`~fsql.errors.StoreError` on store
    failure, leaving the ledger unmarked.
    """
    started = time.perf_counter()
    intervals = registry.ledger_intervals(feature.name, version)
    tick = last_tick(intervals, feature.definition.every)
    rows = 0
    if tick is not None:
        rows = write_tick(
            store, feature, version, timeline, tick,
            batch_size=batch_size, memory_limit=memory_limit,
        )  # fmt: skip
    activated = activate_if_newer(store, feature.name, version)
    for start, end in intervals:
        registry.ledger_mark_online(feature.name, version, start, end)
    return PushResult(feature.name, version, tick, rows, time.perf_counter() - started, activated)


def activate_if_newer(store: OnlineStore, feature: str, version: int) -> bool:
    """Activate ``version`` unless the store already serves a newer one (pushing an old
    version, e.g. a backfill of v1 after v2 went live, must not switch readers back)."""
    current = store.active_versions([feature]).get(feature)
    if current is not None and current.isdigit() and int(current) > version:
        return False
    if current != str(version):
        store.activate(feature, str(version))
    return True


def write_tick(
    store: OnlineStore,
    feature: ResolvedFeature,
    version: int,
    timeline: TimelineLike | pads.Dataset,
    tick: datetime,
    *,
    batch_size: int = 10_000,
    memory_limit: str | None = None,
) -> int:
    """Write every entity's value at ``tick`` to the store (not activating), stamped with
    ``tick``. Returns rows written."""

    import pyarrow.dataset as pads  # loads pandas when installed: only when data is read

    dataset = timeline if isinstance(timeline, pads.Dataset) else timeline.dataset()
    keys = list(feature.entity.key_names)
    stamp = pa.scalar(tick, type=pa.timestamp("us", tz="UTC"))
    con = connect(memory_limit=memory_limit)
    try:
        con.register("__timeline", dataset)
        query = con.sql(latest_values_sql(keys, feature.name), params=[tick])
        reader = query.to_arrow_reader(batch_size)

        def stamped() -> Iterator[pa.RecordBatch]:
            for batch in reader:
                times = pa.array([stamp] * batch.num_rows, pa.timestamp("us", tz="UTC"))
                yield pa.RecordBatch.from_arrays(
                    [*batch.columns[:-1], times, batch.column(len(keys))],
                    names=[*keys, "feature_time", feature.name],
                )

        return write_batches(
            store, feature.entity.name, feature.name, str(version), feature.value_type, keys,
            stamped(),
        )  # fmt: skip
    finally:
        con.close()


def latest_values_sql(keys: Sequence[str], value: str) -> str:
    """DuckDB SQL over ``__timeline``: each key's value of its latest row at or before the
    instant ``$1`` (a NULL value included: ``arg_max_null``)."""
    key_columns = [exp.column(exp.to_identifier(k)) for k in keys]
    latest = exp.Anonymous(
        this="arg_max_null",
        expressions=[exp.column(exp.to_identifier(value)), exp.column("feature_time")],
    )
    query = (
        exp.select(*key_columns, exp.alias_(latest, exp.to_identifier(value)))
        .from_("__timeline")
        .where(exp.LTE(this=exp.column("feature_time"), expression=exp.Parameter(this=exp.Literal.number(1))))
        .group_by(*[c.copy() for c in key_columns])
    )
    return query.sql(dialect="duckdb")


def write_batches(
    store: OnlineStore,
    entity: str,
    feature: str,
    version: str,
    value_type: str,
    key_columns: Sequence[str],
    batches: Iterable[pa.RecordBatch],
    *,
    expires_at: datetime | None = None,
) -> int:
    """Encode and write record batches (key columns, ``feature_time``, ``feature``), one store
    round trip per batch (:meth:`~fsql.stores.online.base.OnlineStore.write_many`: with
    Redis, the next batch is encoded while Redis runs one). Returns rows written."""

    def encoded() -> Iterator[tuple[list[str], list[bytes]]]:
        for batch in batches:
            if batch.num_rows:
                keys = encode_key_columns([batch.column(k) for k in key_columns])
                records = encode_column(value_type, batch.column(feature),
                                        _micros(batch.column("feature_time")), expires_at)  # fmt: skip
                yield keys, records

    return store.write_many(entity, feature, version, encoded())


def _micros(column: pa.Array) -> pa.Array:

    return column.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())


def encode_key_columns(columns: Sequence[pa.Array]) -> list[str]:
    """:func:`~fsql.stores.online.codec.encode_entity_key` of each row of the key columns.

    One integer column (the common key) is cast to text by Arrow, and a text column without
    ``|`` or ``\\`` (nothing to escape) is taken as is; anything else goes value by value."""

    if len(columns) == 1:
        column = columns[0]
        kind = column.type
        if column.null_count == 0:
            if pa.types.is_integer(kind):
                return column.cast(pa.string()).to_pylist()  # type: ignore[no-any-return]
            if pa.types.is_string(kind) or pa.types.is_large_string(kind):
                special = pc.any(pc.match_substring_regex(column, r"[|\\]")).as_py()
                if not special:
                    return column.to_pylist()  # type: ignore[no-any-return]
        return [encode_entity_key(k) for k in column.to_pylist()]
    lists = [c.to_pylist() for c in columns]
    return [encode_entity_key(tuple(parts)) for parts in zip(*lists, strict=True)]
