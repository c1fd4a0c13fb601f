"""An int2vector/oidvector cast to an array keeps the vector's subscripts, from 0, as PostgreSQL
prints it: ``proargtypes::regtype[]`` is ``[0:1]={oid,integer}`` (pgcli's function query reads
``COALESCE(proallargtypes::regtype[], proargtypes::regtype[])::text[]``, whose first branch is
an ordinary array from 1: ``{json,text,json}``); an empty one is ``{}``. Compared with a real
PostgreSQL 15, text and binary (the lower bound in the array header)."""

from __future__ import annotations

import struct
from typing import Any

import psycopg
import pytest

from tests.server.conftest import FsqlServer

pytestmark = [pytest.mark.server, pytest.mark.postgres, pytest.mark.timeout(120)]

QUERY = ("SELECT p.proname, COALESCE(proallargtypes::regtype[], proargtypes::regtype[])::text[], "
         "proargtypes::regtype[]::text[], (proargtypes::regtype[]) FROM pg_catalog.pg_proc p "
         "WHERE p.proname IN ('format_type', 'json_each', 'now', 'pg_get_expr') "
         "ORDER BY 1, 3")


def text_rows(url: str) -> list[Any]:
    with psycopg.connect(url) as conn:
        result = conn.pgconn.exec_(QUERY.encode())
        return [[result.get_value(r, c) for c in range(result.nfields)]
                for r in range(result.ntuples)]


def test_vector_casts_print_as_postgres(fsql_server: FsqlServer, postgres_url: str) -> None:
    ours, theirs = text_rows(fsql_server.dsn()), text_rows(postgres_url)
    assert ours == theirs
    assert [b"format_type", b"[0:1]={oid,integer}", b"[0:1]={oid,integer}",
            b"[0:1]={oid,integer}"] in ours
    assert [b"json_each", b"{json,text,json}", b"[0:0]={json}", b"[0:0]={json}"] in ours
    assert [b"now", b"{}", b"{}", b"{}"] in ours


def test_binary_arrays_carry_the_lower_bound(fsql_server: FsqlServer) -> None:
    with psycopg.connect(fsql_server.dsn()) as conn:
        result = conn.pgconn.exec_params(QUERY.encode(), [], result_format=1)
        by_name = {result.get_value(r, 0): result.get_value(r, 2) for r in range(result.ntuples)}
    ndim, _flags, _elem, size, lower = struct.unpack("!iiiii", by_name[b"format_type"][:20])
    assert (ndim, size, lower) == (1, 2, 0)
    assert struct.unpack("!iii", by_name[b"now"][:12])[0] == 0  # no dimensions
