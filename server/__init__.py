"""fsql_server: the PostgreSQL-protocol front end of fsql (installed as ``fsql_server``).

Start it with ``fsql serve`` (:func:`fsql_server.pg.server.run`); docs/server.md describes running
it and docs/sql.md the SQL it answers. The modules, in the order a request passes them:
``server`` (listeners, workers) → ``connection`` (protocol) → ``surface`` (routing, plan cache)
→ ``commands`` / ``fsql_surface`` / ``duckdb_backend`` / ``copy`` (plans) → ``types``
(encoding). The core package ``fsql`` never imports this one.
"""
