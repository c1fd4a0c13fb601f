"""Capture the differential corpus: run real clients against a real PostgreSQL 15 holding the
test tables (tests/server/_differential.py) through a recording proxy (proxy.py), and write
what each client sent to tests/server/corpus/<client>.yaml (statement text, protocol, declared
parameter types, bound values), in the order sent, without repeats.

Usage, from the repository root (starts its own PostgreSQL 15 and fsql server)::

    python -m tests.server.corpus.capture [CLIENT...]

The clients: node-postgres and postgres.js (tests/server/node/clients.mjs), psqlODBC
(pyodbc's catalog functions), pgjdbc (PreparedStatement idioms and DatabaseMetaData), pgcli
(its completion refresh queries and ``\\dt``/``\\d``), psql (the ``\\d`` family), SQLAlchemy
(inspector reflection), psycopg 3, DuckDB's postgres extension and Spark (JDBC reads and a
write). Files not named here (the
hand-written ``bi_tools.yaml``) are kept as they are.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
import yaml
from pgcli.pgexecute import PGExecute
from pgspecial.main import PGSpecial

from tests.server._differential import Pair, open_pair
from tests.server.corpus.proxy import RecordingProxy
from tests.server.test_clients_duckdb import SCRIPT as DUCKDB_SCRIPT
from tests.server.test_clients_duckdb import TARGET as DUCKDB_TARGET
from tests.server.test_clients_duckdb import ensure_installed
from tests.server.test_clients_jdbc import JAVA_SRC
from tests.server.test_clients_jdbc import OPERATIONS as JDBC_OPERATIONS
from tests.server.test_clients_odbc import OPERATIONS as ODBC_OPERATIONS
from tests.server.test_clients_odbc import odbc_answer
from tests.services.jdbc import JAR, compile_jdbc_probe
from tests.services.postgres import PostgresServer

HERE = Path(__file__).parent
SERVER = HERE.parent


def node(client: str) -> Callable[[int, str], None]:
    def run(port: int, db: str) -> None:
        subprocess.run(["node", str(SERVER / "node" / "clients.mjs"), client, "127.0.0.1",
                        str(port), db, "tester"], check=True, capture_output=True, timeout=120)
    return run


def odbc(port: int, db: str) -> None:
    for operation in ODBC_OPERATIONS:
        odbc_answer(port, db, operation)


def pgjdbc(port: int, db: str) -> None:
    url = f"jdbc:postgresql://127.0.0.1:{port}/{db}"
    with tempfile.TemporaryDirectory() as tmp:
        probe = compile_jdbc_probe(JAVA_SRC, Path(tmp) / "probe")
        subprocess.run(["java", "-cp", f"{JAR}:{probe}", "FsqlJdbcProbe", url, "tester", "",
                        *JDBC_OPERATIONS.values()], check=True, capture_output=True, timeout=120)
        metadata = compile_jdbc_probe(SERVER.parent / "catalog" / "java" /
                                      "FsqlJdbcMetadata.java", Path(tmp) / "metadata")
        subprocess.run(["java", "-cp", f"{JAR}:{metadata}", "FsqlJdbcMetadata", url, "tester",
                        "schemas", "tables|features|%|TABLE", "columns|features|user",
                        "pk|features|user", "indexinfo|features|user",
                        "importedkeys|features|user", "tabletypes",
                        "query|SELECT * FROM sources.orders"],
                       check=True, capture_output=True, timeout=120)


def pgcli(port: int, db: str) -> None:
    executor = PGExecute(db, "tester", "", "127.0.0.1", port, "")
    executor.search_path()
    for method in ("schemata", "tables", "views", "table_columns", "view_columns",
                   "functions", "datatypes", "foreignkeys", "databases", "casing"):
        list(getattr(executor, method)())
    for command in ("\\dt", "\\dt features.*", "\\d features.user", "\\dn"):
        for _result in executor.run(command, pgspecial=PGSpecial()):
            pass
    executor.conn.close()


def psql(port: int, db: str) -> None:
    for command in ("\\dn", "\\dt features.*", "\\d features.user", "\\d+ offline.user_orders",
                    "\\dv", "\\df length", "\\l", "\\dT"):
        subprocess.run(["psql", "-X", "-h", "127.0.0.1", "-p", str(port), "-U", "tester",
                        "-d", db, "-c", command], check=True, capture_output=True, timeout=60)


def sqlalchemy(port: int, db: str) -> None:
    engine = sa.create_engine(f"postgresql+psycopg://tester@127.0.0.1:{port}/{db}")
    inspector = sa.inspect(engine)
    inspector.get_schema_names()
    for schema, table in (("features", "user"), ("offline", "user_orders")):
        inspector.get_table_names(schema=schema)
        inspector.get_columns(table, schema=schema)
        inspector.get_pk_constraint(table, schema=schema)
        inspector.get_foreign_keys(table, schema=schema)
        inspector.get_indexes(table, schema=schema)
        inspector.has_table(table, schema=schema)
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT * FROM features.user WHERE user_id = :u"), {"u": "u001"})
        conn.execute(sa.text("SELECT user_id FROM features.user WHERE user_id IN :ids")
                     .bindparams(sa.bindparam("ids", expanding=True)), {"ids": ["u1", "u2"]})
    engine.dispose()


def psycopg3(port: int, db: str) -> None:
    url = f"postgresql://tester@127.0.0.1:{port}/{db}"
    with psycopg.connect(url, autocommit=True) as conn:
        for sql, params in (
            ("SELECT user_id FROM features.user WHERE user_id IN (%s,%s)", ["u001", "u002"]),
            ("SELECT user_id FROM features.user WHERE user_id = ANY(%s)", [["u001", "u002"]]),
            ("SELECT coalesce(%s, %s)", ["a", "b"]),
            ("SELECT %s || %s AS joined", ["a", "b"]),
            ("SET search_path TO offline", []),
            ("SELECT count(*) FROM user_orders_offline", []),
            ("SELECT current_schema()", []),
            ("RESET search_path", []),
        ):
            try:
                conn.execute(sql, params)
            except psycopg.Error:
                pass
        with conn.transaction(), conn.cursor(name="offline_rows") as cur:
            cur.execute("SELECT user_id, user_orders_offline FROM offline.user_orders_offline "
                        "WHERE user_orders_offline > %s ORDER BY user_id, feature_time", [5])
            cur.fetchall()


def duckdb_postgres(port: int, db: str) -> None:
    ensure_installed()
    subprocess.run([sys.executable, str(DUCKDB_SCRIPT),
                    f"host=127.0.0.1 port={port} dbname={db} user=tester"],
                   check=True, capture_output=True, timeout=120,
                   env={**os.environ, "PYTHONPATH": str(DUCKDB_TARGET)})


def spark(port: int, db: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable}
        subprocess.run([sys.executable, str(SERVER / "spark_jdbc.py"), tmp,
                        f"pg=jdbc:postgresql://127.0.0.1:{port}/{db}"],
                       check=True, capture_output=True, timeout=400, env=env)


CLIENTS: dict[str, tuple[str, Callable[[int, str], None]]] = {
    "node-postgres": ("node-postgres 8 (npm pg), tests/server/node/clients.mjs", node("pg")),
    "postgres.js": ("postgres.js 3 (npm postgres), tests/server/node/clients.mjs",
                    node("postgres")),
    "psqlodbc": ("psqlODBC (Debian odbc-postgresql) through unixODBC and pyodbc: a query, "
                 "IN (?,?), SQLTables, SQLColumns, SQLStatistics, SQLPrimaryKeys, "
                 "SQLForeignKeys", odbc),
    "pgjdbc": ("pgjdbc 42.5 (Debian libpostgresql-jdbc-java): PreparedStatement IN (?,?), "
               "executeBatch, DatabaseMetaData", pgjdbc),
    "pgcli": ("pgcli 4: completion refresh (schemata, tables, columns, functions, types, "
              "foreign keys, databases), \\dt, \\d", pgcli),
    "psql": ("psql 15: \\dn, \\dt, \\d, \\d+, \\dv, \\df, \\l, \\dT", psql),
    "sqlalchemy": ("SQLAlchemy 2 (psycopg): inspector reflection, text() with IN expanding",
                   sqlalchemy),
    "psycopg": ("psycopg 3: IN (%s,%s), = ANY(%s) with a list, coalesce(%s, %s), %s || %s, a "
                "server-side cursor with an int parameter, SET search_path", psycopg3),
    "duckdb": ("DuckDB 1.4.4's postgres extension: ATTACH, its catalog queries, reads through "
               "COPY (...) TO STDOUT (FORMAT binary)", duckdb_postgres),
    "spark": ("Spark 4.3 JDBC data source: dbtable, query, partitioned read, write into a "
              "temporary table", spark),
}


def _literal_str(dumper: yaml.Dumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def placeholders(pair: Pair) -> dict[str, str]:
    """Literal → placeholder for what differs between the two servers and would otherwise be
    frozen into captured SQL: the test database's name and its tables' and indexes' oids
    (clients copy them from earlier answers into later statements; test_corpus.py puts each
    server's own back)."""
    found = {pair.pg_db: "@@database@@"}
    with psycopg.connect(pair.pg_url) as conn:
        for oid, name in conn.execute(
                "SELECT c.oid, n.nspname || '.' || c.relname FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname IN ('features', 'offline', 'sources', 'fsql')").fetchall():
            found[str(oid)] = f"@@oid:{name}@@"
    return found


def template(text: str, literals: dict[str, str]) -> str:
    """``text`` with each literal of ``literals`` (a whole word or number) replaced."""
    pattern = re.compile(r"\b(" + "|".join(re.escape(k) for k in literals) + r")\b")
    return pattern.sub(lambda m: literals[m.group(1)], text)


def write(client: str, how: str, recorded: list[dict[str, Any]],
          literals: dict[str, str]) -> int:
    seen, statements = set(), []
    for entry in recorded:
        entry = {**entry, "sql": template(entry["sql"], literals)}
        if entry.get("params"):
            entry["params"] = [[fmt, template(value, literals) if fmt == 0 and value else value]
                               for fmt, value in entry["params"]]
        key = json.dumps(entry, sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        statement: dict[str, Any] = {"sql": entry["sql"].rstrip("\n")}
        if entry["protocol"] == "extended":
            statement["protocol"] = "extended"
            if entry["types"] and any(entry["types"]):
                statement["types"] = entry["types"]
            if entry["params"]:
                # a text parameter as its text, a binary one as {binary: hex}
                statement["params"] = [value if fmt == 0 or value is None else {"binary": value}
                                       for fmt, value in entry["params"]]
        statements.append(statement)
    dumper = yaml.SafeDumper
    dumper.add_representer(str, _literal_str)
    text = yaml.dump({"client": client, "captured": how, "statements": statements},
                     Dumper=dumper, sort_keys=False, allow_unicode=True, width=100)
    (HERE / f"{client}.yaml").write_text(
        "# Captured by tests/server/corpus/capture.py from the client talking to PostgreSQL 15;\n"
        "# replayed against fsql and PostgreSQL 15 by tests/server/test_corpus.py.\n" + text)
    return len(statements)


def capture(pair: Pair, names: list[str]) -> None:
    proxy = RecordingProxy(pair.pg_port).start()
    literals = placeholders(pair)
    try:
        for name in names:
            how, run = CLIENTS[name]
            proxy.take()
            run(proxy.port, pair.pg_db)
            count = write(name, how, proxy.take(), literals)
            print(f"{name}: {count} statements")
    finally:
        proxy.stop()


def main() -> None:
    names = sys.argv[1:] or list(CLIENTS)
    postgres = PostgresServer()
    postgres.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            with open_pair(postgres.url, Path(tmp)) as pair:
                capture(pair, names)
    finally:
        postgres.stop()


if __name__ == "__main__":
    main()
