"""The relations fsql shows through the PostgreSQL catalog, built from the registry.

Every table a client can query is described here once: ``features.<entity>`` (entity keys,
then one column per online feature; the keys are the primary key), ``offline.<feature>`` (a
feature's timeline), ``sources.<source>`` and the ``fsql.*`` registry tables.
:class:`FsqlRelations` hands them to the catalog emulation of the wire layer (its
:class:`~fsql_server.pg.planner.RelationCatalog`).
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from fsql_server.features.services import REGISTRY_TABLES, Services, registry_table
from fsql_server.pg.catalog.model import CatalogColumn, Relation, arrow_pg_type
from fsql_server.pg.types import PgType, sql_type_to_pg

from fsql.compute.materialize import timeline_schema
from fsql.language.definitions import EntityDef, FeatureDef, SourceDef

#: the schemas fsql serves, with their comments and fixed oids
SCHEMAS = {
    "features": (16384, "online feature values: one table per entity, keyed by its keys"),
    "offline": (16385, "feature timelines: one table per feature"),
    "sources": (16386, "source data: one table per source"),
    "fsql": (16387, "the registry: entities, sources, features, versions, lineage"),
}


class FsqlRelations:
    """fsql's relations for the catalog emulation: rebuilt when the registry changes."""

    schemas = SCHEMAS

    def __init__(self, services: Services):
        self.services = services

    def version(self) -> object:
        return self.services.catalog.current()

    def relations(self) -> list[Relation]:
        return build_relations(self.services)


def _pg(type_sql: str | None) -> PgType:
    return sql_type_to_pg(type_sql or "VARCHAR")


def feature_comment(description: str | None, type_name: str, version: int) -> str:
    """A feature column's comment: what it means, its type and version."""
    text = f"{description}. " if description else ""
    return f"{text}Type {type_name}, version {version}."


def build_relations(services: Services) -> list[Relation]:
    """Every relation fsql serves, from the registry now (sorted by schema, name)."""
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
