"""PostgreSQL catalog emulation: ``pg_catalog`` and ``information_schema`` as clients see them.

:mod:`.model` describes relations (columns with PostgreSQL types, primary keys, comments) as a
surface hands them over (fsql's: :mod:`fsql_server.features.catalog`); :mod:`.tables` defines
the catalog database (PostgreSQL 15's built-in rows, fsql's catalog tables, views and macros),
:mod:`.database` keeps it filled and rebuilds it when the relations change, :mod:`.rewrite`
rewrites the PostgreSQL-only syntax of catalog queries with sqlglot (``::regclass``,
``OPERATOR(pg_catalog.~)``, ``COLLATE``), and :mod:`.engine` plans and runs them.
"""
