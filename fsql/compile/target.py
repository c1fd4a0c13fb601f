"""Compilation targets: the SQL dialect of an engine plus what it can express, as data.

The compiler never asks "is this DuckDB?": it asks the target for a capability
(``pit_query_per_feature``) and picks the plan that fits, and it
renders every expression with ``.sql(dialect=target.dialect)``. A new engine is one new
:class:`Target` (and one :class:`fsql.engines.base.Engine` subclass).
"""

from __future__ import annotations

from dataclasses import dataclass

from fsql.errors import ConfigError


@dataclass(frozen=True)
class Target:
    """What the SQL generator may use on one engine."""

    #: the name users type (``--engine duckdb``) and the sqlglot dialect used to render
    name: str
    dialect: str
    #: ``ASOF LEFT JOIN`` exists: the point-in-time join uses it; targets without it get one
    #: window pass per feature (:func:`fsql.compile.pit.point_in_time_join`)
    asof_join: bool
    #: run the point-in-time join as one query per feature rather than one query for all
    #: (DuckDB: each ASOF join sorts its own inputs, and separate queries keep one feature's
    #: data in memory at a time); Spark prefers one job
    pit_query_per_feature: bool = False


DUCKDB = Target(name="duckdb", dialect="duckdb", asof_join=True, pit_query_per_feature=True)
SPARK = Target(name="spark", dialect="spark", asof_join=False)

TARGETS: dict[str, Target] = {t.name: t for t in (DUCKDB, SPARK)}


def get_target(name: str) -> Target:
    """The target called ``name`` (``duckdb`` or ``spark``)."""
    try:
        return TARGETS[name]
    except KeyError:
        raise ConfigError(
            f"unknown engine {name!r}; choose one of: {', '.join(sorted(TARGETS))}"
        ) from None
