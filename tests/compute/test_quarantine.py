"""Refused rows (a failed check) go to the offline store's quarantine, never to the timeline."""

from __future__ import annotations

from pathlib import Path

import pyarrow.dataset as ds
import pytest

from fsql.stores.offline import OfflineStore
from tests.stores.test_offline_store import SCHEMA, read, stage, t

ROWS = [("a", t(1), 1.0), ("b", t(1, 12), 2.0), ("a", t(2), 3.0)]


def rows_of(table) -> list[tuple[str, object, float]]:  # type: ignore[no-untyped-def]
    return sorted((r["k"], r["feature_time"], r["f"]) for r in table.to_pylist())


def test_staged_rows_are_read_then_quarantined_locally(tmp_path: Path) -> None:
    store = OfflineStore.open(str(tmp_path / "offline"))
    staging = stage(store, ROWS)
    assert rows_of(store.read_staged(staging, SCHEMA)) == sorted(ROWS)
    kept = store.quarantine(staging, "f", 1, t(1), t(3))
    assert Path(kept).parent == tmp_path / "offline" / "_quarantine" / "feature=f" / "version=1"
    assert Path(kept).name.startswith("20240601T000000Z_20240603T000000Z-")
    assert not Path(staging).exists()
    assert rows_of(ds.dataset(kept, schema=SCHEMA, format="parquet").to_table()) == sorted(ROWS)
    assert read(store) == []  # the timeline never saw them
    assert store.read_manifest("f", 1) == {}


def test_an_empty_staging_reads_as_no_rows(tmp_path: Path) -> None:
    store = OfflineStore.open(str(tmp_path / "offline"))
    assert store.read_staged(stage(store, []), SCHEMA).num_rows == 0


@pytest.mark.s3
def test_quarantine_on_s3(s3_endpoint) -> None:  # type: ignore[no-untyped-def]
    store = OfflineStore.open(s3_endpoint.uri, s3_endpoint.filesystem())
    staging = stage(store, ROWS)
    kept = store.quarantine(staging, "f", 1, t(1), t(3))
    prefix = f"{s3_endpoint.prefix}/_quarantine/feature=f/version=1/"
    assert kept.startswith(f"s3://{s3_endpoint.bucket}/{prefix}")
    keys = [k for k in s3_endpoint.keys() if not k.endswith("/")]  # pyarrow's folder markers
    assert keys and all(k.startswith(prefix) and k.endswith(".parquet") for k in keys)
    assert sorted({k.split("/")[-2] for k in keys}) == ["date=2024-06-01", "date=2024-06-02"]
    assert not Path(staging).exists()
    table = ds.dataset(kept[len("s3://"):], schema=SCHEMA, format="parquet",
                       filesystem=s3_endpoint.filesystem()).to_table()
    assert rows_of(table) == sorted(ROWS)
    assert read(store) == []
