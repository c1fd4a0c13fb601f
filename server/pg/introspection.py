"""Answers to drivers' own type-introspection queries, from the server's built-in type table
(asyncpg, psycopg's TypeInfo as used by SQLAlchemy, ADBC's PostgreSQL driver).

asyncpg looks up every type OID it has no built-in codec for — arrays included — with a large
recursive query over ``pg_type``/``pg_range``/``pg_attribute`` (``introspection.py`` in asyncpg,
seen in ``pgwire-captures/asyncpg2.log``). Only built-in types ever leave this server, so the
answer is fully determined by :mod:`fsql_server.pg.types`: recognise the query and answer it
here. Every other catalog query (psql's ``\\d``, JDBC metadata, SQLAlchemy reflection) is
answered by :mod:`fsql_server.pg.catalog`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fsql_server.pg.backend import Column, Plan, Result
from fsql_server.pg.session import Session
from fsql_server.pg.types import CHAR, INT4, NAME, OID, TEXT, TYPES

#: pg_type.typname → regtype text, where they differ
REGTYPE_NAMES = {
    "int2": "smallint", "int4": "integer", "int8": "bigint", "float4": "real",
    "float8": "double precision", "bool": "boolean", "varchar": "character varying",
    "bpchar": "character", "timestamp": "timestamp without time zone",
    "timestamptz": "timestamp with time zone", "time": "time without time zone",
    "char": '"char"',
}

_ARRAY_OID = TYPES[1028]
_TEXT_ARRAY = TYPES[1009]

TYPEINFO_COLUMNS = [
    Column("oid", OID), Column("ns", NAME), Column("name", NAME), Column("kind", CHAR),
    Column("basetype", OID), Column("elemtype", OID), Column("elemdelim", CHAR),
    Column("range_subtype", OID), Column("attrtypoids", _ARRAY_OID),
    Column("attrnames", _TEXT_ARRAY), Column("depth", INT4), Column("basetype_name", TEXT),
    Column("elemtype_name", TEXT), Column("range_subtype_name", TEXT),
]


def regtype_name(oid: int) -> str:
    t = TYPES.get(oid)
    if t is None:
        return "-"
    if t.elem_oid:
        return regtype_name(t.elem_oid) + "[]"
    return REGTYPE_NAMES.get(t.name, t.name)


def is_asyncpg_typeinfo(sql: str) -> bool:
    return "typeinfo_tree" in sql and "pg_catalog.pg_type" in sql and "$1::oid[]" in sql


class TypeInfoPlan(Plan):
    """asyncpg's ``INTRO_LOOKUP_TYPES`` over the built-in types."""

    def __init__(self, sql: str):
        self.sql = sql
        self.param_types = (_ARRAY_OID,)
        self.command = "SELECT"

    interruptible = False

    def describe(self, session: Session) -> list[Column] | None:
        return TYPEINFO_COLUMNS

    async def run(self, session: Session, params: Sequence[Any]) -> Result:
        wanted = [int(o) for o in (params[0] or []) if o is not None]
        rows: list[tuple[Any, ...]] = []
        seen: set[tuple[int, int]] = set()

        def add(oid: int, depth: int) -> None:
            t = TYPES.get(oid)
            if t is None or (oid, depth) in seen:
                return
            seen.add((oid, depth))
            elem = t.elem_oid
            rows.append((
                oid, "pg_catalog", t.name, "b", None, elem, "," if elem else None, None, None,
                None, depth, None, regtype_name(elem) if elem else "-", None,
            ))
            if elem:
                add(elem, depth + 1)

        for oid in wanted:
            add(oid, 0)
        rows.sort(key=lambda r: -r[10])
        return Result(TYPEINFO_COLUMNS, rows, "SELECT")


def is_psycopg_typeinfo(sql: str) -> bool:
    return "FROM pg_type t" in sql and "typarray AS array_oid" in sql and "regtype" in sql


#: pg_type's OID in PostgreSQL (the columns name its attributes, as PostgreSQL's answer does)
_PG_TYPE = 1247

TYPE_BY_NAME_COLUMNS = [
    Column("name", NAME, table_oid=_PG_TYPE, attnum=2),
    Column("oid", OID, table_oid=_PG_TYPE, attnum=1),
    Column("array_oid", OID, table_oid=_PG_TYPE, attnum=15),
    Column("regtype", TEXT), Column("delimiter", CHAR, table_oid=_PG_TYPE, attnum=11),
]


class TypeByNamePlan(Plan):
    """psycopg's ``TypeInfo.fetch(name)`` (SQLAlchemy runs it for ``hstore`` at connect):
    a built-in type by name, or no row — fsql has no extension types."""

    interruptible = False

    def __init__(self, sql: str):
        self.sql = sql
        self.param_types = (TEXT,)
        self.command = "SELECT"

    def describe(self, session: Session) -> list[Column] | None:
        return TYPE_BY_NAME_COLUMNS

    async def run(self, session: Session, params: Sequence[Any]) -> Result:
        wanted = str(params[0] or "").lower().removeprefix("pg_catalog.")
        rows = []
        for oid, t in sorted(TYPES.items()):
            if wanted in (t.name, regtype_name(oid)) and oid != 705:
                rows.append((t.name, oid, t.array_oid or 0, regtype_name(oid), ","))
        return Result(TYPE_BY_NAME_COLUMNS, rows, "SELECT")


# --------------------------------------------------------------------------------------------
# ADBC's PostgreSQL driver (pgwire-captures/adbc.log) builds its type table at connect from
# pg_type (receive function names) and pg_attribute (composite types: fsql has none)

#: the receive function of each built-in type whose name does not follow ``<name>recv``
_RECEIVE = {
    "json": "json_recv", "date": "date_recv", "time": "time_recv",
    "timestamp": "timestamp_recv", "timestamptz": "timestamptz_recv",
    "interval": "interval_recv", "numeric": "numeric_recv", "uuid": "uuid_recv",
    "jsonb": "jsonb_recv", "unknown": "unknownrecv",
}

def is_adbc_type_query(sql: str) -> bool:
    return "pg_catalog.pg_type" in sql and "typreceive" in sql and "typarray" in sql \
        and "typrelid" in sql


def is_adbc_attribute_query(sql: str) -> bool:
    compact = " ".join(sql.split())
    return compact.startswith("SELECT attrelid, attname, atttypid FROM pg_catalog.pg_attribute")


ADBC_TYPE_COLUMNS = [
    Column("oid", OID), Column("typname", NAME), Column("typreceive", TEXT),
    Column("typbasetype", OID), Column("typrelid", OID), Column("typarray", OID),
]
ADBC_ATTRIBUTE_COLUMNS = [Column("attrelid", OID), Column("attname", NAME),
                          Column("atttypid", OID)]


class CatalogAnswerPlan(Plan):
    """A fixed catalog answer computed from the built-in type table."""

    interruptible = False

    def __init__(self, sql: str, columns: list[Column], rows: list[tuple[Any, ...]]):
        self.sql = sql
        self.columns = columns
        self.rows = rows
        self.command = "SELECT"

    def describe(self, session: Session) -> list[Column] | None:
        return self.columns

    async def run(self, session: Session, params: Sequence[Any]) -> Result:
        return Result(self.columns, self.rows, "SELECT")


def adbc_type_plan(sql: str) -> Plan:
    rows = [
        (oid, t.name, _RECEIVE.get(t.name, f"{t.name}recv"), 0, 0, t.array_oid)
        for oid, t in sorted(TYPES.items())
        if not t.elem_oid and t.name != "unknown"
    ]
    return CatalogAnswerPlan(sql, ADBC_TYPE_COLUMNS, rows)


def adbc_attribute_plan(sql: str) -> Plan:
    return CatalogAnswerPlan(sql, ADBC_ATTRIBUTE_COLUMNS, [])
