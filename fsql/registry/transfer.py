"""Moving a whole registry between databases: ``fsql registry export`` / ``fsql registry import``.

An export is one JSON document holding every row of the registry's tables — versions,
lineage, revisions, the ledgers and (passed in by the caller) the run-tracking tables — with
timestamps as ISO 8601 text and booleans as JSON booleans, so a SQLite registry can be loaded
into PostgreSQL (and back). Importing requires an empty registry (revision 0, no versions): it
copies the rows as they are, in one transaction, keeping revision numbers, version numbers and
row ids (PostgreSQL identity sequences are moved past them), so the ledger, the run history
and the deployed pipelines read the same afterwards.

Which columns hold timestamps, booleans and generated ids is read from the schema's own
``CREATE TABLE`` statements, parsed with sqlglot (:func:`table_specs`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlglot
from sqlglot import exp

from fsql.errors import RegistryError
from fsql.registry.backend import SCHEMA, SCHEMA_VERSION
from fsql.registry.base import Registry

FORMAT = "fsql-registry-export"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class TableSpec:
    """One registry table as transferring needs it."""

    name: str
    columns: tuple[str, ...]
    timestamps: frozenset[str]
    booleans: frozenset[str]
    #: a generated id column (identity / autoincrement), if any
    identity: str | None


def table_specs(extra_schema: Sequence[str] = ()) -> list[TableSpec]:
    """The tables of :data:`~fsql.registry.backend.SCHEMA` plus ``extra_schema`` (e.g. the
    run-tracking tables), in creation order (parents before children)."""
    specs = []
    for statement in [*SCHEMA, *extra_schema]:
        text = statement.format(ts="TIMESTAMPTZ", id="BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY")
        tree = sqlglot.parse_one(text, read="postgres")
        if not isinstance(tree, exp.Create) or tree.kind != "TABLE":
            continue
        schema = tree.this
        assert isinstance(schema, exp.Schema)
        columns, timestamps, booleans, identity = [], set(), set(), None
        for column in schema.expressions:
            if not isinstance(column, exp.ColumnDef):
                continue
            name = column.name
            columns.append(name)
            kind = column.args.get("kind")
            if kind is not None and kind.this == exp.DataType.Type.TIMESTAMPTZ:
                timestamps.add(name)
            if kind is not None and kind.this == exp.DataType.Type.BOOLEAN:
                booleans.add(name)
            if any(isinstance(c.kind, exp.GeneratedAsIdentityColumnConstraint)
                   for c in column.constraints):  # fmt: skip
                identity = name
        specs.append(TableSpec(schema.this.name, tuple(columns), frozenset(timestamps),
                               frozenset(booleans), identity))  # fmt: skip
    return specs


def export_registry(registry: Registry, extra_schema: Sequence[str] = ()) -> dict[str, Any]:
    """Every row of ``registry`` as one JSON-ready document (a consistent snapshot)."""
    db = registry.backend
    tables: dict[str, Any] = {}
    with db.transaction(write=False):
        for spec in table_specs(extra_schema):
            present = db.table_columns(spec.name)
            if not present:
                continue  # e.g. the run tables of a registry that never ran anything
            columns = [c for c in spec.columns if c in present]
            rows = db.execute(f"SELECT {', '.join(columns)} FROM {spec.name}")
            tables[spec.name] = {
                "columns": columns,
                "rows": [[_out(spec, c, v, db.ts_value) for c, v in zip(columns, row, strict=True)]
                         for row in rows],  # fmt: skip
            }
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "schema_version": SCHEMA_VERSION,
            "source": registry.url, "tables": tables}  # fmt: skip


def _out(spec: TableSpec, column: str, value: Any, ts_value: Any) -> Any:
    if value is None:
        return None
    if column in spec.timestamps:
        return ts_value(value).isoformat()
    if column in spec.booleans:
        return bool(value)
    return value


def import_registry(
    registry: Registry, document: dict[str, Any], extra_schema: Sequence[str] = ()
) -> dict[str, int]:
    """Load an :func:`export_registry` document into the empty ``registry``; rows per table.
    ``extra_schema`` tables must exist already (the caller creates them)."""
    if document.get("format") != FORMAT:
        raise RegistryError("not an fsql registry export (made by `fsql registry export`)")
    if document.get("format_version") != FORMAT_VERSION:
        raise RegistryError(
            f"registry export format {document.get('format_version')!r} is not supported by "
            f"this fsql (expected {FORMAT_VERSION}); export again with this version"
        )
    db = registry.backend
    specs = {s.name: s for s in table_specs(extra_schema)}
    unknown = sorted(set(document["tables"]) - set(specs))
    if unknown:
        raise RegistryError(f"the export has tables this fsql does not know: {', '.join(unknown)}")
    counts: dict[str, int] = {}
    with db.transaction(write=True):
        (revision,) = db.execute("SELECT revision FROM fsql_state WHERE id = 1")[0]
        if revision != 0 or db.execute("SELECT 1 FROM fsql_versions LIMIT 1"):
            raise RegistryError(
                f"the registry {registry.url} is not empty (revision {revision}); import into "
                "a new, empty registry database"
            )
        for name, spec in specs.items():
            table = document["tables"].get(name)
            if table is None:
                continue
            present = db.table_columns(name)
            columns = [c for c in table["columns"] if c in present]
            positions = [table["columns"].index(c) for c in columns]
            if name == "fsql_state":
                db.execute("DELETE FROM fsql_state")
            overriding = " OVERRIDING SYSTEM VALUE" if spec.identity and db.row_locks else ""
            insert = (f"INSERT INTO {name} ({', '.join(columns)}){overriding} VALUES "
                      f"({', '.join('?' for _ in columns)})")  # fmt: skip
            for row in table["rows"]:
                values = [_in(spec, c, row[i], db.ts_param) for c, i in zip(columns, positions,
                                                                            strict=True)]  # fmt: skip
                db.execute(insert, values)
            counts[name] = len(table["rows"])
            if spec.identity and db.row_locks and table["rows"]:
                db.execute(
                    f"SELECT setval(pg_get_serial_sequence('{name}', '{spec.identity}'), "
                    f"(SELECT MAX({spec.identity}) FROM {name}))"
                )
    return counts


def _in(spec: TableSpec, column: str, value: Any, ts_param: Any) -> Any:
    if value is None:
        return None
    if column in spec.timestamps:
        return ts_param(datetime.fromisoformat(value))
    if column in spec.booleans:
        return bool(value)
    return value


def dumps(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=1, sort_keys=True) + "\n"
