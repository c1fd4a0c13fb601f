"""PostgreSQL catalog emulation: ``pg_catalog`` and ``information_schema`` as clients see them.

:mod:`.model` turns the registry into relations (schemas ``features``, ``offline``, ``sources``,
``fsql``; columns with PostgreSQL types; entity keys as primary keys; comments), and
:mod:`.engine` answers catalog queries from a small DuckDB database of PostgreSQL-shaped
catalog tables rebuilt from that model whenever the registry changes, after sqlglot rewrites of
the PostgreSQL-only syntax (``::regclass``, ``OPERATOR(pg_catalog.~)``, ``COLLATE``).
"""
