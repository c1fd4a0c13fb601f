"""The Feast side of the offline benchmark (bench/offline.py); runs inside bench/.venv-feast and
never imports fsql.

    bench/.venv-feast/bin/python bench/_feast_offline.py WORKDIR

Reads ``WORKDIR/feast_timeline.parquet`` (user_id, event_timestamp, created, f1, f2: the same
timeline fsql serves, one row per entity and tick) and ``WORKDIR/spine.parquet``, builds a Feast
repo with the DuckDB offline store, and times ``get_historical_features(...).to_arrow()``.
Configuration matching fsql's semantics: tz-aware UTC timestamps, a created-timestamp column
as the tie-break, no TTL (``ttl=timedelta(0)``: values never expire, like fsql without TTL).
Prints one JSON line: seconds, rows, peak RSS.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from datetime import timedelta
from pathlib import Path


def main() -> None:
    workdir = Path(sys.argv[1]).resolve()
    repo = workdir / "feast_repo"
    repo.mkdir(exist_ok=True)
    (repo / "feature_store.yaml").write_text(
        "project: bench\n"
        f"registry: {repo / 'registry.db'}\n"
        "provider: local\n"
        "offline_store:\n  type: duckdb\n"
        f"online_store:\n  type: sqlite\n  path: {repo / 'online.db'}\n"
        "entity_key_serialization_version: 3\n"
    )
    import pyarrow.parquet as pq
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64, Int64

    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
    source = FileSource(
        name="timeline",
        path=str(workdir / "feast_timeline.parquet"),
        timestamp_field="event_timestamp",
        created_timestamp_column="created",
    )
    view = FeatureView(
        name="bench",
        entities=[user],
        ttl=timedelta(0),
        schema=[Field(name="f1", dtype=Float64), Field(name="f2", dtype=Int64)],
        source=source,
        online=False,
    )
    store = FeatureStore(repo_path=str(repo))
    store.apply([user, view])
    # Feast takes the spine as a pandas DataFrame; converting it is not timed.
    spine = pq.read_table(workdir / "spine.parquet").to_pandas()
    started = time.perf_counter()
    job = store.get_historical_features(entity_df=spine, features=["bench:f1", "bench:f2"])
    result = job.to_arrow()
    seconds = time.perf_counter() - started
    pq.write_table(result.select(["row_id", "f1", "f2"]), workdir / "out_feast.parquet")
    # VmHWM: this process image's peak RSS (ru_maxrss would count the parent's at fork too)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                peak_kb = int(line.split()[1])
    print(json.dumps({"seconds": seconds, "rows": result.num_rows, "peak_rss_mb": peak_kb / 1024}))


if __name__ == "__main__":
    main()
