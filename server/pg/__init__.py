"""The PostgreSQL-wire layer: sockets, protocol, sessions, types, COPY, the DuckDB sandbox and
the pg_catalog emulation. It knows nothing about features: what it serves beyond plain SQL
comes through the planner interface (:mod:`fsql_server.pg.planner`) that a surface implements.
"""
