"""In-process tests of the server's pure parts: framing, statement splitting, the plan cache,
lookup planning for composite keys, and the type codecs' edge cases."""

from __future__ import annotations

import asyncio
import datetime as dt
import struct
from decimal import Decimal
from pathlib import Path

import pytest
from fsql_server.features.app import build_state
from fsql_server.pg import protocol, types
from fsql_server.pg.errors import PgError
from fsql_server.pg.router import normalize_literals, plan_statement, split_statements
from fsql_server.pg.session import Session
from fsql_server.pg.state import ServerState

from fsql.config import ServerConfig, load_config


def session_for(state: ServerState) -> Session:
    return Session(state, "tester", "fsql", 1, 2, can_define=True)


def test_split_statements_keeps_offsets_and_ignores_semicolons_in_strings() -> None:
    text = "SELECT 'a;b'; ; -- note;\nSELECT 2;"
    pieces = split_statements(text)
    assert [p.strip() for p, _ in pieces] == ["SELECT 'a;b'", "-- note;\nSELECT 2"]
    assert [text[o : o + len(p)] == p for p, o in pieces] == [True, True]


def test_normalize_literals_leaves_identifiers_and_parameters() -> None:
    sql = "SELECT \"x1\", col2 FROM features.user WHERE user_id = 'it''s' AND n IN (1, 2.5) LIMIT $1"
    text, literals = normalize_literals(sql, 2)
    assert text == ('SELECT "x1", col2 FROM features.user WHERE user_id = $2 AND n IN ($3, $4) '
                    "LIMIT $1")
    assert literals == ["'it''s'", "1", "2.5"]


def test_bind_parsing_rejects_truncated_and_bad_formats() -> None:
    good = b"p\x00s\x00" + struct.pack("!hh", 1, 1) + struct.pack("!h", 1) + struct.pack(
        "!i", 4) + b"\x00\x00\x00\x07" + struct.pack("!h", 0)
    bind = protocol.parse_bind(good)
    assert (bind.portal, bind.statement, bind.params) == ("p", "s", (b"\x00\x00\x00\x07",))
    with pytest.raises(PgError) as info:
        protocol.parse_bind(good[:-5])
    assert info.value.code == "08P01"
    with pytest.raises(PgError):
        protocol.parse_bind(b"\x00\x00" + struct.pack("!hh", 1, 7) + struct.pack("!hh", 0, 0))


@pytest.mark.parametrize(
    ("value", "oid"),
    [
        (Decimal("0"), 1700), (Decimal("-123.4500"), 1700), (Decimal("1E+20"), 1700),
        (Decimal("0.00001"), 1700), (12345678901234567890, 1700),
        (dt.date(1, 1, 1), 1082), (dt.datetime(1999, 12, 31, 23, 59, 59, 999999), 1114),
        (dt.timedelta(days=-3, hours=5), 1186), (dt.timedelta(microseconds=1), 1186),
        ([[1, 2], [3, None]], 1007), (["a b", "", None, 'q"uote'], 1009),
    ],
)
def test_binary_codecs_round_trip(value: object, oid: int) -> None:
    kind = types.TYPES[oid]
    back = kind.binary_in(kind.binary_out(value))
    if oid == 1700:
        assert Decimal(back) == Decimal(value)
    else:
        assert back == value
    text_back = kind.text_in(kind.text_out(value))
    if oid == 1700:
        assert Decimal(text_back) == Decimal(value)
    elif oid != 1186:
        assert text_back == value


def test_text_formats_follow_postgres() -> None:
    assert types.FLOAT8.text_out(1e16) == b"1e+16"
    assert types.FLOAT8.text_out(2.0) == b"2"
    assert types.FLOAT4.text_out(0.1) == b"0.1"
    assert types.INTERVAL.text_out(dt.timedelta(minutes=-5)) == b"-00:05:00"
    assert types.INTERVAL.text_out(dt.timedelta(days=-1, hours=-2)) == b"-1 days -02:00:00"
    assert types.TIMESTAMPTZ.text_out(
        dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    ) == b"2024-01-02 01:04:05+00"
    assert types.TYPES[1009].text_out(["a,b", None, "NULL"]) == b'{"a,b",NULL,"NULL"}'


def test_constant_selects_need_no_duckdb() -> None:
    state = ServerState(ServerConfig())
    session = session_for(state)

    async def run(sql: str) -> list:
        plan = plan_statement(session, sql)
        assert plan is not None
        return list((await plan.run(session, ())).rows)

    assert asyncio.run(run("SELECT version()"))[0][0].startswith("PostgreSQL 15.")
    assert asyncio.run(run("SELECT set_config('jit', 'off', false), current_setting('jit')")) \
        == [("off", "off")]
    assert not session.has_duckdb


def test_lookup_plans_composite_keys_and_one_plan_for_all_literals(tmp_path: Path) -> None:
    from fsql import SyncFeatureStore

    (tmp_path / "data").mkdir()
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"user_id": ["u"], "item_id": pa.array([1], pa.int64()),
                             "ts": pa.array([dt.datetime(2024, 1, 1)], pa.timestamp("us"))}),
                   tmp_path / "data" / "views.parquet")
    store = SyncFeatureStore(tmp_path)
    try:
        store.register(
            "CREATE ENTITY user_item KEY (user_id VARCHAR, item_id BIGINT);\n"
            "CREATE SOURCE views (user_id VARCHAR, item_id BIGINT, ts TIMESTAMP) "
            "FROM 'data/views.parquet' FORMAT PARQUET EVENT TIME ts;\n"
            "CREATE FEATURE views_7d ENTITY user_item WINDOW '7 days' "
            "AS SELECT user_id, item_id, COUNT(*) FROM views;\n"
        )
    finally:
        store.close()
    state = build_state(load_config(tmp_path))
    session = session_for(state)
    plan = plan_statement(
        session, "SELECT * FROM features.user_item WHERE user_id IN ($1, 'b') AND item_id = $2")
    assert plan is not None
    assert [t.name for t in plan.param_types] == ["text", "int8"]
    assert [c.name for c in plan.describe(session)] == ["user_id", "item_id", "views_7d"]
    rows = asyncio.run(plan.run(session, ["a", 7])).rows
    assert rows == [("a", 7, None), ("b", 7, None)]  # nothing materialized yet: NULLs
    # simple-protocol statements differing only in literals share one cached plan
    first = plan_statement(session, "SELECT views_7d FROM features.user_item "
                                    "WHERE user_id = 'x' AND item_id = 1")
    second = plan_statement(session, "SELECT views_7d FROM features.user_item "
                                     "WHERE user_id = 'y' AND item_id = 2")
    assert first.inner is second.inner  # type: ignore[union-attr]
    assert asyncio.run(second.run(session, ())).rows == [(None,)]
    assert not session.has_duckdb


def test_cached_plans_see_a_recreated_table() -> None:
    state = ServerState(ServerConfig())
    session = session_for(state)

    async def run(sql: str) -> tuple[list[str], list]:
        plan = plan_statement(session, sql)
        assert plan is not None
        result = await plan.run(session, ())
        return [c.name for c in result.columns or []], list(result.rows)

    async def main() -> None:
        await run("CREATE TEMP TABLE t (a INT)")
        await run("INSERT INTO t VALUES (1)")
        assert await run("SELECT * FROM t") == (["a"], [(1,)])
        await run("DROP TABLE t")
        await run("CREATE TEMP TABLE t (b VARCHAR, c INT)")
        await run("INSERT INTO t VALUES ('x', 2)")
        assert await run("SELECT * FROM t") == (["b", "c"], [("x", 2)])

    try:
        asyncio.run(main())
    finally:
        session.close()


def test_clients_that_never_finish_startup_are_dropped() -> None:
    from fsql_server.pg.server import listening_socket, serve_forever

    async def main() -> bytes:
        state = ServerState(ServerConfig(), startup_timeout=0.3)
        sock = listening_socket("127.0.0.1", 0, reuse_port=False)
        port = sock.getsockname()[1]
        server = asyncio.create_task(serve_forever(state, sock))
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(struct.pack("!i", 40)[:2])  # half a length word, then silence
            data = await asyncio.wait_for(reader.read(), 30)
            writer.close()
            return data
        finally:
            server.cancel()

    assert asyncio.run(main()) == b""
