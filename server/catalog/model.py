"""The relations fsql shows through the PostgreSQL catalog, built from the registry.

Every table a client can query is described here once: ``features.<entity>`` (entity keys,
then one column per online feature; the keys are the primary key), ``offline.<feature>`` (a
feature's timeline), ``sources.<source>`` and the ``fsql.*`` registry tables. Object ids are
derived from names (stable while a client is connected, whatever else changes), in the user
range PostgreSQL uses (>= 16384).
"""

from __future__ import annotations

import threading
import weakref
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fsql_server.types import TYPES, PgType, pg_type_for_duckdb, sql_type_to_pg

if TYPE_CHECKING:
    from fsql_server.fsql_surface import Services

#: the schemas fsql serves, with their comments and fixed oids
SCHEMAS = {
    "features": (16384, "online feature values: one table per entity, keyed by its keys"),
    "offline": (16385, "feature timelines: one table per feature"),
    "sources": (16386, "source data: one table per source"),
    "fsql": (16387, "the registry: entities, sources, features, versions, lineage"),
}
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


def object_oid(key: str) -> int:
    """A stable oid for a named object, above the schemas' oids and below 2^31."""
    return 20000 + zlib.crc32(key.encode()) % 2_000_000_000


def _pg(type_sql: str | None) -> PgType:
    return sql_type_to_pg(type_sql or "VARCHAR")


def arrow_pg_type(arrow_type: Any) -> PgType:
    """The PostgreSQL type DuckDB's scan of an Arrow column is sent as."""
    import pyarrow as pa

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


def feature_comment(description: str | None, type_name: str, version: int) -> str:
    """A feature column's comment: what it means, its type and version."""
    text = f"{description}. " if description else ""
    return f"{text}Type {type_name}, version {version}."


def build_relations(services: Services) -> list[Relation]:
    """Every relation fsql serves, from the registry now (sorted by schema, name)."""
    from fsql_server.fsql_surface import REGISTRY_TABLES, registry_table

    from fsql.compute.materialize import timeline_schema
    from fsql.language.definitions import EntityDef, FeatureDef, SourceDef

    catalog = services.catalog
    current = catalog.current()
    analysis = catalog.analysis()
    relations: list[Relation] = []
    for name, record in sorted(current.items()):
        definition = record.definition
        if isinstance(definition, EntityDef):
            columns = [CatalogColumn(k.name, _pg(k.type), not_null=True,
                                     comment=f"Entity key ({k.type}).") for k in definition.keys]
            for fname, frecord in sorted(current.items()):
                fdef = frecord.definition
                if not (isinstance(fdef, FeatureDef) and fdef.entity == name and fdef.online
                        and fname in analysis.features):
                    continue
                value_type = analysis.features[fname].value_type
                columns.append(CatalogColumn(
                    fname, _pg(value_type),
                    comment=feature_comment(fdef.description, value_type, frecord.version)))
            relations.append(Relation("features", name, columns,
                                      [k.name for k in definition.keys],
                                      definition.description))
        elif isinstance(definition, FeatureDef) and name in analysis.features:
            feature = analysis.features[name]
            schema = timeline_schema(feature)
            columns = [CatalogColumn(f.name, arrow_pg_type(f.type)) for f in schema]
            columns[-1] = CatalogColumn(
                columns[-1].name, columns[-1].type,
                comment=feature_comment(definition.description, feature.value_type,
                                        record.version))
            relations.append(Relation("offline", name, columns, [],
                                      feature_comment(definition.description,
                                                      feature.value_type, record.version)))
        elif isinstance(definition, SourceDef):
            columns = [CatalogColumn(c.name, _pg(c.type)) for c in definition.columns]
            relations.append(Relation("sources", name, columns, [], definition.description))
    for table in REGISTRY_TABLES:
        registry_cols = registry_columns(services, table, registry_table)
        if registry_cols is None:
            continue
        relations.append(Relation("fsql", table, registry_cols, [], f"fsql registry: {table}"))
    relations.sort(key=lambda r: (r.schema, r.name))
    return relations


#: services → registry table → its columns (computed once per server process)
_REGISTRY_COLUMNS: weakref.WeakKeyDictionary[Any, dict[str, list[CatalogColumn] | None]] = (
    weakref.WeakKeyDictionary())
_REGISTRY_COLUMNS_LOCK = threading.Lock()


def registry_columns(services: Services, table: str,
                     read: Any) -> list[CatalogColumn] | None:
    """The columns of the registry table ``fsql.<table>``. Their names and PostgreSQL types
    never depend on the rows (a column that is all NULL is an Arrow null column, text, like
    the strings it holds otherwise), so the table is read once per server process: a catalog
    build does not read the run history, the ledger or every feature's versions again."""
    with _REGISTRY_COLUMNS_LOCK:
        known = _REGISTRY_COLUMNS.setdefault(services, {})
        if table in known:
            return known[table]
    data = read(services, table)
    columns = None if data is None else [
        CatalogColumn(f.name, arrow_pg_type(f.type)) for f in data.schema]
    with _REGISTRY_COLUMNS_LOCK:
        known[table] = columns
    return columns
