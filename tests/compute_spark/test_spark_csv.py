"""CSV sources on Spark are parsed exactly like the DuckDB engine parses them (pyarrow)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pytest

from fsql.stores.files import SourceFiles

pytestmark = pytest.mark.spark


def test_csv_source_parses_like_pyarrow(engine, tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(
        "user_id,event_time,amount,note\n"
        "1,2024-03-01 12:30:15Z,1.5,\n"
        "2,2024-03-01T00:00:00Z,,hello\n"
        "3,2024-03-02 00:00:00+00:00,NaN,NULL\n"
    )
    declared = pa.schema(
        [
            ("user_id", pa.int64()),
            ("event_time", pa.timestamp("us", "UTC")),
            ("amount", pa.float64()),
            ("note", pa.string()),
        ]
    )
    files = SourceFiles("events", "csv", (str(path),), pafs.LocalFileSystem(), declared)
    engine.register_source("src_events", files)
    out = engine.query("SELECT * FROM src_events ORDER BY user_id")
    expected = pacsv.read_csv(
        path, convert_options=pacsv.ConvertOptions(column_types=declared)
    ).to_pydict()
    assert out.to_pydict() == expected
