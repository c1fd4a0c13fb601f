"""DuckDB's postgres extension (``postgres_scanner``) reading through the PostgreSQL wire, run
as a subprocess by tests/server/test_clients_duckdb.py with DuckDB 1.4.4 and PyPI's
``duckdb-ext-postgres`` (the extension is built for that DuckDB; fsql itself uses DuckDB 2.0,
so they live in a folder of their own on PYTHONPATH).

Usage: python duckdb_postgres.py LIBPQ_CONNINFO
Prints one JSON object: {operation: {"columns": [[name, type]], "rows": [...]} or
{"error": first line}}.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import duckdb  # 1.4.4, from build/duckdb-postgres on PYTHONPATH
import duckdb_ext


def main(conninfo: str) -> None:
    extension = next(Path(duckdb_ext.__path__[0]).rglob("postgres_scanner.duckdb_extension"))
    con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
    con.execute(f"LOAD '{extension}'")
    out: dict[str, Any] = {}

    def record(name: str, sql: str) -> None:
        try:
            cur = con.execute(sql)
            columns = [[d[0], str(d[1])] for d in cur.description]
            rows = sorted(([str(v) for v in row] for row in cur.fetchall()), key=str)
            out[name] = {"columns": columns, "rows": rows}
        except Exception as exc:  # noqa: BLE001 - the answer is compared, not raised
            out[name] = {"error": str(exc).strip().splitlines()[0][:300]}

    record("attach", f"ATTACH '{conninfo}' AS p (TYPE postgres, READ_ONLY)")
    record("tables", "SELECT schema_name, table_name FROM duckdb_tables() "
                     "WHERE database_name = 'p' ORDER BY 1, 2")
    record("read_sources", "SELECT * FROM p.sources.orders")
    record("read_offline", "SELECT * FROM p.offline.user_orders_offline")
    record("read_features", "SELECT * FROM p.features.user")
    record("lookup_features", "SELECT * FROM p.features.user WHERE user_id = 'u001'")
    record("postgres_query", "SELECT * FROM postgres_query('p', "
                             "'SELECT user_id, purchase_amount FROM sources.orders')")
    # the extension's own scan filter (it sends it when pg_class.relpages > 0), inside
    # postgres_query so both servers get it: the whole range, beside other conditions
    whole = "ctid BETWEEN ''(0,0)''::tid AND ''(4294967295,0)''::tid"
    record("postgres_query_ctid", "SELECT * FROM postgres_query('p', 'SELECT user_id, "
                                  f"user_orders FROM features.user WHERE {whole} "
                                  "AND user_orders > 2')")
    record("postgres_query_ctid_lookup", "SELECT * FROM postgres_query('p', 'SELECT * FROM "
                                         f"features.user WHERE {whole} AND user_id = "
                                         "''u001''')")
    record("postgres_query_ctid_offline", "SELECT * FROM postgres_query('p', 'SELECT count(*), "
                                          "sum(user_orders_offline) FROM "
                                          f"offline.user_orders_offline WHERE {whole}')")
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
