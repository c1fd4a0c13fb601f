"""Spark against DuckDB on the dense materialize case (bench/offline.py's shape, scaled), as a
user runs it: each figure is a fresh ``fsql materialize ... --no-online`` process, timed from
start to exit, with its peak RSS (the CLI process's own VmHWM: Spark's driver JVM and Python
workers are child processes and are *not* included; their peak is reported apart, sampled
from /proc over the whole process tree).

    python bench/spark.py --scale 0.05             # local[2] only
    python bench/spark.py --scale 0.05 --cluster   # also a standalone master + 1 worker
    python bench/spark.py --scale 0.05 --csv       # the source as CSV: tasks read it (mapInArrow)
    python bench/spark.py --scale 0.05 --features 4  # 4 independent features on local[2]:
                                                     # one after another vs concurrently

Contenders, each after a fresh apply (empty ledger and store):
- ``duckdb``: ``--engine duckdb``;
- ``spark local[2]``: ``--engine spark`` with ``FSQL_SPARK_MASTER=local[2]``;
- ``spark standalone`` (``--cluster``): a master and one worker (2 cores, 2 GB) started as
  tests/services/spark.py starts them, ``FSQL_SPARK_MASTER=spark://...``.
For each: the whole range (``ticks`` daily ticks in one interval) and one day (what one
scheduled Airflow task materializes: the per-run fixed cost). Values are compared with
DuckDB's committed timeline, row for row. The load average is printed with every figure.

``--features N`` measures instead N independent features over the same source (sums, counts
and maxima over 30 and 7 days) materialized in one ``fsql materialize`` on ``local[2]``, with
``[compute] spark_parallel_features = 1`` (one feature after another) and ``= N`` (all at once,
each submitting its jobs from its own thread), whole range and one day, values compared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.offline import (  # noqa: E402 - the path above makes bench importable as a script
    DAY,
    DAY0,
    MATERIALIZE_DEFINITIONS,
    USER_ENV,
    Sizes,
    _timeline_dataset,
    apply_definitions,
    fsql_command,
    prepare_materialize,
)

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent


def tree_rss_mb(pid: int) -> float:
    """Current RSS of ``pid`` and all its descendants (MB)."""
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except (OSError, ValueError):
            continue
        pending.extend(int(c) for c in children)
    return total / 1024


def run(command: list[str], env: dict[str, str], what: str) -> dict[str, Any]:
    """Wall seconds, the process's own peak RSS (VmHWM) and the peak RSS of its process tree
    (sampled every 50 ms: the Spark JVM included), and the load average before it started."""
    load = os.getloadavg()[0]
    with tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT, env=env)
        own_kb, tree = 0, 0.0
        status = Path(f"/proc/{proc.pid}/status")
        while proc.poll() is None:
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        own_kb = max(own_kb, int(line.split()[1]))
            except (OSError, ValueError):
                pass
            tree = max(tree, tree_rss_mb(proc.pid))
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"{what} failed (exit {proc.returncode}):\n"
                             f"{err.read().decode(errors='replace')[-4000:]}")  # fmt: skip
    return {"seconds": round(seconds, 2), "peak_rss_mb": round(own_kb / 1024),
            "tree_peak_rss_mb": round(tree), "load_1m": round(load, 2)}  # fmt: skip


def timeline_rows(repo: Path) -> list[tuple[Any, ...]]:
    table = _timeline_dataset(repo, "spend_30d").to_table()
    keys = ["user_id", "feature_time", "spend_30d"]
    # sums are compared to 6 decimals: the engines add the same doubles in different orders
    rows = [(u, t, None if v is None else round(v, 6)) for u, t, v in
            zip(*(table.column(k).to_pylist() for k in keys), strict=True)]  # fmt: skip
    return sorted(rows, key=lambda r: (r[0], r[1]))


def as_csv(repo: Path) -> None:
    """The source rewritten as CSV (one file), the definitions pointed at it."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    target = repo / "data" / "events_csv"
    if not (target / "part-0.csv").exists():
        target.mkdir(parents=True, exist_ok=True)
        pacsv.write_csv(pq.read_table(repo / "data/events/part-0.parquet"), target / "part-0.csv")


def definitions(csv: bool) -> str:
    if not csv:
        return MATERIALIZE_DEFINITIONS
    return MATERIALIZE_DEFINITIONS.replace(
        "FROM 'data/events' EVENT TIME ts;", "FROM 'data/events_csv' EVENT TIME ts FORMAT CSV;"
    )


def bench(work: Path, sizes: Sizes, masters: dict[str, str], runs: int, csv: bool) -> Any:
    facts = prepare_materialize(work, sizes)
    repo = work / "repo"
    if csv:
        as_csv(repo)
    end = DAY0 + sizes.ticks * DAY
    results: dict[str, Any] = {"facts": facts, "csv": csv, "runs": {}}
    baseline: list[tuple[Any, ...]] | None = None
    for label, (engine, master) in {"duckdb": ("duckdb", ""),
                                    **{k: ("spark", m) for k, m in masters.items()}}.items():  # fmt: skip
        env = {**USER_ENV, **({"FSQL_SPARK_MASTER": master} if master else {})}
        for span, stop in (("whole range", end), ("one day", DAY0 + DAY)):
            figures = []
            for _ in range(runs):
                apply_definitions(repo, definitions(csv))  # empty ledger, empty store
                figures.append(run(
                    [*fsql_command(), "--repo", str(repo), "materialize", "spend_30d", "--start",
                     DAY0.isoformat(), "--end", stop.isoformat(), "--engine", engine,
                     "--no-online"], env, f"{label} {span}"))  # fmt: skip
                print(label, span, figures[-1], flush=True)
            if span == "whole range":
                rows = timeline_rows(repo)
                if baseline is None:
                    baseline = rows
                results.setdefault("disagree", {})[label] = (
                    len(set(rows) ^ set(baseline)) + abs(len(rows) - len(baseline))
                )
                results.setdefault("stored_rows", {})[label] = len(rows)
            results["runs"][f"{label} / {span}"] = figures
    return results


#: the independent features of ``--features N`` (the first N)
PARALLEL_FEATURES = [
    ("spend_30d", "30 days", "SUM(amount)"),
    ("count_30d", "30 days", "COUNT(*)"),
    ("max_30d", "30 days", "MAX(amount)"),
    ("spend_7d", "7 days", "SUM(amount)"),
    ("count_7d", "7 days", "COUNT(*)"),
    ("max_7d", "7 days", "MAX(amount)"),
    ("min_30d", "30 days", "MIN(amount)"),
    ("min_7d", "7 days", "MIN(amount)"),
]


def parallel_definitions(count: int) -> str:
    features = "".join(
        f"CREATE FEATURE {name} ENTITY user WINDOW '{window}' EVERY '1 day'\n"
        f"  AS SELECT user_id, {aggregate} FROM events;\n"
        for name, window, aggregate in PARALLEL_FEATURES[:count]
    )
    head, _, _ = MATERIALIZE_DEFINITIONS.partition("CREATE FEATURE")
    return head + features


def all_timelines(repo: Path, count: int) -> set[tuple[Any, ...]]:
    rows = set()
    for name, _, _ in PARALLEL_FEATURES[:count]:
        table = _timeline_dataset(repo, name).to_table()
        for u, t, v in zip(*(table.column(k).to_pylist()
                             for k in ("user_id", "feature_time", name)), strict=True):  # fmt: skip
            rows.add((name, u, t, None if v is None else round(v, 6)))
    return rows


def bench_parallel(work: Path, sizes: Sizes, runs: int, count: int) -> Any:
    """``count`` independent features on local[2]: one after another vs concurrently."""
    facts = prepare_materialize(work, sizes)
    repo = work / "repo"
    end = DAY0 + sizes.ticks * DAY
    results: dict[str, Any] = {"facts": {**facts, "features": count}, "runs": {}}
    env = {**USER_ENV, "FSQL_SPARK_MASTER": "local[2]"}
    timelines: dict[int, set[tuple[Any, ...]]] = {}
    try:
        for span, stop in (("whole range", end), ("one day", DAY0 + DAY)):
            for parallel in (1, count):
                label = f"spark_parallel_features = {parallel} / {span}"
                figures = []
                for _ in range(runs):
                    apply_definitions(repo, parallel_definitions(count))  # empty ledger, store
                    (repo / "fsql.toml").write_text(
                        f'[online_store]\nurl = "sqlite:///{repo}/.fsql/online.db"\n'
                        f"[compute]\nspark_parallel_features = {parallel}\n"
                    )
                    figures.append(run(
                        [*fsql_command(), "--repo", str(repo), "materialize", "--start",
                         DAY0.isoformat(), "--end", stop.isoformat(), "--engine", "spark",
                         "--no-online"], env, label))  # fmt: skip
                    print(label, figures[-1], flush=True)
                if span == "whole range":
                    timelines[parallel] = all_timelines(repo, count)
                results["runs"][label] = figures
    finally:
        (repo / "fsql.toml").unlink(missing_ok=True)
    results["stored_rows"] = len(timelines[1])
    results["disagree"] = len(timelines[1] ^ timelines[count])
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=0.05)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--cluster", action="store_true", help="also a standalone cluster")
    parser.add_argument("--csv", action="store_true", help="the source as CSV")
    parser.add_argument("--features", type=int, default=0, metavar="N",
                        help=f"N (2-{len(PARALLEL_FEATURES)}) independent features: "
                        "sequential vs concurrent on local[2]")  # fmt: skip
    parser.add_argument("--workdir", type=Path, default=BENCH / ".work" / "spark")
    args = parser.parse_args()
    sizes = Sizes(args.scale)
    work = args.workdir / sizes.key()
    if args.features:
        if not 2 <= args.features <= len(PARALLEL_FEATURES):
            parser.error(f"--features must be 2 to {len(PARALLEL_FEATURES)}")
        print(f"{platform.node()}: {os.cpu_count()} cores; {sizes.events} events, "
              f"{sizes.entities} entities, {sizes.ticks} daily ticks, {args.features} "
              "features", flush=True)  # fmt: skip
        results = bench_parallel(work, sizes, args.runs, args.features)
        print(json.dumps(results, indent=1, default=str))
        return
    masters = {"spark local[2]": "local[2]"}
    print(f"{platform.node()}: {os.cpu_count()} cores; {sizes.events} events, "
          f"{sizes.entities} entities, {sizes.ticks} daily ticks", flush=True)  # fmt: skip
    if args.cluster:
        from tests.services.spark import _cluster

        with tempfile.TemporaryDirectory() as tmp, _cluster(Path(tmp), workers=1) as cluster:
            masters["spark standalone (1 worker, 2 cores)"] = cluster.master_url
            results = bench(work, sizes, masters, args.runs, args.csv)
    else:
        results = bench(work, sizes, masters, args.runs, args.csv)
    print(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
