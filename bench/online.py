"""Online serving benchmark (issue 4, "Speed"): in-process reads and the materialize push.

    /work/venv/bin/python bench/online.py              # full size: 200,000 entities, 10M rows
    /work/venv/bin/python bench/online.py --scale 0.01 # smoke run

1. **Online read**, Redis, 10 features, 1 entity and 100 entities per call, p50 / p99:
   fsql's ``SyncFeatureStore.get_online_features[_batch]`` and the asyncio
   ``FeatureStore.get_online_features[_batch]``; raw redis-py fetching the same bytes (one
   HMGET of the entity hash, or one pipelined round trip of HMGETs for 100 entities: the
   limit), with its sync client and with its asyncio client driven by the same event loop
   as fsql's asyncio API; fsql's own Lua read script called directly (its round trip without fsql's Python);
   Feast 0.67 ``get_online_features`` with its Redis online store (bench/.venv-feast, a
   subprocess, its own ``materialize`` loading the same rows into its own redis-server).
   fsql and raw redis-py run interleaved in chunks of 10 calls, so a change in machine load
   hits all of them alike.
2. **Materialize to Redis**: 200,000 entities × 50 days of events (10,000,000 rows) → two
   latest-value features, each a 10,000,000-row timeline offline; then fsql's online push of
   the last tick (200,000 entities × 2 features) in a fresh process (seconds, peak RSS), and
   Feast's ``materialize`` of the same 10,000,000 source rows into Redis.

Every contender's answers are checked against the generated data before timings count.
Prints a report (and ``--json FILE`` writes the numbers); see docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (  # noqa: E402 - the path above makes bench importable as a script
    DAY,
    DAY0,
    FEATURES,
    RedisProcess,
    build_profile_repo,
    event_table,
    expected_row,
    feast_available,
    feature_names,
    load_average,
    percentiles,
    profile_table,
    ratio,
    run_feast,
    say,
    write_fsql_repo,
)

Batches = list[list[int]]


def key_batches(n_entities: int, calls: int, size: int, seed: int) -> Batches:
    rng = random.Random(seed)
    return [[rng.randint(1, n_entities) for _ in range(size)] for _ in range(calls)]


def time_calls(call: Callable[[list[int]], Any], batches: Batches) -> list[int]:
    out = []
    clock = time.perf_counter_ns
    for keys in batches:
        t0 = clock()
        call(keys)
        out.append(clock() - t0)
    return out


# --- 1. online reads --------------------------------------------------------------------------


def fsql_readers(repo: Path, redis_url: str) -> tuple[dict[str, Callable[[list[int]], Any]],
                                                      Callable[[], None]]:  # fmt: skip
    """The contenders living in this process, each ``keys -> values``, and a closer."""
    import redis

    from fsql.api.store import FeatureStore
    from fsql.api.sync import SyncFeatureStore
    from fsql.stores.online.redis import _READ_SCRIPT, ACTIVE_KEY

    names = feature_names()
    sync_store = SyncFeatureStore(repo)
    async_store = FeatureStore(repo)
    loop = asyncio.new_event_loop()
    versions = sync_store.online_store.active_versions(names)
    fields = [f"{n}@{versions[n]}" for n in names]
    client = redis.Redis.from_url(redis_url)
    script = client.register_script(_READ_SCRIPT)
    script_args = [a for n in names for a in (n, "")]

    def fsql_sync(keys: list[int]) -> Any:
        if len(keys) == 1:
            return [sync_store.get_online_features(names, keys[0])]
        return sync_store.get_online_features_batch(names, keys)

    def fsql_async(keys: list[int]) -> Any:
        if len(keys) == 1:
            return [loop.run_until_complete(async_store.get_online_features(names, keys[0]))]
        return loop.run_until_complete(async_store.get_online_features_batch(names, keys))

    def raw_hmget(keys: list[int]) -> Any:
        if len(keys) == 1:
            return [client.hmget(f"fsql:e:user:{keys[0]}", fields)]
        pipe = client.pipeline(transaction=False)
        for k in keys:
            pipe.hmget(f"fsql:e:user:{k}", fields)
        return pipe.execute()

    import redis.asyncio

    async_client = redis.asyncio.Redis.from_url(redis_url)

    async def raw_hmget_async_call(keys: list[int]) -> Any:
        if len(keys) == 1:
            return [await async_client.hmget(f"fsql:e:user:{keys[0]}", fields)]
        pipe = async_client.pipeline(transaction=False)
        for k in keys:
            pipe.hmget(f"fsql:e:user:{k}", fields)
        return await pipe.execute()

    def raw_hmget_async(keys: list[int]) -> Any:
        return loop.run_until_complete(raw_hmget_async_call(keys))

    def raw_script(keys: list[int]) -> Any:
        return script(keys=[ACTIVE_KEY, *(f"fsql:e:user:{k}" for k in keys)], args=script_args)

    def close() -> None:
        loop.run_until_complete(async_store.close())
        loop.run_until_complete(async_client.aclose())
        loop.close()
        sync_store.close()
        client.close()

    readers = {
        "fsql SyncFeatureStore": fsql_sync,
        "fsql FeatureStore (asyncio)": fsql_async,
        "raw redis-py HMGET (limit)": raw_hmget,
        "raw redis-py asyncio HMGET": raw_hmget_async,
        "raw redis-py fsql Lua script": raw_script,
    }
    return readers, close


def check_fsql_values(readers: dict[str, Callable[[list[int]], Any]], table: Any,
                      keys: Sequence[int], fields: int) -> None:  # fmt: skip
    """fsql's answers (and the raw bytes, decoded) equal the generated rows."""
    from fsql.stores.online.codec import decode_record

    for k in keys:
        want = {f"user_{n}": v for n, v in expected_row(table, k).items()}
        for name in ("fsql SyncFeatureStore", "fsql FeatureStore (asyncio)"):
            got = readers[name]([k])[0]
            assert got == want, f"{name} returned {got} for user {k}, expected {want}"
        raw = readers["raw redis-py HMGET (limit)"]([k])[0]
        decoded = {f"user_{n}": decode_record(b, "").value
                   for (n, _t, _f), b in zip(FEATURES, raw, strict=True)}  # fmt: skip
        assert decoded == want, f"raw bytes of user {k} decode to {decoded}, expected {want}"
        assert len(raw) == fields
        assert readers["raw redis-py asyncio HMGET"]([k])[0] == raw


def check_feast_values(samples: dict[str, dict[str, list[Any]]], table: Any) -> None:
    for key, answer in samples.items():
        want = expected_row(table, int(key))
        got = {n: answer[n][0] for n, _t, _f in FEATURES}
        assert got == want, f"Feast returned {got} for user {key}, expected {want}"


def bench_reads(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    n_entities = max(200, int(200_000 * args.scale))
    calls1 = max(200, int(args.iterations))
    calls100 = max(50, int(args.iterations) // 5)
    say(f"[read] generating {n_entities:,} users x 10 features (load {load_average()})")
    table = profile_table(n_entities)
    result: dict[str, Any] = {"entities": n_entities, "calls_1": calls1, "calls_100": calls100}
    batches = {"1x10": key_batches(n_entities, calls1, 1, seed=1),
               "100x10": key_batches(n_entities, calls100, 100, seed=2)}  # fmt: skip
    check_keys = [1, n_entities, *random.Random(3).sample(range(1, n_entities + 1), 5)]
    with RedisProcess(work / "redis-fsql") as redis_fsql, \
            RedisProcess(work / "redis-feast") as redis_feast:  # fmt: skip
        repo = work / "fsql-repo"
        seconds = build_profile_repo(repo, redis_fsql.url, table)
        result["fsql_materialize_s"] = seconds
        say(f"[read] fsql materialized {n_entities:,} users into Redis in {seconds:.1f} s")
        readers, close = fsql_readers(repo, redis_fsql.url)
        try:
            check_fsql_values(readers, table, check_keys, len(FEATURES))
            timings: dict[str, dict[str, list[int]]] = {name: {} for name in readers}
            result["load_before"] = load_average()
            for shape, shape_batches in batches.items():
                warm = shape_batches[: max(20, len(shape_batches) // 10)]
                for call in readers.values():
                    time_calls(call, warm)
                # Interleaved in chunks of 10 calls, contenders in a rotating order: a burst
                # of load from the other processes on this machine (which is what p99
                # measures here) falls on every contender alike.
                size = 10
                names = list(readers)
                for c in range(0, len(shape_batches), size):
                    chunk = shape_batches[c : c + size]
                    turn = (c // size) % len(names)
                    for name in names[turn:] + names[:turn]:
                        timings[name].setdefault(shape, []).extend(time_calls(readers[name], chunk))
            result["load_after"] = load_average()
        finally:
            close()
        stats = {name: {shape: percentiles(t) for shape, t in per.items()}
                 for name, per in timings.items()}  # fmt: skip
        missing = feast_available() if not args.no_feast else "--no-feast"
        if missing is None:
            feast_repo = work / "feast-repo"
            parquet = str(repo / "data" / "profiles" / "part-0.parquet")
            spec = {"repo": str(feast_repo), "redis_port": redis_feast.port, "parquet": parquet,
                    "view": "user_profile", "timestamp_field": "updated_at",
                    "fields": [[n, f] for n, _t, f in FEATURES]}  # fmt: skip
            say(f"[read] Feast materialize of {n_entities:,} users (load {load_average()})")
            setup = run_feast({**spec, "op": "setup",
                               "start": (DAY0 - DAY).isoformat(),
                               "end": (DAY0 + 2 * DAY).isoformat()}, timeout=1800)  # fmt: skip
            result["feast_materialize_s"] = setup["materialize_s"]
            say(f"[read] Feast reads (load {load_average()})")
            answer = run_feast({**spec, "op": "read", "check_keys": check_keys,
                                "batches": batches, "warmup": 50}, timeout=1800)  # fmt: skip
            check_feast_values(answer["samples"], table)
            stats["Feast get_online_features"] = {
                shape: percentiles(t) for shape, t in answer["timings"].items()
            }
            result["load_feast"] = load_average()
        else:
            result["feast_missing"] = missing
    result["stats"] = stats
    return result


def report_reads(result: dict[str, Any]) -> str:
    stats = result["stats"]
    limit = stats["raw redis-py HMGET (limit)"]
    feast = stats.get("Feast get_online_features")
    lines = [
        f"Online read, Redis, 10 features ({result['entities']:,} users stored; "
        f"{result['calls_1']} calls of 1 entity, {result['calls_100']} calls of 100; "
        f"load {result['load_before']} -> {result['load_after']})",
        f"{'contender':32} {'1x10 p50':>9} {'p99':>8} {'100x10 p50':>11} {'p99':>8}"
        f" {'p50 vs raw':>11} {'p50 vs Feast':>13}",
    ]
    for name, per in stats.items():
        one, many = per["1x10"], per["100x10"]
        vs_raw = (f"{ratio(one['p50_ms'], limit['1x10']['p50_ms'])}/"
                  f"{ratio(many['p50_ms'], limit['100x10']['p50_ms'])}")  # fmt: skip
        vs_feast = "" if feast is None else (
            f"{ratio(one['p50_ms'], feast['1x10']['p50_ms'])}/"
            f"{ratio(many['p50_ms'], feast['100x10']['p50_ms'])}")  # fmt: skip
        lines.append(
            f"{name:32} {one['p50_ms']:8.3f}ms {one['p99_ms']:6.3f}ms {many['p50_ms']:9.3f}ms "
            f"{many['p99_ms']:6.3f}ms {vs_raw:>11} {vs_feast:>13}"
        )
    if feast is None:
        lines.append(f"Feast not measured: {result.get('feast_missing')}")
    lines.append("(ratios: 1x10 / 100x10 p50; below 1 means faster)")
    lines.append("fsql against raw redis-py, p50 and p99 (1x10 p50, p99 / 100x10 p50, p99):")
    pairs = [("fsql SyncFeatureStore", "raw redis-py HMGET (limit)"),
             ("fsql FeatureStore (asyncio)", "raw redis-py asyncio HMGET"),
             ("fsql FeatureStore (asyncio)", "raw redis-py HMGET (limit)")]  # fmt: skip
    for mine, raw in pairs:
        a, b = stats[mine], stats[raw]
        cells = [ratio(a[s][q], b[s][q]) for s in ("1x10", "100x10") for q in ("p50_ms", "p99_ms")]
        lines.append(f"  {mine} / {raw}: {cells[0]}, {cells[1]} / {cells[2]}, {cells[3]}")
    return "\n".join(lines)


# --- 2. materialize to the online store --------------------------------------------------------

EVENTS_SQL = """
CREATE ENTITY user KEY (user_id BIGINT);
CREATE SOURCE events (user_id BIGINT, amount DOUBLE, item_id BIGINT, ts TIMESTAMP,
                      created_at TIMESTAMP)
  FROM 'data/events' FORMAT PARQUET EVENT TIME ts CREATED TIME created_at;
CREATE FEATURE user_last_amount ENTITY user TYPE DOUBLE AS SELECT user_id, amount FROM events;
CREATE FEATURE user_last_item ENTITY user TYPE BIGINT AS SELECT user_id, item_id FROM events;
"""

PUSH_CHILD = """
import json, sys, time
def peak_rss_mb():
    # VmHWM: this process image's peak RSS (ru_maxrss would include the parent's at fork)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
from datetime import datetime
from fsql.api.sync import SyncFeatureStore
repo, start, end = sys.argv[1], datetime.fromisoformat(sys.argv[2]), \
    datetime.fromisoformat(sys.argv[3])
with SyncFeatureStore(repo) as store:
    t0 = time.perf_counter()
    results = store.materialize(start, end)
    seconds = time.perf_counter() - t0
rows = sum(r.online.rows for r in results if r.online is not None)
print(json.dumps({"push_s": seconds, "online_rows": rows, "computed_rows": sum(r.rows for r in results),
                  "peak_rss_mb": peak_rss_mb()}))
"""


def bench_materialize(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from fsql.api.sync import SyncFeatureStore

    n_entities = max(100, int(200_000 * args.scale))
    days = 50
    start, end = DAY0 + DAY, DAY0 + (days + 1) * DAY
    say(f"[materialize] generating {n_entities * days:,} events of {n_entities:,} users")
    table = event_table(n_entities, days)
    result: dict[str, Any] = {"entities": n_entities, "events": table.num_rows}
    with RedisProcess(work / "redis-mat-fsql") as redis_fsql, \
            RedisProcess(work / "redis-mat-feast") as redis_feast:  # fmt: skip
        repo = work / "fsql-events"
        write_fsql_repo(repo, redis_fsql.url, EVENTS_SQL, {"events": table})
        with SyncFeatureStore(repo) as store:
            store.register(EVENTS_SQL)
            result["load_offline"] = load_average()
            t0 = time.perf_counter()
            offline = store.materialize(start, end, online=False)
            result["offline_s"] = time.perf_counter() - t0
            result["timeline_rows"] = {r.feature: r.rows for r in offline}
        say(
            f"[materialize] fsql offline timelines {result['timeline_rows']} in "
            f"{result['offline_s']:.1f} s; pushing (load {load_average()})"
        )
        result["load_push"] = load_average()
        child = subprocess.run(
            [sys.executable, "-c", PUSH_CHILD, str(repo), start.isoformat(), end.isoformat()],
            capture_output=True, text=True, timeout=1800, check=False,
        )  # fmt: skip
        if child.returncode != 0:
            raise RuntimeError(f"fsql push failed:\n{child.stderr[-3000:]}")
        result["fsql"] = json.loads(child.stdout.strip().splitlines()[-1])
        check_materialized(repo, table, days, n_entities)
        missing = feast_available() if not args.no_feast else "--no-feast"
        if missing is None:
            result["load_feast"] = load_average()
            say(
                f"[materialize] Feast materialize of {table.num_rows:,} rows "
                f"(load {load_average()})"
            )
            spec = {"repo": str(work / "feast-events"), "redis_port": redis_feast.port,
                    "parquet": str(repo / "data" / "events" / "part-0.parquet"),
                    "view": "user_events", "timestamp_field": "ts",
                    "fields": [["amount", "Float64"], ["item_id", "Int64"]]}  # fmt: skip
            result["feast"] = run_feast({**spec, "op": "setup", "start": DAY0.isoformat(),
                                         "end": end.isoformat()}, timeout=3600)  # fmt: skip
            keys = [1, n_entities, *random.Random(5).sample(range(1, n_entities + 1), 5)]
            answer = run_feast({**spec, "op": "read", "check_keys": keys, "batches": {},
                                "warmup": 0}, timeout=600)  # fmt: skip
            for key, got in answer["samples"].items():
                want = latest_event(table, int(key), days)
                assert (got["amount"][0], got["item_id"][0]) == want, (key, got, want)
        else:
            result["feast_missing"] = missing
    return result


def latest_event(table: Any, user_id: int, days: int) -> tuple[float, int]:
    row = (user_id - 1) * days + days - 1  # the user's event on the last day is its latest
    return table.column("amount")[row].as_py(), table.column("item_id")[row].as_py()


def check_materialized(repo: Path, table: Any, days: int, n_entities: int) -> None:
    from fsql.api.sync import SyncFeatureStore

    keys = [1, n_entities, *random.Random(4).sample(range(1, n_entities + 1), 5)]
    with SyncFeatureStore(repo) as store:
        rows = store.get_online_features_batch(["user_last_amount", "user_last_item"], keys)
    for key, row in zip(keys, rows, strict=True):
        want = latest_event(table, key, days)
        got = (row["user_last_amount"], row["user_last_item"])
        assert got == want, f"fsql serves {got} for user {key} after the push, expected {want}"


def report_materialize(result: dict[str, Any]) -> str:
    fsql = result["fsql"]
    lines = [
        f"Materialize to Redis: {result['events']:,} events of {result['entities']:,} users -> "
        f"2 latest-value features",
        f"  fsql offline compute (2 timelines, rows {result['timeline_rows']}): "
        f"{result['offline_s']:.1f} s (load {result['load_offline']})",
        f"  fsql online push ({fsql['online_rows']:,} values, fresh process): "
        f"{fsql['push_s']:.2f} s, peak RSS {fsql['peak_rss_mb']:.0f} MB "
        f"(load {result['load_push']})",
        f"  fsql end to end (offline + push): {result['offline_s'] + fsql['push_s']:.1f} s",
    ]
    feast = result.get("feast")
    if feast:
        lines.append(
            f"  Feast materialize ({result['entities'] * 2:,} values from {result['events']:,} "
            f"rows): {feast['materialize_s']:.1f} s, peak RSS {feast['peak_rss_mb']:.0f} MB "
            f"(load {result['load_feast']})"
        )
        lines.append(
            f"  Feast / fsql push: {ratio(feast['materialize_s'], fsql['push_s'])}; "
            f"Feast / fsql end to end: "
            f"{ratio(feast['materialize_s'], result['offline_s'] + fsql['push_s'])}"
        )
    else:
        lines.append(f"  Feast not measured: {result.get('feast_missing')}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="fraction of the issue's sizes (0.01 for a smoke run)",
    )
    parser.add_argument(
        "--iterations",
        type=int,
        default=5000,
        help="calls of 1 entity per contender (calls of 100: a fifth)",
    )
    parser.add_argument("--part", choices=["read", "materialize", "all"], default="all")
    parser.add_argument("--no-feast", action="store_true", help="skip the Feast contender")
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    args = parser.parse_args(argv)
    out: dict[str, Any] = {"scale": args.scale, "command": " ".join(sys.argv)}
    with tempfile.TemporaryDirectory(prefix="fsql-bench-online-") as tmp:
        work = Path(tmp)
        if args.part in ("read", "all"):
            out["read"] = bench_reads(args, work)
            print(report_reads(out["read"]), flush=True)
        if args.part in ("materialize", "all"):
            out["materialize"] = bench_materialize(args, work)
            print(report_materialize(out["materialize"]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str))
    return out


if __name__ == "__main__":
    main()
