"""The Feast side of the serving benchmarks; runs inside bench/.venv-feast (never imports fsql).

Reads one JSON request on stdin, prints one JSON answer line on stdout. Requests:

- ``{"op": "setup", ...}``: write a Feast repo (DuckDB offline store over the given Parquet
  file, Redis online store), apply an entity and one feature view, run ``materialize`` and
  report its seconds and this process's peak memory;
- ``{"op": "read", ...}``: ``get_online_features`` latencies for the given key lists (one list
  per call), plus the values returned for a few keys (the parent compares them with fsql's).
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

FEAST_TYPES = {"Float64", "Int64", "String"}


def feature_store_yaml(repo: Path, redis_port: int) -> None:
    (repo / "data").mkdir(parents=True, exist_ok=True)
    (repo / "feature_store.yaml").write_text(
        "project: bench\n"
        f"registry: {repo / 'data' / 'registry.db'}\n"
        "provider: local\n"
        "offline_store:\n  type: duckdb\n"
        f"online_store:\n  type: redis\n  connection_string: 127.0.0.1:{redis_port}\n"
        "entity_key_serialization_version: 3\n"
    )


def feature_view(request: dict[str, Any]) -> tuple[Any, Any]:
    from feast import Entity, FeatureView, Field, FileSource, ValueType
    from feast import types as ft

    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
    source = FileSource(
        name=f"{request['view']}_source",
        path=request["parquet"],
        timestamp_field=request["timestamp_field"],
        created_timestamp_column="created_at",
    )
    schema = [Field(name=name, dtype=getattr(ft, typ)) for name, typ in request["fields"]]
    view = FeatureView(
        name=request["view"], entities=[user], ttl=timedelta(0), schema=schema, online=True,
        source=source,
    )  # fmt: skip
    return user, view


def setup(request: dict[str, Any]) -> dict[str, Any]:
    from feast import FeatureStore

    repo = Path(request["repo"])
    feature_store_yaml(repo, request["redis_port"])
    store = FeatureStore(repo_path=str(repo))
    user, view = feature_view(request)
    store.apply([user, view])
    start = datetime.fromisoformat(request["start"])
    end = datetime.fromisoformat(request["end"])
    started = time.perf_counter()
    store.materialize(start_date=start, end_date=end, feature_views=[request["view"]])
    seconds = time.perf_counter() - started
    return {"materialize_s": seconds, "peak_rss_mb": peak_rss_mb()}


def peak_rss_mb() -> float:
    """This process image's peak RSS (VmHWM). ``ru_maxrss`` would report the parent's RSS at
    fork time when that is larger: Linux keeps it across exec."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def read(request: dict[str, Any]) -> dict[str, Any]:
    from feast import FeatureStore

    store = FeatureStore(repo_path=request["repo"])
    refs = [f"{request['view']}:{name}" for name, _t in request["fields"]]
    get = store.get_online_features

    def call(keys: list[int]) -> dict[str, list[Any]]:
        return get(features=refs, entity_rows=[{"user_id": k} for k in keys]).to_dict()

    samples = {str(k): call([k]) for k in request["check_keys"]}
    out: dict[str, Any] = {"samples": samples, "timings": {}}
    for name, batches in request["batches"].items():
        for keys in batches[: request["warmup"]]:
            call(keys)
        times = []
        for keys in batches:
            t0 = time.perf_counter_ns()
            call(keys)
            times.append(time.perf_counter_ns() - t0)
        out["timings"][name] = times
    return out


def main() -> None:
    if sys.argv[1:] != ["--request-on-stdin"]:
        print(
            "bench/_feast_serving.py is run by bench/online.py and bench/server.py inside "
            "bench/.venv-feast (with --request-on-stdin); nothing to do on its own."
        )
        return
    request = json.load(sys.stdin)
    op = request["op"]
    answer = setup(request) if op == "setup" else read(request)
    print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
