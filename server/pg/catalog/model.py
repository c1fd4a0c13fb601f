"""Relations as the PostgreSQL catalog shows them: columns with PostgreSQL types, primary
keys, comments.

A surface describes its tables with these (fsql's, built from the registry:
:mod:`fsql_server.features.catalog`) and the catalog emulation (:mod:`.engine`) lists them in
pg_class, pg_attribute, information_schema... Object ids are derived from names (stable while
a client is connected, whatever else changes), in the user range PostgreSQL uses (>= 16384).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from fsql_server.pg.types import TYPES, PgType, pg_type_for_duckdb

#: the owner of every fsql relation (pg_roles has it)
OWNER = "fsql"
OWNER_OID = 16383


@dataclass(frozen=True)
class CatalogColumn:
    name: str
    type: PgType
    typmod: int = -1
    not_null: bool = False
    comment: str | None = None


@dataclass
class Relation:
    schema: str
    name: str
    columns: list[CatalogColumn]
    primary_key: list[str] = field(default_factory=list)
    comment: str | None = None

    @property
    def oid(self) -> int:
        return object_oid(f"{self.schema}.{self.name}")

    @property
    def type_oid(self) -> int:
        return object_oid(f"{self.schema}.{self.name}#type")

    @property
    def array_type_oid(self) -> int:
        """The oid of the row type's array type (PostgreSQL makes ``_<table>`` for each)."""
        return object_oid(f"{self.schema}.{self.name}#array")

    @property
    def index_oid(self) -> int:
        return object_oid(f"{self.schema}.{self.name}#pkey")

    @property
    def constraint_oid(self) -> int:
        return object_oid(f"{self.schema}.{self.name}#pkey_constraint")

    @property
    def pkey_name(self) -> str:
        return f"{self.name}_pkey"


@dataclass
class SharedRelation(Relation):
    """A user's shared table (``CREATE TABLE``: fsql_server.pg.user_tables), listed in
    ``public`` and owned by the user; its oids name the user (two users may each have a
    table of the same name)."""

    owner: str = ""

    def _key(self, suffix: str = "") -> int:
        return shared_oid(self.owner, self.name, suffix)

    @property
    def oid(self) -> int:
        return self._key()

    @property
    def type_oid(self) -> int:
        return self._key("#type")

    @property
    def array_type_oid(self) -> int:
        return self._key("#array")

    @property
    def index_oid(self) -> int:
        return self._key("#pkey")

    @property
    def constraint_oid(self) -> int:
        return self._key("#pkey_constraint")


def shared_oid(owner: str, name: str, suffix: str = "") -> int:
    """The oid of user ``owner``'s shared table ``name`` (or of its ``suffix`` object)."""
    return object_oid(f"{owner}@public.{name}{suffix}")


def object_oid(key: str) -> int:
    """A stable oid for a named object, above the schemas' oids and below 2^31."""
    return 20000 + zlib.crc32(key.encode()) % 2_000_000_000


def arrow_pg_type(arrow_type: Any) -> PgType:
    """The PostgreSQL type DuckDB's scan of an Arrow column is sent as."""
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        elem = arrow_pg_type(arrow_type.value_type)
        return TYPES.get(elem.array_oid or 1009, TYPES[1009])
    mapping = [
        (pa.types.is_boolean, "BOOLEAN"), (pa.types.is_int8, "TINYINT"),
        (pa.types.is_int16, "SMALLINT"), (pa.types.is_int32, "INTEGER"),
        (pa.types.is_int64, "BIGINT"), (pa.types.is_float32, "FLOAT"),
        (pa.types.is_float64, "DOUBLE"), (pa.types.is_date, "DATE"),
        (pa.types.is_decimal, "DECIMAL"), (pa.types.is_binary, "BLOB"),
        (pa.types.is_large_binary, "BLOB"),
    ]
    if pa.types.is_timestamp(arrow_type):
        return pg_type_for_duckdb("TIMESTAMP WITH TIME ZONE" if arrow_type.tz else "TIMESTAMP")
    for check, duck in mapping:
        if check(arrow_type):
            return pg_type_for_duckdb(duck)
    return pg_type_for_duckdb("VARCHAR")
