"""Timelines that follow the events: the sparse year and the scale case (issue 13).

    python bench/sparse.py                        # both cases at full size
    python bench/sparse.py --case sparse          # the sparse year only
    python bench/sparse.py --scale 0.01           # a quick smoke run

1. **Sparse year.** 200,000 users with 2 events each in the first 10 days of 2025; a 7-day SUM
   and a 7-day COUNT at a daily cadence over the whole year (365 ticks). The dense layout fsql
   had before stored every seen user at every tick: 73 million rows per feature, 97% of them
   NULL or 0. Contenders, each a whole command in a fresh process (start to exit, peak RSS from
   the process's own ``VmHWM``), on the same data, interleaved:
   - ``fsql materialize sum_7d count_7d --start 2025-01-01 --end 2026-01-01 --no-online`` after
     a fresh ``apply`` (empty ledger and offline store);
   - a hand-written DuckDB script writing the same change tables, one query per feature: daily
     partial aggregates, the ticks at which a value can change (a day with events and the day
     its events leave the window), a RANGE window over them, ``lag`` to keep the changes,
     date-partitioned Parquet (what a person who knows the data would write);
   - the dense layout, hand-written (a grid of every seen user at every tick, the same window):
     what storing entities × ticks costs, for the record.
   Reported: seconds, peak RSS, rows and bytes written. fsql's rows must equal the hand-written
   change table's (the script exits 1 otherwise).
2. **Scale.** 2,000,000 entities, 20,000,000 events over 2025, 20% of the entities active in
   any month (each entity active in about 2.4 months of the year); three windowed features
   (7-day SUM, 30-day COUNT, 90-day AVG), one lifetime COUNT and one latest value, daily, with
   ``[compute] memory_limit = "4GB"``: ``fsql materialize`` over the year, then ``fsql
   training-set`` for a 10,000,000-row spine of all five features. Reported: time, rows
   stored, bytes and peak RSS of each whole command.

Data is generated from a seed and cached under ``--workdir``. Results: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.offline import (  # noqa: E402 - the path above makes bench importable as a script
    apply_definitions,
    fsql_command,
    measure,
    spawn_timed,
    value_disagreements,
    write_parquet,
)

BENCH = Path(__file__).resolve().parent
YEAR0 = datetime(2025, 1, 1, tzinfo=UTC)
YEAR1 = datetime(2026, 1, 1, tzinfo=UTC)
D0 = int(YEAR0.timestamp()) // 86_400  # day index of 2025-01-01
TICKS = 365
SEED = 20250107

SPARSE_DEFINITIONS = """
CREATE ENTITY user KEY (user_id BIGINT);
CREATE SOURCE events (user_id BIGINT, amount DOUBLE, ts TIMESTAMP)
  FROM 'data/events' EVENT TIME ts;
CREATE FEATURE sum_7d ENTITY user WINDOW '7 days' EVERY '1 day'
  AS SELECT user_id, SUM(amount) FROM events;
CREATE FEATURE count_7d ENTITY user WINDOW '7 days' EVERY '1 day'
  AS SELECT user_id, COUNT(*) FROM events;
"""

SCALE_DEFINITIONS = """
CREATE ENTITY user KEY (user_id BIGINT);
CREATE SOURCE events (user_id BIGINT, amount DOUBLE, ts TIMESTAMP)
  FROM 'data/events' EVENT TIME ts;
CREATE FEATURE sum_7d ENTITY user WINDOW '7 days' EVERY '1 day'
  AS SELECT user_id, SUM(amount) FROM events;
CREATE FEATURE count_30d ENTITY user WINDOW '30 days' EVERY '1 day'
  AS SELECT user_id, COUNT(*) FROM events;
CREATE FEATURE avg_90d ENTITY user WINDOW '90 days' EVERY '1 day'
  AS SELECT user_id, AVG(amount) FROM events;
CREATE FEATURE count_ever ENTITY user EVERY '1 day' AS SELECT user_id, COUNT(*) FROM events;
CREATE FEATURE last_amount ENTITY user EVERY '1 day' AS SELECT user_id, amount FROM events;
"""
SCALE_FEATURES = ["sum_7d", "count_30d", "avg_90d", "count_ever", "last_amount"]


# --- data -----------------------------------------------------------------------------------


def prepare_sparse(work: Path, users: int) -> dict[str, Any]:
    """2 events per user at random instants of the first 10 days of 2025."""
    import numpy as np
    import pyarrow as pa

    marker = work / "data.json"
    if marker.exists():
        return dict(json.loads(marker.read_text()))
    shutil.rmtree(work, ignore_errors=True)
    rng = np.random.default_rng(SEED)
    n = 2 * users
    seconds = rng.integers(0, 10 * 86_400, size=n)
    events = pa.table({
        "user_id": np.repeat(np.arange(users, dtype=np.int64), 2),
        "amount": np.round(rng.uniform(0, 100, size=n), 2),
        "ts": pa.array((int(YEAR0.timestamp()) + seconds) * 1_000_000, pa.timestamp("us")),
    })  # fmt: skip
    write_parquet(events, work / "repo" / "data" / "events" / "part-0.parquet")
    facts = {"users": users, "events": n, "ticks": TICKS}
    marker.write_text(json.dumps(facts))
    return facts


def prepare_scale(work: Path, entities: int, events: int, spine_rows: int) -> dict[str, Any]:
    """Events over 2025 where entity e is active in month m when e ≡ c(m) (mod 5): 20% of the
    entities in every month, each active in the months 5 apart; a spine over the year."""
    import numpy as np
    import pyarrow as pa

    marker = work / "data.json"
    if marker.exists():
        return dict(json.loads(marker.read_text()))
    shutil.rmtree(work, ignore_errors=True)
    rng = np.random.default_rng(SEED + 1)
    month_starts = np.array(
        [int(datetime(2025, m, 1, tzinfo=UTC).timestamp()) for m in range(1, 13)]
        + [int(YEAR1.timestamp())]
    )
    month = rng.integers(0, 12, size=events)
    residue = (month * 3) % 5  # c(m): the entities active in month m
    entity = 5 * rng.integers(0, max(1, entities // 5), size=events) + residue
    start, stop = month_starts[month], month_starts[month + 1]
    seconds = start + (rng.random(size=events) * (stop - start)).astype(np.int64)
    table = pa.table({
        "user_id": entity.astype(np.int64),
        "amount": np.round(rng.uniform(0, 100, size=events), 2),
        "ts": pa.array(seconds * 1_000_000, pa.timestamp("us")),
    })  # fmt: skip
    write_parquet(table, work / "repo" / "data" / "events" / "part-0.parquet")
    spine = pa.table({
        "user_id": rng.integers(0, entities, size=spine_rows).astype(np.int64),
        "event_time": pa.array(
            (int(YEAR0.timestamp()) + rng.integers(0, 365 * 86_400, size=spine_rows))
            * 1_000_000, pa.timestamp("us", tz="UTC"),
        ),
        "label": rng.integers(0, 2, size=spine_rows),
    })  # fmt: skip
    write_parquet(spine, work / "spine.parquet")
    facts = {"entities": entities, "events": events, "spine_rows": spine_rows, "ticks": TICKS}
    marker.write_text(json.dumps(facts))
    return facts


# --- hand-written contenders --------------------------------------------------------------------


def _handwritten_sql(events: str, out: str, aggregate: str, name: str, window: int,
                     dense: bool) -> str:  # fmt: skip
    """One feature's timeline for the ticks of 2025 (day indices D0 .. D0+364): tile d holds
    the events of day d - 1 and counts for the ticks d .. d + window - 1."""
    d1 = D0 + TICKS
    if dense:
        grid = f"""
  grid AS (SELECT s.user_id, g.d FROM seen AS s, range({D0}, {d1}) AS g(d) WHERE g.d >= s.first_d),"""
    else:
        grid = f"""
  active AS (SELECT DISTINCT user_id, d FROM tiles),
  cand AS (
    SELECT user_id, d FROM active WHERE d >= {D0} AND d < {d1}
    UNION SELECT user_id, d + {window} FROM active WHERE d + {window} >= {D0} AND d + {window} < {d1}
  ),
  grid AS (
    SELECT user_id, d FROM cand
    UNION SELECT user_id, {D0} FROM seen WHERE first_d <= {D0}
  ),"""
    keep = "TRUE" if dense else "(pd IS NULL OR v IS DISTINCT FROM pv)"
    return f"""
COPY (
  WITH tiles AS (
    SELECT user_id, epoch_us(ts) // 86400000000 + 1 AS d, {aggregate} AS p
    FROM read_parquet('{events}')
    WHERE ts < make_timestamp({d1 * 86_400_000_000}) AND user_id IS NOT NULL
    GROUP BY ALL
  ),
  seen AS (SELECT user_id, MIN(d) AS first_d FROM tiles GROUP BY ALL),{grid}
  frames AS (
    SELECT user_id, d, NULL AS p, TRUE AS is_tick FROM grid
    UNION ALL SELECT user_id, d, p, FALSE FROM tiles
  ),
  windowed AS (
    SELECT user_id, d, is_tick,
           SUM(p) OVER (PARTITION BY user_id ORDER BY d
                        RANGE BETWEEN {window - 1} PRECEDING AND CURRENT ROW) AS v
    FROM frames
  ),
  changes AS (
    SELECT user_id, d, v, lag(v) OVER (PARTITION BY user_id ORDER BY d) AS pv,
           lag(d) OVER (PARTITION BY user_id ORDER BY d) AS pd
    FROM windowed WHERE is_tick
  )
  SELECT user_id, make_timestamptz(d * 86400000000) AS feature_time,
         {"COALESCE(v, 0)" if aggregate == "COUNT(*)" else "v"} AS {name},
         CAST(make_timestamp(d * 86400000000) AS DATE) AS date
  FROM changes WHERE {keep}
) TO '{out}' (FORMAT parquet, PARTITION_BY (date), COMPRESSION zstd)
"""  # noqa: E501 - SQL reads best unwrapped


SCRIPT = """
import sys, duckdb
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
for sql in sys.argv[1:]:
    con.execute(sql)
"""


def handwritten_command(work: Path, dense: bool) -> list[str]:
    out = work / ("out_dense" if dense else "out_changes")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    events = str(work / "repo" / "data" / "events" / "*.parquet")
    sqls = [
        _handwritten_sql(events, str(out / "sum_7d"), "SUM(amount)", "sum_7d", 7, dense),
        _handwritten_sql(events, str(out / "count_7d"), "COUNT(*)", "count_7d", 7, dense),
    ]
    return [sys.executable, "-c", SCRIPT, *sqls]


# --- measuring ----------------------------------------------------------------------------


def directory_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def parquet_rows(path: Path) -> int:
    import duckdb

    files = [path] if path.is_file() else list(path.rglob("*.parquet"))
    if not files:
        return 0
    con = duckdb.connect()
    row = con.execute(f"SELECT count(*) FROM read_parquet({[str(f) for f in files]})").fetchone()
    return int(row[0]) if row else 0


def sparse_disagreements(work: Path) -> int:
    """(user, tick) values where fsql's committed timelines and the hand-written change tables
    differ (bench/offline.py's ``value_disagreements``)."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    total = 0
    for feature in ("sum_7d", "count_7d"):
        fsql_files = [str(f) for f in (work / "repo" / ".fsql" / "offline").rglob(
            f"feature={feature}/**/*.parquet")]  # fmt: skip
        hand = f"read_parquet('{work / 'out_changes' / feature}/*/*.parquet')"
        total += value_disagreements(con, f"read_parquet({fsql_files})", hand, "user_id",
                                     feature, D0, D0 + TICKS)  # fmt: skip
    return total


def bench_sparse(work: Path, users: int, runs: int) -> dict[str, Any]:
    facts = prepare_sparse(work, users)
    repo = work / "repo"

    def fsql_once() -> dict[str, Any]:
        apply_definitions(repo, SPARSE_DEFINITIONS)  # empty ledger, empty store
        return spawn_timed(
            [*fsql_command(), "--repo", str(repo), "materialize", "sum_7d", "count_7d",
             "--start", YEAR0.isoformat(), "--end", YEAR1.isoformat(), "--engine", "duckdb",
             "--no-online"], "fsql materialize")  # fmt: skip

    contenders = {
        "fsql_cli": fsql_once,
        "changes_script": lambda: spawn_timed(handwritten_command(work, False), "change script"),
        "dense_script": lambda: spawn_timed(handwritten_command(work, True), "dense script"),
    }
    out: dict[str, Any] = {"facts": facts, **measure(runs, contenders)}
    stores = {"fsql_cli": repo / ".fsql" / "offline", "changes_script": work / "out_changes",
              "dense_script": work / "out_dense"}  # fmt: skip
    for name, path in stores.items():
        out[name]["rows"] = parquet_rows(path)
        out[name]["bytes"] = directory_bytes(path)
    out["disagree"] = sparse_disagreements(work)
    return out


def bench_scale(work: Path, entities: int, events: int, spine_rows: int, runs: int) -> dict[str, Any]:
    facts = prepare_scale(work, entities, events, spine_rows)
    repo = work / "repo"
    (repo / "fsql.toml").write_text('[compute]\nengine = "duckdb"\nmemory_limit = "4GB"\n')

    def materialize_once() -> dict[str, Any]:
        apply_definitions(repo, SCALE_DEFINITIONS)
        return spawn_timed(
            [*fsql_command(), "--repo", str(repo), "materialize", *SCALE_FEATURES,
             "--start", YEAR0.isoformat(), "--end", YEAR1.isoformat(), "--no-online"],
            "fsql materialize")  # fmt: skip

    def training_once() -> dict[str, Any]:
        return spawn_timed(
            [*fsql_command(), "--repo", str(repo), "training-set", "--spine",
             str(work / "spine.parquet"), *[a for f in SCALE_FEATURES for a in ("--features", f)],
             "--out", str(work / "training.parquet")], "fsql training-set")  # fmt: skip

    out: dict[str, Any] = {"facts": facts, **measure(runs, {"materialize": materialize_once})}
    out.update(measure(runs, {"training_set": training_once}))
    out["materialize"]["rows"] = parquet_rows(repo / ".fsql" / "offline")
    out["materialize"]["bytes"] = directory_bytes(repo / ".fsql" / "offline")
    out["training_set"]["rows"] = parquet_rows(work / "training.parquet")
    out["training_set"]["bytes"] = (work / "training.parquet").stat().st_size
    out["dense_rows_equivalent"] = None  # entities seen x ticks: computed below
    import duckdb

    seen = duckdb.connect().execute(f"""
        SELECT sum({D0 + TICKS} - greatest({D0}, epoch_us(first) // 86400000000 + 1))
        FROM (SELECT min(ts) AS first FROM read_parquet('{repo}/data/events/*.parquet')
              GROUP BY user_id)
    """).fetchone()  # fmt: skip
    out["dense_rows_equivalent"] = int(seen[0]) * len(SCALE_FEATURES) if seen and seen[0] else 0
    return out


def report(results: dict[str, Any]) -> str:
    lines: list[str] = []
    s = results.get("sparse")
    if s:
        f = s["facts"]
        lines.append(f"Sparse year: {f['users']:,} users, {f['events']:,} events in the first 10 "
                     f"days, 7-day SUM and COUNT daily over {f['ticks']} ticks")  # fmt: skip
        lines.append(f"{'whole command':<44}{'median s':>10}{'best s':>9}{'peak RSS MB':>13}"
                     f"{'rows':>14}{'MB on disk':>12}")  # fmt: skip
        for label, key in (("fsql materialize --no-online", "fsql_cli"),
                           ("hand-written change tables (DuckDB)", "changes_script"),
                           ("hand-written dense layout (DuckDB)", "dense_script")):  # fmt: skip
            r = s[key]
            lines.append(f"{label:<44}{r['seconds']:>10.2f}{r['best']:>9.2f}"
                         f"{r['peak_rss_mb']:>13.0f}{r['rows']:>14,}{r['bytes'] / 1e6:>12.1f}")
        ratio = s["fsql_cli"]["seconds"] / s["changes_script"]["seconds"]
        lines.append(f"fsql / hand-written change tables: {ratio:.2f}x (target <= 1.5x)")
        agree = "yes" if s["disagree"] == 0 else f"NO ({s['disagree']} rows differ)"
        lines.append(f"fsql's rows equal the hand-written change tables: {agree}")
        lines.append("")
    c = results.get("scale_case")
    if c:
        f = c["facts"]
        lines.append(f"Scale: {f['entities']:,} entities, {f['events']:,} events over 2025 (20% "
                     f"active per month), 5 daily features, memory_limit 4GB; training set of "
                     f"{f['spine_rows']:,} rows")  # fmt: skip
        lines.append(f"{'whole command':<44}{'median s':>10}{'best s':>9}{'peak RSS MB':>13}"
                     f"{'rows':>14}{'MB on disk':>12}")  # fmt: skip
        for label, key in (("fsql materialize (5 features, a year)", "materialize"),
                           ("fsql training-set (5 features)", "training_set")):  # fmt: skip
            r = c[key]
            lines.append(f"{label:<44}{r['seconds']:>10.2f}{r['best']:>9.2f}"
                         f"{r['peak_rss_mb']:>13.0f}{r['rows']:>14,}{r['bytes'] / 1e6:>12.1f}")
        lines.append(f"dense layout would store: {c['dense_rows_equivalent']:,} rows")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every size")
    parser.add_argument("--runs", type=int, default=3, help="runs per contender (median shown)")
    parser.add_argument("--case", choices=["sparse", "scale"], default=None)
    parser.add_argument("--workdir", type=Path, default=None,
                        help="data and results (default bench/.data/sparse-<scale>; reused)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    workdir = (args.workdir or BENCH / ".data" / f"sparse-{args.scale:g}").resolve()
    print(f"# bench/sparse.py scale={args.scale:g} runs={args.runs} on {platform.node()}: "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start",
          flush=True)  # fmt: skip
    results: dict[str, Any] = {"scale": args.scale, "runs": args.runs,
                               "started": datetime.now(UTC).isoformat()}  # fmt: skip
    if args.case in (None, "sparse"):
        users = max(100, round(200_000 * args.scale))
        results["sparse"] = bench_sparse(workdir / "sparse", users, args.runs)
    if args.case in (None, "scale"):
        results["scale_case"] = bench_scale(
            workdir / "scale", max(500, round(2_000_000 * args.scale)),
            max(5000, round(20_000_000 * args.scale)), max(1000, round(10_000_000 * args.scale)),
            args.runs,
        )
    results["load_average_end"] = os.getloadavg()
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 1 if results.get("sparse", {}).get("disagree", 0) else 0


if __name__ == "__main__":
    sys.exit(main())
