"""fsql's surface: what the wire layer serves beyond plain PostgreSQL, through its planner
interface (:mod:`fsql_server.pg.planner`).

- ``features.<entity>``: point lookups in the online store (:mod:`.lookup`), answered the short
  way by the message loop and, on Redis, by the fast lane (:mod:`.fast_lane`); any other
  statement over it runs in DuckDB over a scan of the online store (:mod:`.scan`);
- ``offline.<feature>`` / ``sources.<source>`` / ``fsql.<table>``: Arrow data DuckDB scans
  (:mod:`.services`), shown by the catalog emulation too (:mod:`.catalog`);
- ``training_set('<spine>', 'feature_or_set', ...)`` (:mod:`.training`);
- ``CREATE ENTITY/SOURCE/FEATURE/FEATURE SET`` and ``DROP ...`` (:mod:`.definitions`);
- fsql's errors as SQLSTATEs (:mod:`.errors`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from fsql_server.features import errors
from fsql_server.features.catalog import FsqlRelations
from fsql_server.features.definitions import is_definition, plan_definition
from fsql_server.features.fast_lane import FastLane
from fsql_server.features.lookup import plan_lookup
from fsql_server.features.services import Services
from fsql_server.features.training import plan_training_set
from fsql_server.pg.backend import Plan
from fsql_server.pg.planner import DataRelations
from fsql_server.pg.session import Session
from fsql_server.pg.state import ServerState
from fsql_server.pg.stream import ClientProtocol, Lane
from sqlglot import exp

#: statements that may be point lookups: worth planning with their literals as parameters
_FEATURES_REF = re.compile(r"\bfeatures\s*\.", re.I)

#: the schemas whose tables DuckDB reads from fsql's data
DATA_SCHEMAS = ("features", "offline", "sources", "fsql")
_MISSING_HINTS = {
    "features": "features.<entity> holds the current values of an entity's online features; "
    "SELECT name FROM fsql.entities lists the entities.",
    "offline": "offline.<feature> reads a feature's timeline; SELECT name FROM fsql.features "
    "lists the features.",
    "sources": "sources.<source> reads a source's files; SELECT name FROM fsql.sources lists "
    "the sources.",
    "fsql": "The registry tables are fsql.entities, fsql.sources, fsql.features, "
    "fsql.feature_versions, fsql.feature_sets, fsql.lineage and fsql.materializations.",
}


class FsqlSurface:
    """fsql's :class:`~fsql_server.pg.planner.Planner`, over one worker's services."""

    def __init__(self, services: Services):
        self.services = services

    def plan_text(self, session: Session, sql: str, words: list[str]) -> Plan | None:
        if not is_definition(words):
            return None
        return plan_definition(session, sql, self.services)

    def plan_tree(self, session: Session, sql: str, tree: exp.Expression,
                  param_oids: Sequence[int]) -> Plan | None:
        return plan_lookup(session, sql, tree, param_oids, self.services)

    def plan_engine_tree(self, session: Session, sql: str, tree: exp.Expression,
                         param_oids: Sequence[int]) -> Plan | None:
        return plan_training_set(session, sql, tree, param_oids, self.services)

    def shares_literals(self, sql: str) -> bool:
        return _FEATURES_REF.search(sql) is not None

    def open_lane(self, connection: Any, protocol: ClientProtocol) -> Lane | None:
        """The fast lane, for lookups on Redis only (the lane reads Redis itself)."""
        if self.services.lookup_reader is None:
            return None
        return FastLane(connection, protocol)

    def attach(self, state: ServerState) -> None:
        """Wire this surface into a worker's state (and fsql's errors into the mapping)."""
        errors.register()
        state.planner = self
        state.relations = DataRelations(self.services.relation, DATA_SCHEMAS, _MISSING_HINTS,
                                        volatile=frozenset({"fsql", "features"}),
                                        filtered=frozenset({"features"}),
                                        version=lambda: self.services.catalog.current())
        state.relation_catalog = FsqlRelations(self.services)
        state.open_lane = self.open_lane
        state.metrics_text = self.services.metrics
