"""Binary COPY TO STDOUT is framed as PostgreSQL frames it: one CopyData message per row."""

from __future__ import annotations

import struct

from fsql_server.pg.backend import Column
from fsql_server.pg.copy import BINARY_HEADER, BINARY_TRAILER, CopyFormat, encode_copy_rows
from fsql_server.pg.types import sql_type_to_pg

COLUMNS = [Column("x", sql_type_to_pg("BIGINT")), Column("s", sql_type_to_pg("TEXT"))]


def binary_row(x: int, s: str | None) -> bytes:
    out = struct.pack("!h", 2) + struct.pack("!i", 8) + struct.pack("!q", x)
    if s is None:
        return out + b"\xff\xff\xff\xff"
    return out + struct.pack("!i", len(s.encode())) + s.encode()


def test_one_message_per_row_header_with_the_first_trailer_alone() -> None:
    fmt = CopyFormat(kind="binary")
    rows = [(1, "a"), (2, None), (3, "ccc")]
    payloads = list(encode_copy_rows(COLUMNS, rows, fmt))
    assert payloads == [
        BINARY_HEADER + binary_row(1, "a"), binary_row(2, None), binary_row(3, "ccc"),
        BINARY_TRAILER,
    ]


def test_streamed_chunks_and_empty_results() -> None:
    fmt = CopyFormat(kind="binary")
    first = list(encode_copy_rows(COLUMNS, [(1, "a")], fmt, trailer=False))
    rest = list(encode_copy_rows(COLUMNS, [(2, "b")], fmt, header=False, trailer=False))
    end = list(encode_copy_rows(COLUMNS, [], fmt, header=False, trailer=True))
    assert first + rest + end == [BINARY_HEADER + binary_row(1, "a"), binary_row(2, "b"),
                                  BINARY_TRAILER]
    # no rows at all: header and trailer together, as PostgreSQL 15 sends them
    assert list(encode_copy_rows(COLUMNS, [], fmt)) == [BINARY_HEADER + BINARY_TRAILER]
