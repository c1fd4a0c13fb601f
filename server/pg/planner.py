"""The planner interface: what the wire layer asks of the surface it serves.

The wire layer (:mod:`fsql_server.pg`) answers PostgreSQL on its own: session statements,
COPY, the catalog emulation, and any other SQL in the session's sandboxed DuckDB. A surface
(fsql's: :mod:`fsql_server.features.surface`) adds what the wire layer knows nothing about,
through the objects below, which it hands to the worker's
:class:`~fsql_server.pg.state.ServerState` when it is wired in:

- a :class:`Planner`, asked for a plan at three points of the routing
  (:mod:`fsql_server.pg.router`): statements the SQL parser does not read, parsed statements
  before the catalog emulation, and parsed statements before they go to DuckDB;
- :class:`DataRelations`: the tables of its schemas that DuckDB scans (Arrow objects);
- a :class:`RelationCatalog`: the relations the pg_catalog/information_schema emulation shows;
- optionally a lane factory (:mod:`fsql_server.pg.stream`) and the ``/metrics`` text.

Sessions are typed ``Any`` here: the session module is built on the state, which holds these.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from fsql_server.pg.backend import Plan
from fsql_server.pg.catalog.model import Relation
from sqlglot import exp


class Planner(Protocol):
    """A surface's own statements (each method returns None for a statement not its own)."""

    def plan_text(self, session: Any, sql: str, words: list[str]) -> Plan | None:
        """A statement the SQL parser does not read (``words``: its first words, upper
        case), e.g. ``CREATE FEATURE``. Asked before parsing."""

    def plan_tree(self, session: Any, sql: str, tree: exp.Expression,
                  param_oids: Sequence[int]) -> Plan | None:
        """A parsed statement, asked first (before the catalog emulation)."""

    def plan_engine_tree(self, session: Any, sql: str, tree: exp.Expression,
                         param_oids: Sequence[int]) -> Plan | None:
        """A parsed statement about to run in the session's DuckDB (after the catalog and
        constant SELECTs), e.g. one calling a table function of the surface."""

    def shares_literals(self, sql: str) -> bool:
        """Whether simple-protocol statements like ``sql`` are worth planning with their
        literals as parameters: such statements that differ only in literals then share one
        plan, when that plan has a :attr:`~fsql_server.pg.backend.Plan.fast_lookup`."""


@dataclass(frozen=True)
class DataRelations:
    """The surface's tables that DuckDB scans: ``schema.name`` in a statement is read from
    ``provide(schema, name, equal_to)`` (an Arrow table or dataset; None when there is no such
    one). ``equal_to`` is None, or for the schemas in ``filtered``, the statement's equality
    filters on the relation (column → the values it must equal one of:
    :mod:`fsql_server.pg.pushdown`); the provider may give only the rows they allow."""

    provide: Callable[[str, str, Mapping[str, Sequence[Any]] | None], Any]
    #: the schemas whose tables come from ``provide``
    schemas: tuple[str, ...] = ()
    #: schema → the hint of the error for a name ``provide`` does not know
    hints: Mapping[str, str] = field(default_factory=dict)
    #: schemas whose tables change between statements: read again for every one
    volatile: frozenset[str] = frozenset()
    #: schemas whose provider reads less for equality filters (they must be volatile too: a
    #: relation is provided for each statement, with its filters)
    filtered: frozenset[str] = frozenset()
    #: a token that changes whenever the tables' columns may have (compared by identity;
    #: None: they never change): a cached statement reading them is planned again then
    version: Callable[[], object] | None = None


class RelationCatalog(Protocol):
    """The relations the catalog emulation shows (pg_class, information_schema.columns...)."""

    @property
    def schemas(self) -> Mapping[str, tuple[int, str]]:
        """Schema → (its oid, its comment)."""

    def version(self) -> object:
        """A token that changes whenever :meth:`relations` would (compared by identity)."""

    def relations(self) -> list[Relation]:
        """Every relation, now (sorted by schema, name)."""
