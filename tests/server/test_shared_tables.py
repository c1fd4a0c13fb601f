"""A plain ``CREATE TABLE`` is shared by the sessions of its user (issue 14: Spark's JDBC writer
creates its table on the driver's connection and inserts from its executors' connections):
visible to every connection of the same user, also after the creating one closed, never to
another user; ``CREATE TEMP TABLE`` stays the session's. Concurrent inserts from several
connections all land, a rolled-back one never shows, the catalog lists the table in ``public``
owned by its user, RowDescription names its oid, and the user's tables are bounded by
``[compute] memory_limit`` (53200, the statement undone)."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable, Iterator

import psycopg
import pytest

from tests.api._shop import make_shop
from tests.server._differential import make_shop_repo
from tests.server.conftest import FsqlServer

pytestmark = [pytest.mark.server, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FsqlServer]:
    started = FsqlServer(tmp_path_factory.mktemp("shared_tables")).start()
    yield started
    started.stop()


def connect(server: FsqlServer, user: str, autocommit: bool = True) -> psycopg.Connection:
    return psycopg.connect(server.dsn(user=user), autocommit=autocommit)


def test_a_users_table_is_shared_by_its_sessions_and_outlives_its_creator(
        server: FsqlServer) -> None:
    with connect(server, "alice") as first:
        first.execute("CREATE TABLE spine (user_id text, label bigint)")
        first.execute("INSERT INTO spine VALUES ('u1', 1), ('u2', 0)")
    with connect(server, "alice") as second:
        rows = second.execute("SELECT user_id, label FROM spine ORDER BY 1").fetchall()
        assert rows == [("u1", 1), ("u2", 0)]
        assert second.execute("SELECT count(*) FROM public.spine").fetchone() == (2,)


def test_another_user_never_sees_it_and_has_a_table_of_the_same_name_of_its_own(
        server: FsqlServer) -> None:
    with connect(server, "alice") as alice:
        alice.execute("CREATE TABLE mine (v bigint)")
        alice.execute("INSERT INTO mine VALUES (1)")
    with connect(server, "bob") as bob:
        with pytest.raises(psycopg.errors.UndefinedTable, match='relation "mine" does not exist'):
            bob.execute("SELECT * FROM mine")
        with pytest.raises(psycopg.errors.UndefinedTable):
            bob.execute("INSERT INTO public.mine VALUES (2)")
        bob.execute("CREATE TABLE mine (v bigint)")
        bob.execute("INSERT INTO mine VALUES (20), (30)")
        assert bob.execute("SELECT sum(v) FROM mine").fetchone() == (50,)
        # listed for both, as PostgreSQL lists every table, each owned by its user (alice's
        # sessions have ended: her role stays while she has tables)
        assert bob.execute("SELECT n.nspname, pg_get_userbyid(c.relowner) FROM pg_class c "
                           "JOIN pg_namespace n ON n.oid = c.relnamespace "
                           "WHERE c.relname = 'mine' ORDER BY 2").fetchall() == [
            ("public", "alice"), ("public", "bob")]
    with connect(server, "alice") as alice:
        assert alice.execute("SELECT sum(v) FROM mine").fetchone() == (1,)


def test_a_temporary_table_stays_the_sessions(server: FsqlServer) -> None:
    with connect(server, "alice") as first, connect(server, "alice") as second:
        first.execute("CREATE TEMP TABLE scratch (v bigint)")
        first.execute("INSERT INTO scratch VALUES (7)")
        assert first.execute("SELECT v FROM scratch").fetchall() == [(7,)]
        with pytest.raises(psycopg.errors.UndefinedTable):
            second.execute("SELECT v FROM scratch")


def test_concurrent_inserts_all_land(server: FsqlServer) -> None:
    """Four connections insert batches at once, each in its own transaction (as Spark's
    tasks do with pgjdbc's executeBatch): every row is there, once."""
    with connect(server, "carol") as setup:
        setup.execute("CREATE TABLE written (task bigint, n bigint, name text)")
    failures: list[BaseException] = []

    def task(number: int) -> None:
        try:
            with connect(server, "carol", autocommit=False) as conn:
                with conn.cursor() as cur:
                    cur.executemany("INSERT INTO written (task, n, name) VALUES (%s, %s, %s)",
                                    [(number, i, f"t{number}-{i}") for i in range(200)])
                conn.commit()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            failures.append(exc)

    threads = [threading.Thread(target=task, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    with connect(server, "carol") as check:
        assert check.execute("SELECT task, count(*), count(DISTINCT n), sum(n) FROM written "
                             "GROUP BY task ORDER BY task").fetchall() == [
            (t, 200, 200, sum(range(200))) for t in range(4)]


def test_transactions_per_connection(server: FsqlServer) -> None:
    """Rows inserted in an open transaction are not seen by the user's other connections,
    a ROLLBACK undoes them, a COMMIT shows them."""
    with connect(server, "dave") as reader:
        reader.execute("CREATE TABLE tx (v bigint)")
        with connect(server, "dave", autocommit=False) as writer:
            writer.execute("INSERT INTO tx VALUES (1), (2)")
            assert writer.execute("SELECT count(*) FROM tx").fetchone() == (2,)
            assert reader.execute("SELECT count(*) FROM tx").fetchone() == (0,)
            writer.rollback()
            assert reader.execute("SELECT count(*) FROM tx").fetchone() == (0,)
            assert writer.execute("SELECT count(*) FROM tx").fetchone() == (0,)
            writer.execute("INSERT INTO tx VALUES (3)")
            writer.commit()
        assert reader.execute("SELECT v FROM tx").fetchall() == [(3,)]


def test_the_catalog_lists_it_in_public_owned_by_its_user(server: FsqlServer) -> None:
    with connect(server, "erin") as conn:
        conn.execute("CREATE TABLE listed (id bigint, name text)")
    with connect(server, "erin") as conn:
        assert conn.execute(
            "SELECT n.nspname, c.relkind, c.relpersistence, pg_get_userbyid(c.relowner), "
            "pg_table_is_visible(c.oid) FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE c.relname = 'listed'").fetchall() == [
            ("public", "r", "p", "erin", True)]
        assert conn.execute(
            "SELECT table_schema, column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'listed' ORDER BY ordinal_position").fetchall() == [
            ("public", "id", "bigint"), ("public", "name", "text")]
        assert conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = 'listed'::regclass "
            "AND attnum > 0 ORDER BY attnum").fetchall() == [("id",), ("name",)]
        # RowDescription names the table's oid and the columns' numbers (pgjdbc's
        # getBaseTableName reads them)
        oid = conn.execute("SELECT 'listed'::regclass::oid").fetchone()[0]
        cur = conn.execute("SELECT name, id FROM listed")
        assert cur.pgresult is not None
        assert [cur.pgresult.ftable(i) for i in range(2)] == [oid, oid]
        assert [cur.pgresult.ftablecol(i) for i in range(2)] == [2, 1]
        # psql's \dt and \d, on another connection
        out = subprocess.run(["psql", "-X", "-A", "-t", server.dsn(user="erin"),
                              "-c", "\\dt listed", "-c", "\\d listed"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines() == ["public|listed|table|erin", "id|bigint|||",
                                           "name|text|||"]
        conn.execute("DROP TABLE listed")
        assert conn.execute("SELECT count(*) FROM pg_class WHERE relname = 'listed'"
                            ).fetchone() == (0,)


def test_the_users_tables_are_bounded_by_the_memory_limit(
        start_server: Callable[..., FsqlServer]) -> None:
    server = start_server('[compute]\nmemory_limit = "64MB"\n')
    with connect(server, "frank") as conn:
        conn.execute("CREATE TABLE small (v bigint)")
        conn.execute("INSERT INTO small SELECT * FROM generate_series(1, 1000)")
        with pytest.raises(psycopg.errors.OutOfMemory) as refused:
            conn.execute("INSERT INTO small SELECT * FROM generate_series(1, 20000000)")
        assert "[compute] memory_limit" in (refused.value.diag.message_hint or "")
        assert "The statement was undone" in (refused.value.diag.message_detail or "")
        # the session goes on, the statement left nothing behind
        assert conn.execute("SELECT count(*) FROM small").fetchone() == (1000,)


def test_copy_from_stdin_into_a_shared_table(server: FsqlServer) -> None:
    with connect(server, "gina") as first:
        first.execute("CREATE TABLE loaded (id bigint, name text)")
        with first.cursor().copy("COPY loaded (id, name) FROM STDIN") as copy:
            for row in [(1, "a"), (2, "b"), (3, None)]:
                copy.write_row(row)
    with connect(server, "gina") as second:
        assert second.execute("SELECT id, name FROM loaded ORDER BY id").fetchall() == [
            (1, "a"), (2, "b"), (3, None)]


def test_two_blocks_changing_the_same_row_conflict_with_40001(server: FsqlServer) -> None:
    """The second of two open transactions updating one row fails with 40001 and a hint to
    run it again; the first commits."""
    with connect(server, "hank", autocommit=False) as first, \
            connect(server, "hank", autocommit=False) as second:
        first.execute("CREATE TABLE counters (id bigint, v bigint)")
        first.execute("INSERT INTO counters VALUES (1, 1)")
        first.commit()
        first.execute("UPDATE counters SET v = 2 WHERE id = 1")
        with pytest.raises(psycopg.errors.SerializationFailure) as refused:
            second.execute("UPDATE counters SET v = 3 WHERE id = 1")
        assert "run the transaction again" in (refused.value.diag.message_hint or "")
        second.rollback()
        first.commit()
        assert second.execute("SELECT v FROM counters").fetchall() == [(2,)]


def test_a_rolled_back_block_leaves_the_session_working(server: FsqlServer) -> None:
    """Relations a block registered (a read of fsql's data) and a COPY that failed in the
    block go with its ROLLBACK: the session's next statements work, the COPY's error is its
    own (22P02), nothing of the block is left."""
    with connect(server, "ivan", autocommit=False) as conn:
        conn.execute("CREATE TABLE kept (a int)")
        conn.commit()
        conn.execute("INSERT INTO kept VALUES (1)")
        assert conn.execute("SELECT count(*) FROM fsql.entities").fetchone() == (0,)
        with pytest.raises(psycopg.errors.InvalidTextRepresentation):
            with conn.cursor().copy("COPY kept FROM STDIN") as copy:
                copy.write(b"x\n")
        conn.rollback()
        assert conn.execute("SELECT count(*) FROM fsql.entities").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM kept").fetchone() == (0,)
        conn.commit()


def test_rollback_to_savepoint_after_an_error_undoes_the_block_with_a_warning(
        server: FsqlServer) -> None:
    """DuckDB has no savepoints: after an error in a block, ROLLBACK TO SAVEPOINT rolls the
    block's table work back as a whole, says so with a WARNING, and the block goes on."""
    with connect(server, "judy", autocommit=False) as conn:
        notices: list[tuple[str | None, str | None]] = []
        conn.add_notice_handler(lambda d: notices.append((d.severity_nonlocalized,
                                                          d.message_primary)))
        conn.execute("CREATE TABLE saved (v bigint)")
        conn.commit()
        conn.execute("INSERT INTO saved VALUES (1)")
        conn.execute("SAVEPOINT s")
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute("SELECT * FROM no_such_table")
        conn.execute("ROLLBACK TO SAVEPOINT s")
        assert notices == [("WARNING", "the transaction's changes to tables were undone")]
        conn.execute("INSERT INTO saved VALUES (2)")
        conn.commit()
        assert conn.execute("SELECT v FROM saved").fetchall() == [(2,)]


def test_fsqls_relations_read_in_a_rolled_back_block_are_read_again(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """A block that read ``sources.orders`` (registered in DuckDB within the block) and was
    rolled back: the next statements read it again (the registration went with the block)."""
    repo = make_shop_repo(tmp_path_factory.mktemp("shop"), make_shop())
    shop = FsqlServer(repo).start()
    try:
        with connect(shop, "kate", autocommit=False) as conn:
            count = conn.execute("SELECT count(*) FROM sources.orders").fetchone()
            assert count is not None and count[0] > 0
            conn.rollback()
            assert conn.execute("SELECT count(*) FROM sources.orders").fetchone() == count
            conn.commit()
            assert conn.execute("SELECT count(*) FROM sources.orders").fetchone() == count
    finally:
        shop.stop()
