"""fsql_server: the PostgreSQL-protocol front end of fsql (installed as ``fsql_server``).

Start it with ``fsql serve`` (:func:`fsql_server.features.app.run`); docs/server.md describes
running it and docs/sql.md the SQL it answers. Two layers: :mod:`fsql_server.pg` speaks
PostgreSQL and knows nothing about features (``server`` → ``connection`` → ``router`` → plans
→ ``types``); :mod:`fsql_server.features` is fsql's surface, plugged into it through
:mod:`fsql_server.pg.planner`. The core package ``fsql`` never imports this one.
"""
