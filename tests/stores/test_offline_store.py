"""The offline store on its own: staged files → commit → manifest, reads, partial dates,
versions, vacuum and drop."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fsql.errors import StoreError
from fsql.stores.offline import MANIFEST, OfflineStore

SCHEMA = pa.schema(
    [("k", pa.string()), ("feature_time", pa.timestamp("us", tz="UTC")), ("f", pa.float64())]
)


def t(day: int, hour: int = 0) -> datetime:
    return datetime(2024, 6, day, hour, tzinfo=UTC)


def stage(store: OfflineStore, rows: list[tuple[str, datetime, float]]) -> str:
    """Write rows the way an engine does: hive-partitioned by UTC date, no date column."""
    staging = store.new_staging_dir()
    by_day: dict[str, list[tuple[str, datetime, float]]] = {}
    for row in rows:
        by_day.setdefault(row[1].date().isoformat(), []).append(row)
    for day, day_rows in by_day.items():
        folder = Path(staging) / f"date={day}"
        folder.mkdir(parents=True)
        table = pa.Table.from_pylist(
            [{"k": k, "feature_time": ft, "f": v} for k, ft, v in day_rows], schema=SCHEMA
        )
        pq.write_table(table, folder / "data_0.parquet")
    return staging


def read(store: OfflineStore, **kw: datetime) -> list[tuple[str, datetime, float]]:
    table = store.read_timeline("f", 1, SCHEMA, **kw)
    return sorted((r["k"], r["feature_time"], r["f"]) for r in table.to_pylist())


def test_commit_read_replace_and_keep_other_ticks(tmp_path: Path) -> None:
    store = OfflineStore.open(str(tmp_path / "offline"))
    assert read(store) == []  # nothing committed: empty, with the schema
    rows = [("a", t(1, h), float(h)) for h in (0, 6, 12, 18)] + [("a", t(2), 24.0)]
    result = store.commit("f", 1, stage(store, rows), t(1), t(3), SCHEMA)
    assert result.rows == 5 and result.obsolete == ()
    assert read(store) == rows
    assert read(store, start=t(1, 6), end=t(1, 18)) == rows[1:3]
    manifest = json.loads((tmp_path / "offline/feature=f/version=1" / MANIFEST).read_text())
    assert sorted(manifest["partitions"]) == ["2024-06-01", "2024-06-02"]
    # replace 06:00..12:00 of June 1 only: the other ticks of that date are kept
    new = [("a", t(1, 6), -6.0)]
    result = store.commit("f", 1, stage(store, new), t(1, 6), t(1, 12), SCHEMA)
    store.delete_files("f", 1, result.obsolete)
    assert read(store) == sorted([rows[0], new[0], *rows[2:]])
    assert store.vacuum("f", 1) == []  # obsolete files were deleted, nothing unlisted left
    # an interval with no rows removes what was there
    store.commit("f", 1, stage(store, []), t(2), t(3), SCHEMA)
    assert [r for r in read(store) if r[1] >= t(2)] == []


def test_staged_rows_outside_the_interval_are_refused(tmp_path: Path) -> None:
    store = OfflineStore.open(str(tmp_path / "offline"))
    staging = stage(store, [("a", t(5), 1.0)])
    with pytest.raises(StoreError, match="fall outside"):
        store.commit("f", 1, staging, t(1), t(2), SCHEMA)
    assert read(store) == []


def test_versions_are_separate_and_dropped_explicitly(tmp_path: Path) -> None:
    store = OfflineStore.open(str(tmp_path / "offline"))
    store.commit("f", 1, stage(store, [("a", t(1), 1.0)]), t(1), t(2), SCHEMA)
    store.commit("f", 2, stage(store, [("a", t(1), 2.0)]), t(1), t(2), SCHEMA)
    assert store.versions("f") == [1, 2]
    assert read(store) == [("a", t(1), 1.0)]
    assert store.read_timeline("f", 2, SCHEMA).column("f").to_pylist() == [2.0]
    store.drop_version("f", 1)
    assert store.versions("f") == [2]
    assert read(store) == []


def test_unlisted_files_are_never_read_and_vacuumed(tmp_path: Path) -> None:
    store = OfflineStore.open(str(tmp_path / "offline"))
    store.commit("f", 1, stage(store, [("a", t(1), 1.0)]), t(1), t(2), SCHEMA)
    stray = tmp_path / "offline/feature=f/version=1/date=2024-06-01/part-killed-0.parquet"
    pq.write_table(
        pa.Table.from_pylist([{"k": "a", "feature_time": t(1), "f": 99.0}], SCHEMA), stray
    )
    assert read(store) == [("a", t(1), 1.0)]
    assert store.vacuum("f", 1) == ["date=2024-06-01/part-killed-0.parquet"]
    assert not stray.exists()


def test_timestamps_round_trip_as_utc(tmp_path: Path) -> None:
    store = OfflineStore.open(str(tmp_path / "offline"))
    store.commit("f", 1, stage(store, [("a", t(1) + timedelta(hours=23), 1.0)]), t(1), t(2), SCHEMA)
    table = store.read_timeline("f", 1, SCHEMA)
    assert table.schema.field("feature_time").type == pa.timestamp("us", tz="UTC")
