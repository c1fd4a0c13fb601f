"""``features.<entity>``: current online values, one row per requested key.

A point lookup is planned once into a :class:`LookupPlan` (parsing, name resolution, key
typing) that reads the online store (never DuckDB) and applies each value's TTL exactly like
the Python API (:mod:`fsql.serving.reader`). The plan says what it can do through
:attr:`~fsql_server.pg.backend.Plan.fast_lookup`: the message loop sends its rows the short
way, and the fast lane (:mod:`.fast_lane`) answers repeats without the loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from fsql_server.features.scan import online_features
from fsql_server.features.services import Services
from fsql_server.pg import errors
from fsql_server.pg.backend import Column, Plan, Result
from fsql_server.pg.catalog.model import object_oid
from fsql_server.pg.errors import PgError
from fsql_server.pg.pushdown import conjuncts
from fsql_server.pg.session import Session
from fsql_server.pg.types import INT4, INT8, TEXT, TYPES, PgType, sql_type_to_pg
from sqlglot import exp

from fsql.language.definitions import EntityDef, FeatureDef
from fsql.secrets import redact
from fsql.serving.reader import ReadPlan

#: a lookup of this many keys (array parameters) runs in a thread (see LookupPlan.heavy)
HEAVY_KEYS = 2000


class _Slot:
    """Where a value comes from at run time: a client parameter or a literal. A ``many`` slot
    is an array parameter (``key = ANY($1)``) standing for several values."""

    __slots__ = ("many", "param", "value")

    def __init__(self, param: int | None = None, value: Any = None, many: bool = False):
        self.param = param
        self.value = value
        self.many = many

    def get(self, params: Sequence[Any]) -> Any:
        return params[self.param] if self.param is not None else self.value

    def values(self, params: Sequence[Any]) -> list[Any]:
        value = self.get(params)
        if not self.many:
            return [value]
        return [] if value is None else list(value)


class LookupPlan(Plan):
    """``SELECT cols FROM features.<entity> WHERE key = $1 | key IN (...) [ORDER BY] [LIMIT]``.

    Planned once (parsing, name resolution, key typing); running it is one online-store
    read, the TTL check and the projection — no SQL engine involved.
    """

    interruptible = False

    def __init__(self, sql: str, entity: str, key_types: list[PgType],
                 key_rows: list[list[_Slot]], outputs: list[tuple[str, int]],
                 columns: list[Column], feature_names: list[str],
                 order: list[tuple[int, bool]], limit: _Slot | None, offset: _Slot | None,
                 param_types: tuple[PgType, ...], services: Services):
        self.sql = sql
        self.entity = entity
        self.key_types = key_types
        self.key_rows = key_rows
        self.outputs = outputs
        self.columns = columns
        self.feature_names = feature_names
        self.order = order
        self.limit = limit
        self.offset = offset
        self.param_types = param_types
        self.services = services
        self.command = "SELECT"
        self.output_positions = [i for _, i in outputs]
        #: the one slot of ``key = <value>`` (None for IN lists, arrays and composite keys)
        self._single = key_rows[0][0] if len(key_rows) == 1 and len(key_rows[0]) == 1 \
            and not key_rows[0][0].many else None
        #: no ORDER BY, LIMIT or OFFSET to apply
        self.plain = not order and limit is None and offset is None
        #: the registry state this plan was made from (see :meth:`stale`)
        self.planned_from: object = services.catalog.current()
        #: what the wire layer asks of a plan: this one is a point lookup
        self.fast_lookup = self

    def describe(self, session: Session) -> list[Column] | None:
        return self.columns

    def explain(self, session: Session) -> list[str]:
        return [
            f"Online store lookup on entity {self.entity} (one row per key; no SQL engine)",
            f"  features: {', '.join(self.feature_names) or '(none online)'}",
            f"  output: {', '.join(name for name, _ in self.outputs)}",
            f"  store: {redact(self.services.config.online_store.url)}",
        ]

    def stale(self) -> bool:
        """True when the registry changed the entity's online features since planning (the
        session's plan cache then plans the statement again)."""
        current = self.services.catalog.current()
        if current is self.planned_from:
            return False
        features = sorted(
            name for name, r in current.items()
            if isinstance(r.definition, FeatureDef) and r.definition.entity == self.entity
            and r.definition.online
        )
        if features != self.feature_names:
            return True
        self.planned_from = current
        return False

    def keys(self, params: Sequence[Any]) -> list[Any]:
        """The distinct entity keys asked for, in the order given (NULL keys match nothing)."""
        if self._single is not None:  # key = <one value>: the common shape, no combinations
            value = _coerce_key(self._single.get(params), self.key_types[0])
            return [] if value is None else [value]
        keys: list[Any] = []
        seen = set()
        for row in self.key_rows:
            combos: list[tuple[Any, ...]] = [()]
            for slot, kind in zip(row, self.key_types, strict=True):
                combos = [c + (_coerce_key(v, kind),) for c in combos
                          for v in slot.values(params)]
            for values in combos:
                if any(v is None for v in values) or values in seen:
                    continue  # key = NULL matches nothing, as in SQL
                seen.add(values)
                keys.append(values[0] if len(values) == 1 else values)
        return keys

    async def read(self, keys: list[Any]) -> list[list[Any]]:
        """The served values (TTL applied) of every feature for each key: the Python API's
        read plan (:class:`fsql.serving.reader.ReadPlan`), over the worker's own Redis reader."""
        catalog = self.services.catalog
        try:
            plan = ReadPlan.for_ids(catalog, self.feature_names)
            reader = self.services.lookup_reader
            now = datetime.now(UTC)
            if reader is not None:
                # non-blocking: the lookups of every session in one event-loop iteration
                # share one Redis round trip (see fsql.stores.online.reader)
                # (the reader has the store's read API, not the whole OnlineStore interface)
                return await plan.values_async(reader, keys, now)  # type: ignore[arg-type]
            if self.services.read_async:
                return await plan.values_async(self.services.online, keys, now)
            # SQLite: one point read costs less CPU inline than a thread hop
            return plan.values(self.services.online, keys, now)
        except Exception as exc:  # noqa: BLE001 - errors become SQLSTATEs in one place
            raise errors.to_pg_error(exc, self.sql) from None

    async def run(self, session: Session, params: Sequence[Any]) -> Result:
        if self.heavy(params):  # not interruptible: one thread per session (ThreadWork)
            rows = await session.threads.run(self.rows_in_thread, params)
            return Result(self.columns, rows, "SELECT")
        return Result(self.columns, await self.rows(params), "SELECT")

    def heavy(self, params: Sequence[Any]) -> bool:
        """True when an array parameter holds HEAVY_KEYS keys or more (``key = ANY($1)``
        with 200,000 keys: seconds of work proportional to the keys): the connection then
        runs the plan instead of the loop's lookup path, in a thread (:meth:`run`) and
        under the statement timeout."""
        if self._single is not None:
            return False
        count = 0
        for row in self.key_rows:
            for slot in row:
                if slot.many:
                    value = slot.get(params)
                    count += len(value) if isinstance(value, list | tuple) else 0
        return count >= HEAVY_KEYS

    def rows_in_thread(self, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """:meth:`rows` in an executor thread, through the store's own (blocking) read."""
        keys = self.keys(params)
        if keys and self.feature_names:
            try:
                plan = ReadPlan.for_ids(self.services.catalog, self.feature_names)
                values_by_key = plan.values(self.services.online, keys, datetime.now(UTC))
            except Exception as exc:  # noqa: BLE001 - errors become SQLSTATEs in one place
                raise errors.to_pg_error(exc, self.sql) from None
        else:
            values_by_key = [[None] * len(self.feature_names) for _ in keys]
        return self.project(keys, values_by_key, params)

    async def rows(self, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """The result rows: one per key that was asked for, projected and ordered."""
        keys = self.keys(params)
        if keys and self.feature_names:
            values_by_key = await self.read(keys)
        else:
            values_by_key = [[None] * len(self.feature_names) for _ in keys]
        return self.project(keys, values_by_key, params)

    def project(self, keys: list[Any], values_by_key: list[list[Any]],
                 params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """One row per key (key columns, then the served features), projected and ordered."""
        outputs = self.output_positions
        rows = []
        for key, features in zip(keys, values_by_key, strict=True):
            full = (list(key) if isinstance(key, tuple) else [key]) + features
            rows.append(tuple([full[i] for i in outputs]))
        if not self.plain:
            for index, descending in reversed(self.order):
                rows.sort(key=_sort_key(index), reverse=descending)
            start = int(self.offset.get(params) or 0) if self.offset else 0
            if self.limit is not None and self.limit.get(params) is not None:
                rows = rows[start : start + int(self.limit.get(params))]
            elif start:
                rows = rows[start:]
        return rows


def _sort_key(index: int) -> Callable[[tuple[Any, ...]], tuple[bool, Any]]:
    """ORDER BY one output column, NULLs last ascending and first descending (as in PG)."""

    def key(row: tuple[Any, ...]) -> tuple[bool, Any]:
        value = row[index]
        return value is None, 0 if value is None else value

    return key


def _coerce_key(value: Any, kind: PgType) -> Any:
    if value is None:
        return None
    if kind in (INT8, INT4) or kind.oid == 21:
        try:
            return int(value)
        except (TypeError, ValueError):
            raise PgError(errors.INVALID_TEXT_REPRESENTATION,
                          f'invalid input syntax for type {kind.name}: "{value}"') from None
    if kind is TEXT or kind.oid == 1043:
        return value if isinstance(value, str) else str(value)
    return value


def _features_table(tree: exp.Expression) -> exp.Table | None:
    for table in tree.find_all(exp.Table):
        if table.db.lower() == "features" and not table.catalog:
            return table
    return None


class NotALookup(Exception):
    """The statement is no point lookup: it runs over the relation instead (:mod:`.scan`)."""


def plan_lookup(session: Session, sql: str, tree: exp.Expression,
                param_oids: Sequence[int], services: Services) -> Plan | None:
    try:
        return _plan_lookup(session, sql, tree, param_oids, services)
    except NotALookup:
        return None


def _plan_lookup(session: Session, sql: str, tree: exp.Expression,
                 param_oids: Sequence[int], services: Services) -> Plan | None:
    """A :class:`LookupPlan` when ``tree`` is a point lookup on ``features.<entity>``: one
    entity, columns (maybe renamed), every key column given by ``=``/``IN``/``= ANY``, ORDER BY
    output columns, LIMIT/OFFSET. None otherwise: any other statement over
    ``features.<entity>`` runs in DuckDB over the relation (:mod:`.scan`)."""
    table = _features_table(tree)
    if table is None:
        return None
    entity_name = table.name
    if not isinstance(tree, exp.Select) or tree.args.get("joins") or any(
        tree.args.get(k) for k in ("group", "having", "with_", "distinct", "qualify", "windows")
    ) or not isinstance(tree.args.get("from_"), exp.From) or tree.args["from_"].this is not table:
        return None
    if any(node is not table and isinstance(node, exp.Table) for node in tree.find_all(exp.Table)):
        return None  # a subquery in the WHERE clause or the columns
    catalog = services.catalog
    try:
        current = catalog.current()
        analysis = catalog.analysis()
    except Exception as exc:  # noqa: BLE001 - errors become SQLSTATEs in one place
        raise errors.to_pg_error(exc, sql) from None
    record = current.get(entity_name)
    if record is None or not isinstance(record.definition, EntityDef):
        entities = sorted(r.name for r in current.values() if isinstance(r.definition, EntityDef))
        raise PgError(errors.UNDEFINED_TABLE, f'relation "features.{entity_name}" does not exist',
                      position=text_position(sql, entity_name),
                      hint=f"entities: {', '.join(entities) or 'none yet'}")
    entity: EntityDef = record.definition
    features = online_features(catalog, entity_name)  # the relation's columns too
    names = [k.name for k in entity.keys] + features
    types = [sql_type_to_pg(k.type) for k in entity.keys] + [
        sql_type_to_pg(analysis.features[f].value_type) for f in features
    ]
    lower = {n.lower(): i for i, n in enumerate(names)}
    alias = table.alias_or_name.lower()

    def column_index(col: exp.Column) -> int:
        if col.table and col.table.lower() not in (alias, entity_name.lower()):
            raise PgError(errors.UNDEFINED_TABLE,
                          f'missing FROM-clause entry for table "{col.table}"',
                          position=text_position(sql, col.table))
        index = lower.get(col.name.lower())
        if index is None:
            raise PgError(errors.UNDEFINED_COLUMN, f'column "{col.name}" does not exist',
                          position=text_position(sql, col.name),
                          hint=f"features.{entity_name} has: {', '.join(names)}")
        return index

    outputs: list[tuple[str, int]] = []
    for projection in tree.expressions:
        if isinstance(projection, exp.Star) or (
            isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star)
        ):
            outputs.extend((n, i) for i, n in enumerate(names))
        elif isinstance(projection, exp.Column):
            index = column_index(projection)
            outputs.append((names[index], index))
        elif isinstance(projection, exp.Alias) and isinstance(projection.this, exp.Column):
            outputs.append((projection.alias, column_index(projection.this)))
        else:
            return None  # an expression: DuckDB computes it over the relation
    param_types: list[PgType | None] = [TYPES.get(o) if o and o != 705 else None
                                        for o in param_oids]

    def slot(node: exp.Expression, kind: PgType) -> _Slot:
        if isinstance(node, exp.Cast):
            node = node.this
        if isinstance(node, exp.Parameter):
            index = int(node.this.name) - 1
            while len(param_types) <= index:
                param_types.append(None)
            if param_types[index] is None:
                param_types[index] = kind
            return _Slot(param=index)
        if isinstance(node, exp.Literal):
            return _Slot(value=node.this if node.is_string else int(node.this)
                         if node.this.lstrip("-").isdigit() else node.this)
        if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal) \
                and node.this.this.isdigit():
            return _Slot(value=-int(node.this.this))
        raise NotALookup

    key_names = [k.name.lower() for k in entity.keys]
    key_types = types[: len(key_names)]
    per_key: dict[str, list[_Slot]] = {}
    where = tree.args.get("where")
    conditions = conjuncts(where.this) if where is not None else []
    for condition in conditions:
        if isinstance(condition, exp.EQ) and isinstance(condition.expression, exp.Any) \
                and isinstance(condition.this, exp.Column) \
                and condition.this.name.lower() in key_names:
            i = key_names.index(condition.this.name.lower())
            inner = condition.expression.this
            while isinstance(inner, exp.Paren):
                inner = inner.this
            if isinstance(inner, exp.Array):
                per_key[key_names[i]] = [slot(v, key_types[i]) for v in inner.expressions]
                continue
            if isinstance(inner, exp.Cast):
                inner = inner.this
            if isinstance(inner, exp.Parameter):
                index = int(inner.this.name) - 1
                while len(param_types) <= index:
                    param_types.append(None)
                if param_types[index] is None:
                    param_types[index] = TYPES.get(key_types[i].array_oid, TEXT)
                per_key[key_names[i]] = [_Slot(param=index, many=True)]
                continue
        if isinstance(condition, exp.EQ):
            col, value = condition.this, condition.expression
            if not isinstance(col, exp.Column):
                col, value = value, col
            if isinstance(col, exp.Column) and col.name.lower() in key_names:
                i = key_names.index(col.name.lower())
                per_key[key_names[i]] = [slot(value, key_types[i])]
                continue
        if isinstance(condition, exp.In) and isinstance(condition.this, exp.Column) \
                and condition.this.name.lower() in key_names and not condition.args.get("query"):
            i = key_names.index(condition.this.name.lower())
            per_key[key_names[i]] = [slot(v, key_types[i]) for v in condition.expressions]
            continue
        raise NotALookup  # a filter on a feature: DuckDB filters the relation
    missing = [k.name for k in entity.keys if k.name.lower() not in per_key]
    if missing:
        raise NotALookup  # not every key given: a scan
    key_rows: list[list[_Slot]] = [[]]  # the cross product of the values given for each key column
    for name in key_names:
        key_rows = [row + [s] for row in key_rows for s in per_key[name]]
    output_names = [n.lower() for n, _ in outputs]
    order: list[tuple[int, bool]] = []
    order_node = tree.args.get("order")
    for ordered in order_node.expressions if order_node else []:
        target = ordered.this
        if isinstance(target, exp.Literal) and not target.is_string:
            position = int(target.this) - 1
        elif isinstance(target, exp.Column) and target.name.lower() in output_names:
            position = output_names.index(target.name.lower())
        else:
            raise NotALookup  # ORDER BY an expression or an input column: DuckDB sorts
        order.append((position, bool(ordered.args.get("desc"))))
    limit = _limit_slot(tree.args.get("limit"), slot)
    offset = _limit_slot(tree.args.get("offset"), slot)
    # a plain column of features.<entity>: its table and attribute number, as pg_class and
    # pg_attribute list them (clients such as pgjdbc's getTableName read them)
    relation_oid = object_oid(f"features.{entity.name}")
    columns = [Column(n, types[i], table_oid=relation_oid, attnum=i + 1) for n, i in outputs]
    final_types = tuple(t or TEXT for t in param_types)
    return LookupPlan(sql, entity_name, key_types, key_rows, outputs, columns, features,
                      order, limit, offset, final_types, services)


def _limit_slot(node: exp.Expression | None, slot: Callable[..., _Slot]) -> _Slot | None:
    if node is None:
        return None
    value = node.expression if isinstance(node, exp.Limit) else node.expression or node.this
    if value is None:
        return None
    return slot(value, INT8)


def text_position(sql: str, text: str) -> int | None:
    """1-based position of ``text`` in ``sql`` (case-insensitive), None when it is not there."""
    index = sql.lower().find(text.lower())
    return index + 1 if index >= 0 else None
