"""Compilation targets: the SQL dialect of an engine plus what it can express, as data.

The compiler never asks "is this DuckDB?": it asks the target for a capability
(``asof_join``) and picks the construct that fits, and it
renders every expression with ``.sql(dialect=target.dialect)``. A new engine is one new
:class:`Target` (and one :class:`fsql.engines.base.Engine` subclass).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    """What the SQL generator may use on one engine."""

    #: the name users type (``--engine duckdb``) and the sqlglot dialect used to render
    name: str
    dialect: str
    #: ``ASOF LEFT JOIN`` exists; otherwise the point-in-time join uses a UNION + window pattern
    asof_join: bool


DUCKDB = Target(name="duckdb", dialect="duckdb", asof_join=True)
SPARK = Target(name="spark", dialect="spark", asof_join=False)

TARGETS: dict[str, Target] = {t.name: t for t in (DUCKDB, SPARK)}


def get_target(name: str) -> Target:
    """The target called ``name`` (``duckdb`` or ``spark``)."""
    try:
        return TARGETS[name]
    except KeyError:
        from fsql.errors import ConfigError

        raise ConfigError(
            f"unknown engine {name!r}; choose one of: {', '.join(sorted(TARGETS))}"
        ) from None
