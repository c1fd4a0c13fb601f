"""Offline compute benchmark: training sets and materialization on fsql's DuckDB engine against
the baselines issue 3 names, on the same generated data, in one run.

    python bench/offline.py                 # full size (issue 3's "Speed" section)
    python bench/offline.py --scale 0.01    # a quick smoke run
    bash bench/setup.sh                     # once: Feast in bench/.venv-feast

1. Training set: a spine of 2,000,000 rows (200,000 entities, 2% never seen, times spread
   over the timeline and beyond) joined point-in-time to 2 features whose timelines have
   10,000,000 rows (200,000 entities x 50 daily ticks; each timeline row carries both values
   in Feast's table, one timeline per feature in fsql's store). Contenders:
   - ``fsql``: ``fsql.compute.training.training_set`` on the DuckDB engine, reading the timelines fsql
     materialized into its offline store (spine order kept, spine columns returned);
   - ``asof``: one hand-written DuckDB ``ASOF LEFT JOIN`` of the spine to the same timeline
     stored as one Parquet file with both features (issue 3's limit for this engine);
   - ``asof2``: two hand-written ``ASOF LEFT JOIN``s over fsql's own per-feature files (fsql's
     stored change rows: what fsql's own ASOF lookup reads);
   - ``feast``: Feast's ``get_historical_features`` with its DuckDB offline store, in its own
     venv (bench/.venv-feast), with tz-aware timestamps and a created-timestamp column (the
     configuration matching fsql's tie-break semantics), no TTL, the spine as pandas.
2. Materialization: ``SUM(amount)`` over a 30-day window at a daily cadence from 10,000,000
   events of 200,000 entities, 90 ticks. Contenders: ``fsql materialize`` on DuckDB (source
   check, compile, compute, write, atomic commit, ledger) and one hand-written DuckDB query
   computing the same change table (a row where the value differs from the day before) and
   writing the same date-partitioned Parquet.

Every contender runs in its own subprocess (peak RSS = that process image's VmHWM), timed
around the work only (reading the spine into memory and Feast's ``apply`` are excluded), and
writes its result; the script checks that the contenders agree value by value before it
prints the table. Data is generated from a seed and cached under ``--workdir``.

3. Whole commands, as a user runs them: each a fresh process timed from start to exit by
   this script (interpreter start, imports, reading the input, registry and ledger work,
   writing the output): ``fsql training-set --spine ... --out ...`` against a stand-alone
   Python script doing the one-table ASOF join with DuckDB (reads the spine, writes Parquet),
   and ``fsql materialize ... --no-online`` (after a fresh apply: empty ledger and store)
   against a stand-alone script running the hand-written query. In-process figures say what
   the engine work costs; these say what a user waits for.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fsql.workspace import Workspace

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
FEAST_PYTHON = Path(os.environ.get("FSQL_BENCH_FEAST_PYTHON", BENCH / ".venv-feast/bin/python"))
DAY0 = datetime(2025, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)
SEED = 20250101

TRAINING_DEFINITIONS = """
CREATE ENTITY user KEY (user_id BIGINT);
CREATE SOURCE readings (user_id BIGINT, ts TIMESTAMP, v1 DOUBLE, v2 BIGINT)
  FROM 'data/readings' EVENT TIME ts;
CREATE FEATURE f1 ENTITY user EVERY '1 day' AS SELECT user_id, v1 FROM readings;
CREATE FEATURE f2 ENTITY user EVERY '1 day' AS SELECT user_id, v2 FROM readings;
"""

MATERIALIZE_DEFINITIONS = """
CREATE ENTITY user KEY (user_id BIGINT);
CREATE SOURCE events (user_id BIGINT, amount DOUBLE, ts TIMESTAMP)
  FROM 'data/events' EVENT TIME ts;
CREATE FEATURE spend_30d ENTITY user WINDOW '30 days' EVERY '1 day'
  AS SELECT user_id, SUM(amount) FROM events;
"""


class Sizes:
    """The benchmark's sizes at ``scale`` (1.0 = issue 3's numbers)."""

    def __init__(self, scale: float):
        self.scale = scale
        self.entities = max(20, round(200_000 * scale))
        self.timeline_ticks = 50  # 200,000 x 50 = 10,000,000 timeline rows
        self.spine_rows = max(100, round(2_000_000 * scale))
        self.events = max(200, round(10_000_000 * scale))
        self.window_days = 30
        self.ticks = 90

    def key(self) -> str:
        return f"scale={self.scale:g}"


# --- helpers ------------------------------------------------------------------------------


def peak_rss_mb() -> float:
    """This process image's peak RSS (VmHWM). ``ru_maxrss`` would also count the parent's RSS
    at fork, since Linux carries the high-water mark across exec."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux


def apply_definitions(repo: Path, definitions: str) -> None:
    """A fresh registry and offline store under ``repo/.fsql`` with ``definitions`` applied."""
    from fsql.language.analysis import analyze
    from fsql.language.parser import parse
    from fsql.registry import open_registry

    shutil.rmtree(repo / ".fsql", ignore_errors=True)
    (repo / "features.sql").write_text(definitions)
    with open_registry(repo_config(repo)) as registry:
        analysis = analyze(parse(definitions))
        registry.apply(registry.plan(analysis), analysis)


def repo_config(repo: Path) -> Any:
    from fsql.config import config_from_mapping

    return config_from_mapping(
        {"online_store": {"url": f"sqlite:///{repo}/.fsql/online.db"}}, repo, "bench"
    )


def write_parquet(table: Any, path: Path) -> None:
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=1_000_000)


# --- data -----------------------------------------------------------------------------------


def prepare_training(work: Path, sizes: Sizes) -> dict[str, Any]:
    """Readings → fsql materializes f1/f2 (the timelines) → Feast's table from those timelines;
    plus the spine. Cached: returns the recorded facts when the data exists already."""
    import numpy as np
    import pyarrow as pa

    marker = work / "training.json"
    if marker.exists():
        return dict(json.loads(marker.read_text()))
    shutil.rmtree(work, ignore_errors=True)
    repo = work / "repo"
    repo.mkdir(parents=True)
    rng = np.random.default_rng(SEED)
    n, ticks = sizes.entities, sizes.timeline_ticks
    # one reading per entity per day, strictly inside the day: tick d+1 sees day d's reading
    users = np.repeat(np.arange(n, dtype=np.int64), ticks)
    days = np.tile(np.arange(ticks, dtype=np.int64), n)
    seconds = days * 86_400 + rng.integers(1, 86_400, size=n * ticks)
    micros = int(DAY0.timestamp()) * 1_000_000 + seconds * 1_000_000
    readings = pa.table({
        "user_id": users,
        "ts": pa.array(micros, pa.timestamp("us")),
        "v1": np.round(rng.uniform(0, 1000, size=n * ticks), 3),
        "v2": rng.integers(0, 1_000_000, size=n * ticks),
    })  # fmt: skip
    write_parquet(readings, repo / "data" / "readings" / "part-0.parquet")
    del readings, users, days, seconds, micros
    apply_definitions(repo, TRAINING_DEFINITIONS)
    from fsql.compute.materialize import materialize

    started = time.perf_counter()
    results = materialize(Workspace(repo_config(repo)), ["f1", "f2"], DAY0 + DAY, DAY0 + (ticks + 1) * DAY, engine="duckdb", online=False)  # fmt: skip
    materialize_seconds = time.perf_counter() - started
    rows = {r.feature: r.rows for r in results}
    # stored rows are changes: one per reading, less the rare reading equal to the day before
    if not all(0.99 * n * ticks <= r <= n * ticks for r in rows.values()):
        raise SystemExit(f"expected about {n * ticks} timeline rows per feature, fsql wrote {rows}")
    # Feast's table (and the ASOF limit's): each entity's values at every tick, both features
    # per row, from the readings themselves (tick d + 1 sees day d's reading)
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    readings_glob = repo / "data" / "readings" / "*.parquet"
    con.execute(f"""
        COPY (SELECT user_id,
                     make_timestamptz((epoch_us(ts) // 86400000000 + 1) * 86400000000)
                       AS event_timestamp,
                     make_timestamptz((epoch_us(ts) // 86400000000 + 1) * 86400000000) AS created,
                     v1 AS f1, v2 AS f2
              FROM read_parquet('{readings_glob}'))
        TO '{work / "feast_timeline.parquet"}' (FORMAT parquet, ROW_GROUP_SIZE 1000000)
    """)  # fmt: skip
    joined = con.execute(f"SELECT count(*) FROM '{work / 'feast_timeline.parquet'}'").fetchone()
    assert joined is not None and joined[0] == n * ticks, joined
    # the spine: 2% unknown entities; times from a day before the first tick to a day after
    # the last, so some rows have no value yet
    m = sizes.spine_rows
    horizon = (ticks + 2) * 86_400
    spine = pa.table({
        "row_id": np.arange(m, dtype=np.int64),
        "user_id": rng.integers(0, int(n * 1.02) + 1, size=m),
        "event_time": pa.array(
            (int(DAY0.timestamp()) + rng.integers(0, horizon, size=m)) * 1_000_000,
            pa.timestamp("us", tz="UTC"),
        ),
        "label": rng.integers(0, 2, size=m),
    })  # fmt: skip
    write_parquet(spine, work / "spine.parquet")
    facts = {"timeline_rows": n * ticks, "spine_rows": m, "entities": n,
             "prep_materialize_seconds": materialize_seconds}  # fmt: skip
    marker.write_text(json.dumps(facts))
    return facts


def _timeline_dataset(repo: Path, feature: str) -> Any:
    from fsql.compute.materialize import timeline_schema
    from fsql.registry import open_registry
    from fsql.stores.offline import OfflineStore

    config = repo_config(repo)
    with open_registry(config) as registry:
        resolved = registry.analysis().features[feature]
        version = registry.current()[feature].version
    files = OfflineStore.from_config(config).timeline_files(
        feature, version, timeline_schema(resolved)
    )
    return files.dataset()


def prepare_materialize(work: Path, sizes: Sizes) -> dict[str, Any]:
    """10M events over [DAY0 - 30 days, DAY0 + 90 days), uniform over entities and time."""
    import numpy as np
    import pyarrow as pa

    marker = work / "materialize.json"
    if marker.exists():
        return dict(json.loads(marker.read_text()))
    shutil.rmtree(work, ignore_errors=True)
    repo = work / "repo"
    rng = np.random.default_rng(SEED + 1)
    k = sizes.events
    first = int((DAY0 - sizes.window_days * DAY).timestamp())
    span = (sizes.window_days + sizes.ticks) * 86_400
    events = pa.table({
        "user_id": rng.integers(0, sizes.entities, size=k),
        "amount": np.round(rng.uniform(0, 100, size=k), 2),
        "ts": pa.array((first + rng.integers(0, span, size=k)) * 1_000_000, pa.timestamp("us")),
    })  # fmt: skip
    write_parquet(events, repo / "data" / "events" / "part-0.parquet")
    facts = {"events": k, "entities": sizes.entities, "ticks": sizes.ticks}
    marker.write_text(json.dumps(facts))
    return facts


# --- contenders (each runs in its own subprocess: ``--contender NAME``) -------------------------


def contender_fsql_training(work: Path) -> dict[str, Any]:
    # modules fsql loads on first use (duckdb, pyarrow.dataset) are imported before the timer,
    # as the hand-written contenders' are: in-process figures time the work only
    import duckdb  # noqa: F401
    import pyarrow.dataset  # noqa: F401
    import pyarrow.parquet as pq

    from fsql.compute.training import training_set

    spine = pq.read_table(work / "spine.parquet")
    config = repo_config(work / "repo")
    started = time.perf_counter()
    result = training_set(Workspace(config), spine, ["f1", "f2"], engine="duckdb")
    seconds = time.perf_counter() - started
    pq.write_table(result.select(["row_id", "f1", "f2"]), work / "out_fsql.parquet")
    return {"seconds": seconds, "rows": result.num_rows}


ASOF_SQL = """
SELECT s.*, t.f1, t.f2
FROM spine AS s ASOF LEFT JOIN read_parquet('{timeline}') AS t
  ON s.user_id = t.user_id AND s.event_time >= t.event_timestamp
"""


def contender_asof_training(work: Path) -> dict[str, Any]:
    import duckdb
    import pyarrow.parquet as pq

    spine = pq.read_table(work / "spine.parquet")
    started = time.perf_counter()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("spine", spine)
    result = con.sql(ASOF_SQL.format(timeline=work / "feast_timeline.parquet")).to_arrow_table()
    seconds = time.perf_counter() - started
    pq.write_table(result.select(["row_id", "f1", "f2"]), work / "out_asof.parquet")
    return {"seconds": seconds, "rows": result.num_rows}


ASOF_PER_FEATURE_SQL = """
SELECT s.*, a.f1, b.f2
FROM spine AS s
ASOF LEFT JOIN read_parquet([{f1}]) AS a ON s.user_id = a.user_id AND s.event_time >= a.feature_time
ASOF LEFT JOIN read_parquet([{f2}]) AS b ON s.user_id = b.user_id AND s.event_time >= b.feature_time
"""


def contender_asof_per_feature_training(work: Path) -> dict[str, Any]:
    """Two hand-written ASOF joins over fsql's own committed files (one timeline per feature):
    the limit for fsql's storage layout."""
    import duckdb
    import pyarrow.parquet as pq

    files = {
        name: ", ".join(f"'{p}'" for p in _timeline_dataset(work / "repo", name).files)
        for name in ("f1", "f2")
    }
    spine = pq.read_table(work / "spine.parquet")
    started = time.perf_counter()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("spine", spine)
    result = con.sql(ASOF_PER_FEATURE_SQL.format(**files)).to_arrow_table()
    seconds = time.perf_counter() - started
    pq.write_table(result.select(["row_id", "f1", "f2"]), work / "out_asof2.parquet")
    return {"seconds": seconds, "rows": result.num_rows}


def contender_fsql_materialize(work: Path, sizes: Sizes) -> dict[str, Any]:
    import duckdb  # noqa: F401 - imported before the timer (see contender_fsql_training)
    import pyarrow.dataset  # noqa: F401

    from fsql.compute.materialize import materialize

    config = repo_config(work / "repo")
    started = time.perf_counter()
    results = materialize(Workspace(config), ["spend_30d"], DAY0, DAY0 + sizes.ticks * DAY, engine="duckdb", online=False)  # fmt: skip
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": sum(r.rows for r in results)}


def handwritten_materialize_sql(events: str, out: str, sizes: Sizes) -> str:
    """One query: daily partial sums per entity, a 30-tile window over them, a dense grid of
    (entity, tick) for every entity seen before the tick, kept where the value differs from
    the day before (fsql's change table: here nearly every tick changes), written
    date-partitioned."""
    d0 = int(DAY0.timestamp()) // 86_400
    d1 = d0 + sizes.ticks
    w = sizes.window_days
    return f"""
COPY (
  WITH tiles AS (
    SELECT user_id, epoch_us(ts) // 86400000000 AS d, SUM(amount) AS s
    FROM read_parquet('{events}')
    WHERE ts >= make_timestamp({(d0 - w) * 86_400_000_000}) AND ts < make_timestamp({d1 * 86_400_000_000})
      AND user_id IS NOT NULL
    GROUP BY ALL
  ),
  first_seen AS (SELECT user_id, MIN(d) AS first_d FROM tiles GROUP BY ALL),
  frames AS (
    SELECT f.user_id, g.d, NULL::DOUBLE AS s, TRUE AS is_tick
    FROM first_seen AS f, range({d0}, {d1}) AS g(d) WHERE g.d > f.first_d
    UNION ALL
    SELECT user_id, d + 1 AS d, s, FALSE AS is_tick FROM tiles  -- tile d counts for ticks d+1..d+{w}
  ),
  windowed AS (
    SELECT user_id, d, is_tick,
           SUM(s) OVER (PARTITION BY user_id ORDER BY d RANGE BETWEEN {w - 1} PRECEDING AND CURRENT ROW) AS v
    FROM frames
  ),
  changes AS (
    SELECT user_id, d, v, lag(v) OVER (PARTITION BY user_id ORDER BY d) AS pv,
           lag(d) OVER (PARTITION BY user_id ORDER BY d) AS pd
    FROM windowed WHERE is_tick
  )
  SELECT user_id, make_timestamptz(d * 86400000000) AS feature_time, v AS spend_30d,
         CAST(make_timestamp(d * 86400000000) AS DATE) AS date
  FROM changes WHERE pd IS NULL OR v IS DISTINCT FROM pv
) TO '{out}' (FORMAT parquet, PARTITION_BY (date), COMPRESSION zstd)
"""  # noqa: E501 - SQL reads best unwrapped


def contender_handwritten_materialize(work: Path, sizes: Sizes) -> dict[str, Any]:
    import duckdb

    out = work / "out_handwritten"
    shutil.rmtree(out, ignore_errors=True)
    sql = handwritten_materialize_sql(str(work / "repo/data/events/*.parquet"), str(out), sizes)
    started = time.perf_counter()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(sql)
    seconds = time.perf_counter() - started
    rows = con.execute(f"SELECT count(*) FROM read_parquet('{out}/*/*.parquet')").fetchone()
    return {"seconds": seconds, "rows": rows[0] if rows else 0}


ASOF_SCRIPT = """
import sys, duckdb, pyarrow.parquet as pq
work = sys.argv[1]
spine = pq.read_table(work + "/spine.parquet")
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
con.register("spine", spine)
result = con.sql(\"\"\"{sql}\"\"\").to_arrow_table()
pq.write_table(result, work + "/out_asof_script.parquet")
"""

MATERIALIZE_SCRIPT = """
import duckdb
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
con.execute(\"\"\"{sql}\"\"\")
"""


#: the environment whole commands run in: this one, less PYTHONDONTWRITEBYTECODE (set on some
#: machines, it makes every fresh process compile each module it imports from source, which
#: an installed package never does: pip writes the bytecode at install time)
USER_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def spawn_timed(command: list[str], what: str) -> dict[str, Any]:
    """A whole command as a user runs it: wall seconds from start to exit and the peak RSS of
    that process, sampled from its ``VmHWM`` (the high-water mark of its own memory since it
    started; the ``ru_maxrss`` a parent gets from ``wait`` starts at the parent's own size)."""
    with tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT,
                                env=USER_ENV)  # fmt: skip
        peak_kb = 0
        status = Path(f"/proc/{proc.pid}/status")
        while proc.poll() is None:
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak_kb = max(peak_kb, int(line.split()[1]))
            except (OSError, ValueError):
                pass
            time.sleep(0.02)
        seconds = time.perf_counter() - started
        if proc.returncode != 0:
            err.seek(0)
            tail = err.read().decode(errors="replace")[-4000:]
            raise SystemExit(f"{what} failed (exit {proc.returncode}):\n{tail}")
    return {"seconds": seconds, "rows": 0, "peak_rss_mb": peak_kb / 1024}


def fsql_command() -> list[str]:
    return [sys.executable, "-m", "fsql.cli"]


def run_contender(name: str, work: Path, sizes: Sizes) -> dict[str, Any]:
    """Inside the contender's subprocess."""
    if name == "fsql-training":
        result = contender_fsql_training(work)
    elif name == "asof-training":
        result = contender_asof_training(work)
    elif name == "asof-per-feature-training":
        result = contender_asof_per_feature_training(work)
    elif name == "fsql-materialize":
        result = contender_fsql_materialize(work, sizes)
    elif name == "handwritten-materialize":
        result = contender_handwritten_materialize(work, sizes)
    else:
        raise SystemExit(f"unknown contender {name!r}")
    return {**result, "peak_rss_mb": peak_rss_mb()}


def spawn(command: list[str], what: str) -> dict[str, Any]:
    """Run one contender process; its last stdout line is its JSON result."""
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{what} failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def spawn_fsql(name: str, work: Path, sizes: Sizes) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--contender", name,
               "--workdir", str(work), "--scale", str(sizes.scale)]  # fmt: skip
    return spawn(command, name)


def spawn_feast(work: Path) -> dict[str, Any]:
    shutil.rmtree(work / "feast_repo", ignore_errors=True)
    return spawn([str(FEAST_PYTHON), str(BENCH / "_feast_offline.py"), str(work)], "feast")


# --- agreement ------------------------------------------------------------------------------


def training_disagreements(work: Path, other: str) -> int:
    """Spine rows where ``out_<other>`` differs from fsql's result (or is missing)."""
    import duckdb

    con = duckdb.connect()
    row = con.execute(f"""
        SELECT count(*) FROM read_parquet('{work / "out_fsql.parquet"}') AS a
        FULL JOIN read_parquet('{work / f"out_{other}.parquet"}') AS b USING (row_id)
        WHERE a.row_id IS NULL OR b.row_id IS NULL
           OR a.f1 IS DISTINCT FROM b.f1 OR a.f2 IS DISTINCT FROM b.f2
    """).fetchone()  # fmt: skip
    return int(row[0]) if row else -1


def materialize_disagreements(work: Path) -> int:
    """(entity, tick) values where fsql's committed timeline and the hand-written one differ."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("fsql_tl", _timeline_dataset(work / "repo", "spend_30d"))
    hand = f"read_parquet('{work / 'out_handwritten'}/*/*.parquet')"
    d0 = int(DAY0.timestamp()) // 86_400
    ticks = int(json.loads((work / "materialize.json").read_text())["ticks"])
    return value_disagreements(con, "fsql_tl", hand, "user_id", "spend_30d", d0, d0 + ticks)


def value_disagreements(
    con: Any, a: str, b: str, key: str, value: str, first_day: int, stop_day: int
) -> int:
    """(key, tick) pairs for the daily ticks [first_day, stop_day) where two change tables
    give different values (the value at a tick is the key's latest row at or before it), with
    a relative tolerance of 1e-9: which rows a change table holds may differ by float noise in
    the window sums (a value equal to the day before up to rounding), never the values. Values
    only change at the ticks where either table has a row, so only those are compared."""
    lo, hi = first_day * 86_400_000_000, stop_day * 86_400_000_000
    row = con.execute(f"""
        WITH grid AS (
          SELECT {key}, feature_time AS t FROM {a}
            WHERE epoch_us(feature_time) >= {lo} AND epoch_us(feature_time) < {hi}
          UNION
          SELECT {key}, feature_time FROM {b}
            WHERE epoch_us(feature_time) >= {lo} AND epoch_us(feature_time) < {hi}
        ),
        va AS (SELECT g.{key}, g.t, x.{value} AS v, x.feature_time IS NOT NULL AS seen
               FROM grid AS g ASOF LEFT JOIN {a} AS x
                 ON g.{key} = x.{key} AND x.feature_time <= g.t),
        vb AS (SELECT g.{key}, g.t, x.{value} AS v, x.feature_time IS NOT NULL AS seen
               FROM grid AS g ASOF LEFT JOIN {b} AS x
                 ON g.{key} = x.{key} AND x.feature_time <= g.t)
        SELECT count(*) FROM va JOIN vb USING ({key}, t)
        WHERE va.seen <> vb.seen OR (va.v IS NULL) <> (vb.v IS NULL)
           OR abs(va.v - vb.v) > 1e-9 * greatest(1, abs(vb.v))
    """).fetchone()  # fmt: skip
    return int(row[0]) if row else -1


# --- the run --------------------------------------------------------------------------------


def measure(runs: int, contenders: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``runs`` rounds over the contenders, interleaved (a, b, c, a, b, c, ...) so that load
    from other processes on the machine hits every contender alike: per contender the median
    and best seconds and the worst peak RSS."""
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in contenders}
    for _ in range(runs):
        for name, once in contenders.items():
            results[name].append(once())
    out = {}
    for name, runs_of in results.items():
        seconds = [r["seconds"] for r in runs_of]
        out[name] = {"seconds": statistics.median(seconds), "best": min(seconds),
                     "all": seconds, "rows": runs_of[-1]["rows"],
                     "peak_rss_mb": max(r["peak_rss_mb"] for r in runs_of)}  # fmt: skip
    return out


def bench_training(work: Path, sizes: Sizes, runs: int, feast: bool) -> dict[str, Any]:
    facts = prepare_training(work, sizes)
    contenders = {
        "fsql": lambda: spawn_fsql("fsql-training", work, sizes),
        "asof": lambda: spawn_fsql("asof-training", work, sizes),
        "asof2": lambda: spawn_fsql("asof-per-feature-training", work, sizes),
    }
    if feast:
        contenders["feast"] = lambda: spawn_feast(work)
    out: dict[str, Any] = {"facts": facts, **measure(runs, contenders)}
    asof_sql = ASOF_SQL.format(timeline=work / "feast_timeline.parquet")
    commands = {
        "fsql_cli": lambda: spawn_timed(
            [*fsql_command(), "--repo", str(work / "repo"), "training-set", "--spine",
             str(work / "spine.parquet"), "--features", "f1,f2", "--engine", "duckdb",
             "--out", str(work / "out_fsql_cli.parquet")], "fsql training-set"),
        "asof_script": lambda: spawn_timed(
            [sys.executable, "-c", ASOF_SCRIPT.format(sql=asof_sql), str(work)], "ASOF script"),
    }  # fmt: skip
    out["whole"] = measure(runs, commands)
    out["disagree_fsql_cli"] = training_disagreements(work, "fsql_cli")
    out["disagree_asof_script"] = training_disagreements(work, "asof_script")
    out["disagree_asof"] = training_disagreements(work, "asof")
    out["disagree_asof2"] = training_disagreements(work, "asof2")
    if feast:
        out["disagree_feast"] = training_disagreements(work, "feast")
    return out


def bench_materialize(work: Path, sizes: Sizes, runs: int) -> dict[str, Any]:
    facts = prepare_materialize(work, sizes)

    def fsql_once() -> dict[str, Any]:
        apply_definitions(work / "repo", MATERIALIZE_DEFINITIONS)  # empty ledger, empty store
        return spawn_fsql("fsql-materialize", work, sizes)

    contenders = {
        "fsql": fsql_once,
        "handwritten": lambda: spawn_fsql("handwritten-materialize", work, sizes),
    }
    out: dict[str, Any] = {"facts": facts, **measure(runs, contenders)}
    out["disagree"] = materialize_disagreements(work)
    end = (DAY0 + sizes.ticks * DAY).isoformat()

    def fsql_cli_once() -> dict[str, Any]:
        apply_definitions(work / "repo", MATERIALIZE_DEFINITIONS)  # empty ledger, empty store
        return spawn_timed(
            [*fsql_command(), "--repo", str(work / "repo"), "materialize", "spend_30d",
             "--start", DAY0.isoformat(), "--end", end, "--engine", "duckdb", "--no-online"],
            "fsql materialize")  # fmt: skip

    def script_once() -> dict[str, Any]:
        target = work / "out_handwritten"
        shutil.rmtree(target, ignore_errors=True)
        sql = handwritten_materialize_sql(
            str(work / "repo/data/events/*.parquet"), str(target), sizes)
        return spawn_timed([sys.executable, "-c", MATERIALIZE_SCRIPT.format(sql=sql)],
                           "hand-written script")  # fmt: skip

    out["whole"] = measure(runs, {"fsql_cli": fsql_cli_once, "script": script_once})
    out["disagree_whole"] = materialize_disagreements(work)
    return out


def report(results: dict[str, Any], sizes: Sizes) -> str:
    lines = []
    t = results.get("training")
    if t:
        f = t["facts"]
        lines.append(
            f"Training set: {f['spine_rows']:,} spine rows x {f['timeline_rows']:,} timeline rows "
            f"({f['entities']:,} entities, 2 features)"
        )
        lines.append(f"{'contender':<40}{'median s':>10}{'best s':>10}{'peak RSS MB':>13}"
                     f"{'vs fsql':>9}")  # fmt: skip
        base = t["fsql"]["seconds"]
        rows = [("fsql training_set (DuckDB)", t["fsql"]),
                ("hand-written ASOF JOIN, 1 table", t["asof"]),
                ("hand-written 2 ASOF JOINs, fsql files", t["asof2"])]  # fmt: skip
        if "feast" in t:
            rows.append(("Feast get_historical_features", t["feast"]))
        for label, r in rows:
            lines.append(f"{label:<40}{r['seconds']:>10.2f}{r['best']:>10.2f}"
                         f"{r['peak_rss_mb']:>13.0f}{r['seconds'] / base:>8.2f}x")  # fmt: skip
        lines.append(f"fsql / ASOF limit: {base / t['asof']['seconds']:.2f}x (issue 13: <= 1.11x whole command)")
        if "feast" in t:
            lines.append(f"Feast / fsql: {t['feast']['seconds'] / base:.2f}x (target >= 3x)")
        for key, label in (
            ("disagree_asof", "the ASOF join"),
            ("disagree_asof2", "the 2 ASOF joins"),
        ):
            agree = "yes" if t[key] == 0 else f"NO ({t[key]} rows differ)"
            lines.append(f"values agree with {label}: {agree}")
        if "feast" in t:
            agree = "yes" if t["disagree_feast"] == 0 else f"NO ({t['disagree_feast']} rows differ)"
            lines.append(f"values agree with Feast: {agree}")
        w = t["whole"]
        lines.append("Whole commands (fresh processes, start to exit):")
        for label, r in (("fsql training-set (CLI)", w["fsql_cli"]),
                         ("ASOF JOIN script (duckdb, pyarrow)", w["asof_script"])):  # fmt: skip
            lines.append(f"{label:<40}{r['seconds']:>10.2f}{r['best']:>10.2f}"
                         f"{r['peak_rss_mb']:>13.0f}")  # fmt: skip
        lines.append(f"fsql / ASOF script, whole commands: "
                     f"{w['fsql_cli']['seconds'] / w['asof_script']['seconds']:.2f}x (target <= 1.11x)")  # fmt: skip
        both = t["disagree_fsql_cli"] + t["disagree_asof_script"]
        lines.append(f"whole-command outputs agree: {'yes' if both == 0 else f'NO ({both})'}")
        lines.append("")
    m = results.get("materialize")
    if m:
        f = m["facts"]
        lines.append(
            f"Materialization: 30-day SUM, daily, {f['events']:,} events, {f['entities']:,} "
            f"entities, {f['ticks']} ticks"
        )
        lines.append(f"{'contender':<40}{'median s':>10}{'best s':>10}{'rows':>12}"
                     f"{'rows/s':>12}{'peak RSS MB':>13}")  # fmt: skip
        for label, r in (("fsql materialize (DuckDB)", m["fsql"]),
                         ("hand-written single query", m["handwritten"])):  # fmt: skip
            lines.append(f"{label:<40}{r['seconds']:>10.2f}{r['best']:>10.2f}{r['rows']:>12,}"
                         f"{r['rows'] / r['seconds']:>12,.0f}{r['peak_rss_mb']:>13.0f}")  # fmt: skip
        ratio = m["fsql"]["seconds"] / m["handwritten"]["seconds"]
        lines.append(f"fsql / hand-written: {ratio:.2f}x (issue 13 targets the whole command)")
        agree = "yes" if m["disagree"] == 0 else f"NO ({m['disagree']} rows differ)"
        lines.append(f"timelines agree: {agree}")
        w = m["whole"]
        lines.append("Whole commands (fresh processes, start to exit):")
        for label, r in (("fsql materialize --no-online (CLI)", w["fsql_cli"]),
                         ("hand-written query script", w["script"])):  # fmt: skip
            lines.append(f"{label:<40}{r['seconds']:>10.2f}{r['best']:>10.2f}"
                         f"{'':>12}{'':>12}{r['peak_rss_mb']:>13.0f}")  # fmt: skip
        lines.append(f"fsql / hand-written, whole commands: "
                     f"{w['fsql_cli']['seconds'] / w['script']['seconds']:.2f}x (target <= 1.2x)")
        agree = "yes" if m["disagree_whole"] == 0 else f"NO ({m['disagree_whole']} rows differ)"
        lines.append(f"timelines agree (whole commands): {agree}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="multiply every size by this (default 1.0 = issue 3's sizes)",
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per contender (median shown)")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="data and results (default bench/.data/offline-<scale>; reused)",
    )
    parser.add_argument("--only", choices=["training", "materialize"], default=None)
    parser.add_argument(
        "--no-feast", action="store_true", help="skip Feast (when bench/.venv-feast is not set up)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--contender", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = Sizes(args.scale)
    workdir = (args.workdir or BENCH / ".data" / f"offline-{args.scale:g}").resolve()
    if args.contender:  # a subprocess of the run: --workdir is that benchmark's folder
        print(json.dumps(run_contender(args.contender, workdir, sizes)))
        return 0
    feast = not args.no_feast
    if feast and not FEAST_PYTHON.exists():
        raise SystemExit(f"{FEAST_PYTHON} is missing: run bash bench/setup.sh (or --no-feast)")
    print(f"# bench/offline.py {sizes.key()} runs={args.runs} on {platform.node()}: "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start",
          flush=True)  # fmt: skip
    results: dict[str, Any] = {"scale": args.scale, "runs": args.runs,
                               "started": datetime.now(UTC).isoformat()}  # fmt: skip
    if args.only in (None, "training"):
        results["training"] = bench_training(workdir / "training", sizes, args.runs, feast)
    if args.only in (None, "materialize"):
        results["materialize"] = bench_materialize(workdir / "materialize", sizes, args.runs)
    results["load_average_end"] = os.getloadavg()
    print(report(results, sizes))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    keys = ("disagree_asof", "disagree_asof2", "disagree_feast")
    bad = [results.get("training", {}).get(k, 0) for k in keys]
    bad.append(results.get("materialize", {}).get("disagree", 0))
    return 1 if any(bad) else 0


if __name__ == "__main__":
    sys.exit(main())
