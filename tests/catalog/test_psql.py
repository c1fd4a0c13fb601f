"""psql's describe commands against fsql and against a real PostgreSQL 15 holding ordinary
tables with the same names, columns, types, keys and comments: the printed output is equal."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.server.conftest import FsqlServer

pytestmark = [pytest.mark.server, pytest.mark.postgres]

#: the describe commands compared (also the psql corpus: tests/catalog/corpus/psql.txt)
CORPUS = Path(__file__).parent / "corpus" / "psql.txt"


def commands() -> list[tuple[str, bool]]:
    """(command, whether an empty answer is expected): commands after a ``# empty:`` comment
    list objects neither server has."""
    out, empty = [], False
    for line in CORPUS.read_text().splitlines():
        if line.startswith("#"):
            empty = line.startswith("# empty:") or (empty and not line.strip("# "))
            continue
        if line.strip():
            out.append((line.strip(), empty))
    return out


def psql(args: list[str], *command: str, notices: bool = False,
         with_stderr: bool = False) -> str:
    env = {**os.environ, "PGCONNECT_TIMEOUT": "10", "PSQLRC": "/dev/null", "LC_ALL": "C.UTF-8"}
    argv = ["psql", "-X", "-v", "ON_ERROR_STOP=1", *args]
    for c in command:
        argv += ["-c", c]
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert notices or with_stderr or not result.stderr, result.stderr
    return result.stdout + result.stderr if with_stderr else result.stdout


def fsql_args(server: FsqlServer) -> list[str]:
    return ["-h", "127.0.0.1", "-p", str(server.port), "-U", "tester", "-d", "fsql"]


@pytest.mark.parametrize(("command", "empty"), commands(), ids=[c for c, _ in commands()])
def test_psql_describe_equals_postgres(catalog_server: FsqlServer, reference_pg: str,
                                       command: str, empty: bool) -> None:
    ours = psql(fsql_args(catalog_server), command, with_stderr=empty)
    theirs = psql([reference_pg], command, with_stderr=empty)
    assert ours == theirs
    is_empty = "(0 rows)" in ours or "Did not find" in ours
    assert is_empty == empty, ours


def test_psql_sees_a_feature_applied_while_connected(private_server: FsqlServer) -> None:
    before = psql(fsql_args(private_server), r"\d features.user_item")
    assert "item_views" in before and "clicks_1d" not in before
    psql(fsql_args(private_server),
         "CREATE FEATURE clicks_1d ENTITY user_item WINDOW '1 day' "
         "DESCRIPTION 'Clicks in a day' AS SELECT user_id, item_id, COUNT(*) FROM tx", notices=True)
    after = psql(fsql_args(private_server), r"\d+ features.user_item")
    assert "clicks_1d" in after and "Clicks in a day. Type BIGINT, version 1." in after


def test_psql_dt_all_equals_postgres(catalog_server: FsqlServer, reference_pg: str) -> None:
    """``\\dt *.*`` lists every table: fsql's, PostgreSQL's own catalogs (with their TOAST
    tables) and information_schema's. The one difference, on purpose: fsql's relations have
    no TOAST tables (PostgreSQL gives each of its user tables with a text column one, named
    after the table's oid)."""
    ours = psql(fsql_args(catalog_server), r"\dt *.*")
    theirs = psql([reference_pg], r"\dt *.*")
    user_toast = re.compile(r"^ pg_toast +\| pg_toast_(\d+) .*$")
    kept = [line for line in theirs.splitlines()
            if not ((m := user_toast.match(line)) and int(m.group(1)) >= 16384)]
    dropped = len(theirs.splitlines()) - len(kept)
    assert dropped > 0
    count = re.compile(r"^\((\d+) rows\)$")
    kept = [f"({int(m.group(1)) - dropped} rows)" if (m := count.match(line)) else line
            for line in kept]
    assert ours.splitlines() == kept
    assert " features           | user  " in ours and " pg_catalog         | pg_proc " in ours


def test_psql_l_and_conninfo_equal_postgres(catalog_server: FsqlServer,
                                            reference_pg: str) -> None:
    """fsql serves one database, ``fsql``, owned by fsql's role: ``\\l`` lists it alone, in
    the row format PostgreSQL gives its own database (the reference's name and owner
    replaced); ``\\conninfo`` is PostgreSQL's sentence with fsql's database, user and port."""
    unaligned = ["-A", "-F", "|"]
    ours = psql([*fsql_args(catalog_server), *unaligned], r"\l").splitlines()
    theirs = psql([reference_pg, *unaligned], r"\l").splitlines()
    name = urlparse(reference_pg).path.lstrip("/")
    row = next(line for line in theirs if line.startswith(f"{name}|"))
    assert ours[:2] == theirs[:2]  # title and column names
    assert ours[2:] == [row.replace(f"{name}|postgres|", "fsql|fsql|", 1), "(1 row)"]
    ours_info = psql(fsql_args(catalog_server), r"\conninfo")
    theirs_info = psql([reference_pg], r"\conninfo")
    pg = urlparse(reference_pg)
    assert ours_info == theirs_info.replace(f'database "{name}"', 'database "fsql"').replace(
        'user "postgres"', 'user "tester"').replace(f'port "{pg.port}"',
                                                    f'port "{catalog_server.port}"')


def test_psql_temporary_tables_equal_postgres(catalog_server: FsqlServer,
                                              reference_pg: str) -> None:
    """A temporary table (a spine) is listed in the session's ``pg_temp_N`` schema, visible
    to its session only. PostgreSQL numbers N by backend slot, fsql by session: the number
    is masked. fsql's temporary tables are DuckDB tables, which have no VARCHAR-vs-TEXT
    distinction: a VARCHAR column shows as text (so the spine here uses text)."""
    steps = ["CREATE TEMP TABLE spine (user_id text, ts timestamp, amount double precision)",
             r"\dt", r"\d spine", "SELECT 'spine'::regclass::text, "
             "pg_table_is_visible('spine'::regclass)",
             "SELECT table_name, table_type FROM information_schema.tables "
             "WHERE table_schema ~ '^pg_temp_'",
             "SELECT c.relpersistence, n.nspname ~ '^pg_temp_[0-9]+$' FROM pg_class c "
             "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = 'spine'"]
    tester = reference_pg.replace("postgres@", "tester@", 1)
    mask = re.compile(r"pg_temp_\d+")
    unaligned = ["-A", "-F", "|"]  # column widths would show N's digits
    ours = mask.sub("pg_temp_N", psql([*fsql_args(catalog_server), *unaligned], *steps))
    theirs = mask.sub("pg_temp_N", psql([tester, *unaligned], *steps))
    assert ours == theirs
    assert "pg_temp_N|spine|table|tester" in ours and "LOCAL TEMPORARY" in ours
    # another session does not see it
    others = psql(fsql_args(catalog_server), r"\dt", notices=True)
    assert "spine" not in others


def test_internal_relations_are_in_no_catalog_view(catalog_server: FsqlServer,
                                                   reference_pg: str) -> None:
    """After a session read ``sources.*``, ``offline.*`` and ``features.<entity>`` (which fsql
    registers in the session's database under ``__fsql_*`` names), ``\\dt``, pg_class,
    pg_attribute and information_schema list exactly what PostgreSQL lists: the session's
    own temporary table, never fsql's internal objects (issue 14, psqlodbc:ec5343caa4)."""
    steps = ["CREATE TEMP TABLE spine (user_id text)",
             # the reference's tables are empty: the reads return no rows on both
             "SELECT user_id FROM sources.tx LIMIT 0",
             "SELECT user_id FROM features.\"user\" LIMIT 0",
             "SELECT user_id FROM offline.spend_7d LIMIT 0", r"\dt pg_temp*.*",
             "SELECT c.relname, n.nspname ~ '^pg_temp_' FROM pg_class c JOIN pg_namespace n "
             "ON n.oid = c.relnamespace WHERE c.relname LIKE '%fsql%' OR n.nspname LIKE "
             "'pg_temp%' ORDER BY 1",
             "SELECT count(*) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
             "WHERE c.relname LIKE '\\_\\_fsql%'",
             "SELECT table_name FROM information_schema.tables WHERE table_schema ~ '^pg_temp_'"
             " ORDER BY 1",
             "SELECT table_name, column_name FROM information_schema.columns "
             "WHERE table_schema ~ '^pg_temp_' ORDER BY 1, 2"]
    mask = re.compile(r"pg_temp_\d+")
    unaligned = ["-A", "-F", "|"]
    ours = mask.sub("pg_temp_N", psql([*fsql_args(catalog_server), *unaligned], *steps))
    # the reference's tester may not read the tables: postgres reads them, and owns the spine
    theirs = mask.sub("pg_temp_N", psql([reference_pg, *unaligned], *steps)).replace(
        "|spine|table|postgres", "|spine|table|tester")
    assert ours == theirs
    assert "__fsql" not in ours and "spine|t" in ours


def test_pg_indexes_equals_postgres(catalog_server: FsqlServer, reference_pg: str) -> None:
    """pg_indexes lists the indexes PostgreSQL's lists, with the same definitions: tables'
    indexes, never a TOAST table's (its view keeps relkind r, m, p); only oids differ between
    the two servers (the corpus's duckdb:3ed43619c0 orders by a schema oid: rows_vary)."""
    steps = ["SELECT schemaname, tablename, indexname, indexdef FROM pg_indexes "
             "ORDER BY 1, 2, 3",
             "SELECT count(*) FROM pg_indexes WHERE tablename LIKE 'pg\\_toast%'"]
    unaligned = ["-A", "-F", "|"]
    ours = psql([*fsql_args(catalog_server), *unaligned], *steps)
    assert ours == psql([reference_pg, *unaligned], *steps)
    assert "features|user|user_pkey|CREATE UNIQUE INDEX user_pkey ON features.\"user\"" in ours


def test_function_argument_defaults_equal_postgres(catalog_server: FsqlServer,
                                                   reference_pg: str) -> None:
    """``pg_get_expr(proargdefaults, 0)`` prints a built-in function's argument defaults as
    PostgreSQL deparses them (pgcli's function query shows them in completions)."""
    steps = ["SELECT p.oid, p.proname, pg_get_expr(p.proargdefaults, 0) FROM pg_proc p "
             "WHERE p.proargdefaults IS NOT NULL ORDER BY 1"]
    unaligned = ["-A", "-F", "|"]
    ours = psql([*fsql_args(catalog_server), *unaligned], *steps)
    assert ours == psql([reference_pg, *unaligned], *steps)
    assert "|is_normalized|'NFC'::text" in ours and "(29 rows)" in ours


def test_visibility_follows_search_path(catalog_server: FsqlServer, reference_pg: str) -> None:
    """``\\dt`` and ``pg_table_is_visible`` follow the session's search_path as in
    PostgreSQL: the path's schemas are listed without naming them, a temporary table shadows
    a table of the same name further down the path, and ``pg_catalog`` comes first unless the
    path places it."""
    steps = ["SET search_path TO sources, offline", r"\dt",
             "SELECT n.nspname, c.relname, pg_table_is_visible(c.oid) FROM pg_class c JOIN "
             "pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname IN ('sources', "
             "'offline', 'features', 'public') AND c.relkind = 'r' ORDER BY 1, 2",
             "CREATE TEMP TABLE tx (x int)",
             "SELECT n.nspname ~ '^pg_temp', pg_table_is_visible(c.oid) FROM pg_class c JOIN "
             "pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = 'tx' ORDER BY 1",
             "SET search_path TO features, pg_catalog",
             "SELECT c.relname, pg_table_is_visible(c.oid) FROM pg_class c WHERE c.relname IN "
             "('user', 'pg_class', 'tx') ORDER BY 1"]
    unaligned = ["-A", "-F", "|"]
    ours = psql([*fsql_args(catalog_server), *unaligned], *steps)
    theirs = psql([reference_pg, *unaligned], *steps).replace(
        "|table|postgres", "|table|fsql")
    assert ours == theirs
    assert "sources|tx|table|fsql" in ours and "offline|spend_7d|table|fsql" in ours


def test_internal_names_cannot_be_created(catalog_server: FsqlServer) -> None:
    """A session cannot hide a table of its own among fsql's internal objects: 42939."""
    out = subprocess.run(
        ["psql", "-X", *fsql_args(catalog_server), "-c",
         "CREATE TEMP TABLE __fsql_mine (x int)"],
        capture_output=True, text=True, env={**os.environ, "PSQLRC": "/dev/null",
                                             "PGCONNECT_TIMEOUT": "10"}, timeout=60)
    assert out.returncode != 0
    assert 'relation name "__fsql_mine" is reserved' in out.stderr, out.stderr


def test_psql_du_lists_the_users_connected_now(catalog_server: FsqlServer) -> None:
    """The users of the open sessions are login roles in ``\\du`` (fsql has no CREATE ROLE:
    under trust its users are the connections' users), next to fsql's owner role; a user who
    connected and left is not kept (issue 15, finding 8)."""
    args = fsql_args(catalog_server)
    other = [*args[:-4], "-U", "analyst", "-d", "fsql"]
    psql(other, r"\dn")
    listed = psql(args, r"\du")
    rows = {line.split("|")[0].strip(): line.split("|")[1].strip()
            for line in listed.splitlines() if line.count("|") == 2}
    assert rows["tester"] == "" and rows["fsql"] == "Cannot login"
    assert "analyst" not in rows
