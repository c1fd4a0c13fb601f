"""The differential corpus: the statements real clients send (tests/server/corpus/<client>.yaml,
captured from each client talking to PostgreSQL 15 by corpus/capture.py, or written after the
tools' own SQL for ``bi_tools.yaml``), replayed in order on one session per client against
fsql and against a real PostgreSQL 15 holding the same tables and rows
(tests/server/_differential.py). Each statement is sent as its client sent it (simple
``Query``, or Parse/Bind/Execute with the declared parameter types and the bound values, text
results) and the answers must be equal: column names, type OIDs and type modifiers, row values
as text, SQLSTATE.

Every difference is listed in corpus/deliberate.yaml, by statement id, with a reason:

- ``deliberate``: fsql answers differently on purpose (the test checks it still differs);
- ``rows_vary``: the rows differ by nature (pids, times, oids); columns and SQLSTATE must match;
- ``order_varies``: the statement's ORDER BY leaves ties whose order PostgreSQL does not
  specify (overloaded functions under ``ORDER BY schema, name``); the rows must be equal as a
  multiset, columns and SQLSTATE too;
- and, for every statement, ``type_equivalences``: catalog column types fsql sends as another
  type on purpose (``name`` as ``text``, ``oid`` as ``int4``, ...: docs/clients.md, Known
  differences); an answer equal but for those counts as deliberately different;
- ``known_failing``: a gap with its issue; a strict xfail, so a fix that makes it equal fails
  the run until the entry is removed (the list stays honest).

An undocumented difference fails. docs/clients.md's corpus section is generated from these
results (``python -m tests.catalog.compat_table``)."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from psycopg import pq

from tests.server._differential import Pair, pair  # noqa: F401 - fixture

pytestmark = [pytest.mark.server, pytest.mark.postgres]

CORPUS = Path(__file__).parent / "corpus"
DELIBERATE = CORPUS / "deliberate.yaml"
STATUSES = {"deliberate", "rows_vary", "order_varies", "known_failing"}


@dataclass
class Statement:
    client: str
    sql: str
    protocol: str = "simple"
    types: list[int] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)

    @property
    def id(self) -> str:
        key = json.dumps([self.protocol, self.sql, self.types, self.params], sort_keys=True)
        return f"{self.client}:{hashlib.sha1(key.encode()).hexdigest()[:10]}"


def load_corpus() -> list[Statement]:
    statements = []
    for path in sorted(CORPUS.glob("*.yaml")):
        if path == DELIBERATE:
            continue
        data = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        for entry in data["statements"]:
            statements.append(Statement(data["client"], entry["sql"],
                                        entry.get("protocol", "simple"),
                                        entry.get("types", []), entry.get("params", [])))
    return statements


@functools.cache
def deliberate_file() -> dict[str, Any]:
    return yaml.load(DELIBERATE.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def load_deliberate() -> dict[str, dict[str, Any]]:
    return {entry["id"]: entry for entry in deliberate_file()["statements"] or []}


def type_equivalences() -> dict[int, int]:
    """PostgreSQL type OID → the OID fsql sends instead, on purpose, for catalog columns."""
    return {rule["postgres"]: rule["fsql"] for rule in deliberate_file()["type_equivalences"]}


def with_fsql_types(result: dict[str, Any], ours: dict[str, Any]) -> dict[str, Any]:
    """PostgreSQL's answer with the catalog types fsql sends differently replaced by fsql's,
    column by column where fsql's answer (``ours``) has the equivalent type (where fsql sends
    PostgreSQL's own type, it stays)."""
    mapping = type_equivalences()
    if "columns" not in result:
        return result
    sent = [column[1] for column in ours.get("columns", [])]
    columns = []
    for i, (name, oid, typmod) in enumerate(result["columns"]):
        if i < len(sent) and sent[i] != oid and mapping.get(oid) == sent[i]:
            oid = sent[i]
        columns.append([name, oid, typmod])
    return {**result, "columns": columns}


def outcome(ours: dict[str, Any], theirs: dict[str, Any], entry: dict[str, Any]) -> str:
    """equal, catalog_types (equal but for the type equivalences), or different (the columns'
    origins are compared on their own: test_row_descriptions_name_the_source_columns)."""
    ours, theirs = without_origin(ours), without_origin(theirs)
    if ours == theirs:
        return "equal"
    converted = with_fsql_types(theirs, ours)
    if entry.get("status") == "rows_vary":
        return "rows_vary" if shape(ours) == shape(converted) else "different"
    if entry.get("status") == "order_varies":
        return "order_varies" if in_any_order(ours) == in_any_order(converted) else "different"
    if ours == converted:
        return "catalog_types"
    return "different"


def in_any_order(result: dict[str, Any]) -> dict[str, Any]:
    """The answer with its rows sorted (NULL first in each column)."""
    if "rows" not in result:
        return result
    rows = sorted(result["rows"], key=lambda row: [(v is not None, v or "") for v in row])
    return {**result, "rows": rows}


def without_origin(result: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in result.items() if key != "origin"}


def connect(url: str) -> Any:
    conn = pq.PGconn.connect(url.encode())
    assert conn.status == pq.ConnStatus.OK, conn.get_error_message()
    return conn


PLACEHOLDER = re.compile(r"@@(database|oid:([a-z_]+)\.([a-z_0-9]+))@@")


def resolve(text: str, url: str) -> str:
    """Put this server's own values in for the placeholders capture.py left (the database
    name, a relation's oid)."""
    if "@@" not in text:
        return text
    with psycopg.connect(url) as conn:
        def value(match: re.Match[str]) -> str:
            if match.group(1) == "database":
                return str(conn.execute("SELECT current_database()").fetchone()[0])
            name = f'"{match.group(2)}"."{match.group(3)}"'
            return str(conn.execute("SELECT %s::regclass::oid", [name]).fetchone()[0])
        return PLACEHOLDER.sub(value, text)


def answer(conn: Any, statement: Statement, url: str) -> dict[str, Any]:
    """What the server answered: {"sqlstate": ..., "columns": [[name, oid, typmod]],
    "rows": [[text or None]]} (the last result of a multi-statement simple query)."""
    sql = resolve(statement.sql, url).encode()
    if statement.protocol == "simple":
        result = conn.exec_(sql)
    else:
        values, formats = [], []
        for param in statement.params:
            if isinstance(param, dict):
                values.append(bytes.fromhex(param["binary"]))
                formats.append(1)
            else:
                values.append(None if param is None else resolve(str(param), url).encode())
                formats.append(0)
        types = statement.types or None
        result = conn.exec_params(sql, values, types, formats or None, 0)
    if result is not None and result.status == pq.ExecStatus.COPY_OUT:
        return copied_out(conn)
    if result is not None and result.status == pq.ExecStatus.COPY_IN:
        conn.put_copy_end(b"the corpus replays no COPY data")
        result = last_result(conn)
    if result is None or conn.status != pq.ConnStatus.OK:
        return {"sqlstate": "connection lost"}
    sqlstate = result.error_field(pq.DiagnosticField.SQLSTATE)
    if sqlstate:
        return {"sqlstate": sqlstate.decode()}
    columns = [[result.fname(i).decode(), result.ftype(i), result.fmod(i)]
               for i in range(result.nfields)]
    rows = [[None if (v := result.get_value(r, c)) is None else v.decode()
             for c in range(result.nfields)] for r in range(result.ntuples)]
    # where each column comes from: a table (its oid differs between servers) and attnum
    origin = [[result.ftable(i) != 0, result.ftablecol(i)] for i in range(result.nfields)]
    return {"sqlstate": None, "columns": columns, "rows": rows, "origin": origin}


def last_result(conn: Any) -> Any:
    final = None
    while (result := conn.get_result()) is not None:
        final = result
    return final


def copied_out(conn: Any) -> dict[str, Any]:
    """The data of a ``COPY ... TO STDOUT`` (hex, so binary COPY compares too) and its end."""
    chunks = []
    while True:
        size, data = conn.get_copy_data(0)
        if size < 0:
            break
        chunks.append(bytes(data))
    final = last_result(conn)
    sqlstate = final.error_field(pq.DiagnosticField.SQLSTATE) if final is not None else None
    if sqlstate:
        return {"sqlstate": sqlstate.decode()}
    return {"sqlstate": None, "copy": b"".join(chunks).hex()}


@pytest.fixture(scope="module")
def answers(pair: Pair) -> dict[str, dict[str, dict[str, Any]]]:  # noqa: F811
    """{statement id: {"fsql": answer, "postgres": answer}}, each client's statements in order
    on one session per server (a session fsql ended is opened again for the next one)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    by_client: dict[str, list[Statement]] = {}
    for statement in load_corpus():
        by_client.setdefault(statement.client, []).append(statement)
    for statements in by_client.values():
        for server, url in pair.urls().items():
            conn = connect(url)
            try:
                for statement in statements:
                    result = answer(conn, statement, url)
                    if result["sqlstate"] == "connection lost":
                        conn.finish()
                        conn = connect(url)
                    out.setdefault(statement.id, {})[server] = result
            finally:
                conn.finish()
    return out


#: statement id → outcome, written to $FSQL_CORPUS_REPORT (JSON) after the module when set:
#: docs/clients.md's corpus table tells equal answers from deliberately different ones
OUTCOMES: dict[str, str] = {}


@pytest.fixture(scope="module", autouse=True)
def report_outcomes() -> Iterator[None]:
    yield
    if path := os.environ.get("FSQL_CORPUS_REPORT"):
        Path(path).write_text(json.dumps(OUTCOMES, indent=1, sort_keys=True))


def cases() -> list[Any]:
    deliberate = load_deliberate()
    params = []
    for statement in load_corpus():
        entry = deliberate.get(statement.id, {})
        marks = []
        if entry.get("status") == "known_failing":
            marks.append(pytest.mark.xfail(strict=True, reason=f"issue #{entry['issue']}: "
                                                                f"{entry['reason']}"))
        params.append(pytest.param(statement.id, id=statement.id, marks=marks))
    return params


def shape(result: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in result.items() if key != "rows"}


@pytest.mark.parametrize("statement_id", cases())
def test_corpus_statement(answers: dict, statement_id: str) -> None:
    ours, theirs = answers[statement_id]["fsql"], answers[statement_id]["postgres"]
    entry = load_deliberate().get(statement_id, {})
    result = outcome(ours, theirs, entry)
    OUTCOMES[statement_id] = result
    if entry.get("status") == "deliberate":
        assert result == "different", ("fsql now answers as PostgreSQL does: remove the entry "
                                       "from corpus/deliberate.yaml")
        return
    assert result != "different", (
        "an undocumented difference from PostgreSQL 15 (fix it or list it in "
        f"corpus/deliberate.yaml with the reason):\nfsql:     {ours}\npostgres: {theirs}")


def test_row_descriptions_name_the_source_columns(answers: dict) -> None:
    """Where both servers answered with the same columns, each column names the same source
    (a table or none, and the attribute number) in both RowDescriptions — through subqueries,
    CTEs, joins (test_origins_traced.py) and the fast lane's point lookups of
    ``features.<entity>`` alike."""
    differ = []
    for statement_id, both in answers.items():
        ours, theirs = both["fsql"], both["postgres"]
        if "origin" in ours and "origin" in theirs and \
                len(ours["origin"]) == len(theirs["origin"]) and ours["origin"] != theirs["origin"]:
            differ.append(statement_id)
    assert differ == []


def test_deliberate_entries_name_corpus_statements() -> None:
    ids = {statement.id for statement in load_corpus()}
    for statement_id, entry in load_deliberate().items():
        assert statement_id in ids, f"{statement_id} is not in the corpus any more: remove it"
        assert entry.get("status") in STATUSES, entry
        assert entry.get("reason"), entry
        if entry["status"] == "known_failing":
            assert isinstance(entry.get("issue"), int), entry
    for rule in deliberate_file()["type_equivalences"]:
        assert rule["reason"] and isinstance(rule["postgres"], int) and isinstance(rule["fsql"], int)


def test_corpus_ids_are_unique_per_client() -> None:
    statements = load_corpus()
    assert len({s.id for s in statements}) == len(statements)
