"""Definitions as immutable values: what one ``CREATE ...`` statement says.

The parser (:mod:`fsql.language.parser`) turns SQL text into these; the analyser
(:mod:`fsql.language.analysis`) resolves them against each other into :class:`ResolvedFeature`;
the registry (:mod:`fsql.registry`) versions them by the hash of :meth:`Definition.canonical_sql`,
so reformatting or re-commenting a file changes nothing while any change in meaning does.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import timedelta
from typing import ClassVar, Literal

from fsql.errors import Location
from fsql.intervals import format_interval

DEFAULT_EVERY = timedelta(days=1)

Kind = Literal["entity", "source", "feature", "feature_set", "check"]
KINDS: tuple[Kind, ...] = ("entity", "source", "feature", "feature_set", "check")
#: how a failed data check acts on its run: ``error`` fails it, ``warn`` only records it
Severity = Literal["error", "warn"]


def quote_ident(name: str) -> str:
    """Quote an identifier only when needed (lower-case, [a-z0-9_], not starting with a digit)."""
    if name and name.replace("_", "a").isalnum() and name.islower() and not name[0].isdigit():
        return name
    return '"' + name.replace('"', '""') + '"'


def quote_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class Column:
    """A named, typed column. ``type`` is the canonical upper-case SQL type (e.g. ``DOUBLE``)."""

    name: str
    type: str

    def sql(self) -> str:
        return f"{quote_ident(self.name)} {self.type}"


@dataclass(frozen=True, kw_only=True)
class Definition:
    """Base of every definition. ``location``/``source_text`` do not take part in equality."""

    kind: ClassVar[Kind]
    name: str
    description: str | None = None
    location: Location | None = field(default=None, compare=False, repr=False)
    source_text: str | None = field(default=None, compare=False, repr=False)

    def canonical_sql(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def fingerprint(self) -> str:
        """Hash of the normalised definition (its own content only; see the registry for
        how upstream changes propagate to dependents)."""
        return hashlib.sha256(self.canonical_sql().encode()).hexdigest()[:16]

    def _description_sql(self) -> str:
        return f" DESCRIPTION {quote_str(self.description)}" if self.description else ""


@dataclass(frozen=True, kw_only=True)
class EntityDef(Definition):
    """``CREATE ENTITY user KEY (user_id VARCHAR) DESCRIPTION '...'``."""

    kind: ClassVar[Kind] = "entity"
    keys: tuple[Column, ...]

    @property
    def key_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.keys)

    def canonical_sql(self) -> str:
        keys = ", ".join(c.sql() for c in self.keys)
        return f"CREATE ENTITY {quote_ident(self.name)} KEY ({keys}){self._description_sql()}"


@dataclass(frozen=True, kw_only=True)
class SourceDef(Definition):
    """``CREATE SOURCE purchases (cols) FROM 'path' FORMAT PARQUET EVENT TIME ts ...``.

    ``path`` is relative to the repo root unless it is absolute or an ``s3://`` URI.
    """

    kind: ClassVar[Kind] = "source"
    columns: tuple[Column, ...]
    path: str
    format: Literal["parquet", "csv"] = "parquet"
    event_time: str
    created_time: str | None = None
    #: ``LATENESS '2 hours'``: how late rows may arrive; a tick T is materialized only once
    #: now ≥ T + lateness (the watermark, docs/semantics.md)
    lateness: timedelta | None = None

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)

    def canonical_sql(self) -> str:
        cols = ", ".join(c.sql() for c in self.columns)
        text = (
            f"CREATE SOURCE {quote_ident(self.name)} ({cols}) FROM {quote_str(self.path)}"
            f" FORMAT {self.format.upper()} EVENT TIME {quote_ident(self.event_time)}"
        )
        if self.created_time:
            text += f" CREATED TIME {quote_ident(self.created_time)}"
        if self.lateness:
            text += f" LATENESS {quote_str(format_interval(self.lateness))}"
        return text + self._description_sql()


@dataclass(frozen=True, kw_only=True)
class FeatureDef(Definition):
    """``CREATE FEATURE name ENTITY e [TYPE t] [WINDOW w] [EVERY c] [TTL t] [ONLINE b]
    [EXPECT (check, ...)] AS SELECT``.

    ``query`` is the SELECT rendered canonically by the fsql dialect (comments and layout
    dropped), so it is safe to hash and to re-parse. ``expect`` holds the inline data checks as
    ``(expression, severity)`` in written order (expressions canonical like ``query``); they
    are named ``<feature>_expect_<n>`` (see :mod:`fsql.language.checks`).
    """

    kind: ClassVar[Kind] = "feature"
    entity: str
    query: str
    type: str | None = None
    window: timedelta | None = None
    every: timedelta = DEFAULT_EVERY
    ttl: timedelta | None = None
    online: bool = True
    expect: tuple[tuple[str, Severity], ...] = ()

    def canonical_sql(self) -> str:
        text = f"CREATE FEATURE {quote_ident(self.name)} ENTITY {quote_ident(self.entity)}"
        if self.type:
            text += f" TYPE {self.type}"
        if self.window is not None:
            text += f" WINDOW {quote_str(format_interval(self.window))}"
        text += f" EVERY {quote_str(format_interval(self.every))}"
        if self.ttl is not None:
            text += f" TTL {quote_str(format_interval(self.ttl))}"
        text += f" ONLINE {'TRUE' if self.online else 'FALSE'}"
        if self.expect:  # nothing when empty: fingerprints of features without checks stay
            checks = ", ".join(
                expression + (" WARN" if severity == "warn" else "")
                for expression, severity in self.expect
            )
            text += f" EXPECT ({checks})"
        return text + self._description_sql() + f" AS {self.query}"


@dataclass(frozen=True, kw_only=True)
class FeatureSetDef(Definition):
    """``CREATE FEATURE SET fraud_model_v1 (f1, f2)``: a named, ordered list of features."""

    kind: ClassVar[Kind] = "feature_set"
    features: tuple[str, ...]

    def canonical_sql(self) -> str:
        feats = ", ".join(quote_ident(f) for f in self.features)
        return f"CREATE FEATURE SET {quote_ident(self.name)} ({feats}){self._description_sql()}"


@dataclass(frozen=True, kw_only=True)
class CheckDef(Definition):
    """``CREATE CHECK name ON feature EXPECT (expr) [WARN|ERROR] [DESCRIPTION '...']``: a data
    check on what each materialization run of ``feature`` writes.

    ``expression`` is the boolean expression rendered canonically by the fsql dialect; it reads
    ``value`` (a row check) or the run statistics (``rows``, ``null_fraction``, ...), see
    :mod:`fsql.language.checks`. A failed ``error`` check fails the run; ``warn`` only records.
    """

    kind: ClassVar[Kind] = "check"
    feature: str
    expression: str
    severity: Severity = "error"

    def canonical_sql(self) -> str:
        text = (
            f"CREATE CHECK {quote_ident(self.name)} ON {quote_ident(self.feature)}"
            f" EXPECT ({self.expression}) {self.severity.upper()}"
        )
        return text + self._description_sql()


@dataclass(frozen=True, kw_only=True)
class DropDef:
    """``DROP FEATURE|ENTITY|SOURCE|FEATURE SET|CHECK name``: retire a definition."""

    target_kind: Kind
    name: str
    if_exists: bool = False
    location: Location | None = field(default=None, compare=False, repr=False)

    def canonical_sql(self) -> str:
        kw = self.target_kind.replace("_", " ").upper()
        return f"DROP {kw} {'IF EXISTS ' if self.if_exists else ''}{quote_ident(self.name)}"


Statement = EntityDef | SourceDef | FeatureDef | FeatureSetDef | CheckDef | DropDef
AnyDefinition = EntityDef | SourceDef | FeatureDef | FeatureSetDef | CheckDef


# ---------------------------------------------------------------------------------------------
# Resolved form: what the compiler needs, produced by fsql.language.analysis from a consistent set of
# definitions.

AggFunc = Literal["sum", "count", "count_distinct", "avg", "min", "max"]
FeatureKind = Literal["aggregate", "latest", "derived"]


@dataclass(frozen=True)
class Aggregate:
    """One aggregate call in a feature's SELECT: ``func(arg)``; ``arg`` is SQL over source
    columns (``None`` for ``COUNT(*)``)."""

    func: AggFunc
    arg: str | None


@dataclass(frozen=True)
class ResolvedFeature:
    """A feature with everything resolved: its kind, source, aggregates and inferred type.

    - ``aggregate``: ``value_expr`` combines the aggregates, referenced as ``__agg0``,
      ``__agg1``, ... (for a plain ``SUM(amount)`` it is just ``__agg0``), over source rows
      that pass ``filter``, grouped by ``key_exprs`` and windowed by ``definition.window``.
    - ``latest``: ``value_expr`` is evaluated on the latest source row (by event time, then
      created time) passing ``filter``.
    - ``derived``: ``value_expr`` reads the features in ``inputs`` (by name) of the same
      entity at the same tick; ``source`` is ``None``.

    All SQL strings are in the fsql dialect (PostgreSQL-like); compilers re-parse them.
    """

    definition: FeatureDef
    entity: EntityDef
    kind: FeatureKind
    value_type: str
    value_expr: str
    source: SourceDef | None = None
    #: SQL over source columns giving each entity key, in the entity's key order
    key_exprs: tuple[str, ...] = ()
    aggregates: tuple[Aggregate, ...] = ()
    filter: str | None = None
    #: features this one reads (derived features only)
    inputs: tuple[str, ...] = ()
    #: source columns read (lineage), sorted
    columns: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.definition.name


@dataclass(frozen=True)
class LineageEdge:
    """One dependency: ``(from_kind, from_name)`` depends on ``(to_kind, to_name)``, and on
    its ``column`` when the target is a source column (``None`` for the object as a whole)."""

    from_kind: str
    from_name: str
    to_kind: str
    to_name: str
    column: str | None = None
