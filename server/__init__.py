"""fsql_server: the PostgreSQL-protocol front end of fsql (installed as ``fsql_server``)."""
