"""Reading stored timelines back as values per tick.

The offline store holds each feature's *changes* (:mod:`fsql.compile.sql`): the value of an
entity at tick *T* is its row with the greatest ``feature_time`` ≤ *T*. :func:`expand` turns
change rows into the dense view — every entity seen at each given tick with its value there —
the layout docs/semantics.md defines values in, used to inspect and test timelines.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import pyarrow as pa
from sqlglot import exp

from fsql.compile.plan import FEATURE_TIME
from fsql.compute.materialize import timeline_schema
from fsql.engines.duckdb import connect
from fsql.intervals import tick_range
from fsql.workspace import Workspace

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa


def materialized_ticks(
    intervals: Sequence[tuple[datetime, datetime]], every: timedelta
) -> list[datetime]:
    """The ticks inside ``intervals`` ([start, end) each), sorted, without repeats."""
    ticks: set[datetime] = set()
    for start, end in intervals:
        first, stop = tick_range(start, end, every)
        tick = first
        while tick < stop:
            ticks.add(tick)
            tick += every
    return sorted(ticks)


def expand(
    changes: pa.Table, key_names: Sequence[str], value: str, ticks: Sequence[datetime]
) -> pa.Table:
    """The dense view of a change timeline at ``ticks``: one row per (entity seen by the tick,
    tick) with the value of the entity's latest row at or before it, sorted by keys and time."""
    tick_table = pa.table({"__tick": pa.array(list(ticks), pa.timestamp("us", tz="UTC"))})
    keys = [exp.column(exp.to_identifier(k)) for k in key_names]
    distinct = exp.select(*keys).distinct().from_("__changes").subquery("__k")
    query = (
        exp.select(
            *[exp.column(exp.to_identifier(k), table="__k") for k in key_names],
            exp.alias_(exp.column("__tick", table="__t"), FEATURE_TIME),
            exp.column(exp.to_identifier(value), table="__c"),
        )
        .from_(distinct)
        .join(exp.to_table("__ticks").as_("__t"), join_type="CROSS")
        .join(
            exp.to_table("__changes").as_("__c"),
            on=exp.and_(
                *[
                    exp.EQ(
                        this=exp.column(exp.to_identifier(k), table="__k"),
                        expression=exp.column(exp.to_identifier(k), table="__c"),
                    )
                    for k in key_names
                ],
                exp.LTE(
                    this=exp.column(FEATURE_TIME, table="__c"),
                    expression=exp.column("__tick", table="__t"),
                ),
            ),
            join_type="ASOF",
        )
        .order_by(*[k.copy() for k in keys], FEATURE_TIME)
    )
    con = connect()
    try:
        con.register("__changes", changes)
        con.register("__ticks", tick_table)
        return con.sql(query.sql(dialect="duckdb")).to_arrow_table()
    finally:
        con.close()


def dense_timeline(workspace: Workspace, feature: str, version: int | None = None) -> pa.Table:
    """The committed timeline of ``feature`` (its current version by default) as values at
    every materialized tick (:func:`expand` over the ledger's ticks)."""
    registry = workspace.registry
    resolved = registry.analysis().features[feature]
    if version is None:
        version = registry.current()[feature].version
    changes = workspace.offline_store.read_timeline(feature, version, timeline_schema(resolved))
    ticks = materialized_ticks(registry.ledger_intervals(feature, version), resolved.definition.every)
    return expand(changes, resolved.entity.key_names, feature, ticks)
