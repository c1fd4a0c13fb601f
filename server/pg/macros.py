"""PostgreSQL functions DuckDB lacks, as macros of every session's DuckDB database.

They are created when a session's database opens (:mod:`.duckdb_backend`), before its
configuration is locked, so they work in any statement a client sends, not only in catalog
queries (whose database has its own, :mod:`.catalog.tables`).
"""

from __future__ import annotations

from fsql_server.pg.catalog.tables import RESERVED_WORDS

#: PostgreSQL's quote_ident: quoted unless a lower-case identifier that is no keyword of
#: PostgreSQL's beyond the unreserved ones (its list, as the catalog's quote_ident has it:
#: DuckDB's own keyword categories differ, e.g. USER is unreserved there, reserved in PG)
_QUOTE_IDENT = (
    "CREATE TEMP MACRO quote_ident(x) AS CASE WHEN x IS NULL THEN NULL "
    "WHEN regexp_full_match(CAST(x AS VARCHAR), '[a-z_][a-z0-9_$]*') AND upper(CAST(x AS "
    f"VARCHAR)) NOT IN ({', '.join(repr(w) for w in sorted(RESERVED_WORDS))}) "
    "THEN CAST(x AS VARCHAR) "
    "ELSE '\"' || replace(CAST(x AS VARCHAR), '\"', '\"\"') || '\"' END"
)

#: PostgreSQL's quote_literal: quotes doubled, and backslashes doubled in an E'' string
_QUOTE_LITERAL = (
    "CREATE TEMP MACRO quote_literal(x) AS CASE WHEN x IS NULL THEN NULL "
    "WHEN contains(CAST(x AS VARCHAR), '\\') THEN 'E''' || replace(replace(CAST(x AS VARCHAR), "
    "'\\', '\\\\'), '''', '''''') || '''' "
    "ELSE '''' || replace(CAST(x AS VARCHAR), '''', '''''') || '''' END"
)

_QUOTE_NULLABLE = "CREATE TEMP MACRO quote_nullable(x) AS coalesce(quote_literal(x), 'NULL')"

#: statements run on each new session database
SESSION_MACROS = (_QUOTE_IDENT, _QUOTE_LITERAL, _QUOTE_NULLABLE)
