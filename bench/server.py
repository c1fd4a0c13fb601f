"""Postgres-wire server benchmark (issue 5, "Speed"): point lookups under pgbench.

    /work/venv/bin/python bench/server.py              # full size: 200,000 users x 10 features
    /work/venv/bin/python bench/server.py --scale 0.01 --duration 2   # smoke run

Contenders, same rows, same run, all on loopback:

- ``fsql serve`` (``--workers`` processes sharing the port; ``--workers 1,2`` runs it with each
  count in turn; ``--fast-lane on,off`` also without the lookup fast lane) backed by a
  redis-server holding
  200,000 users × 10 features, loaded by fsql's own ``materialize``;
- a real PostgreSQL 15 serving the same rows from a table ``features."user"`` with a primary
  key (the limit);
- Feast's HTTP feature server (``feast serve``, bench/.venv-feast) over its own redis-server
  loaded by Feast's ``materialize``, driven by wrk with a Lua script POSTing
  /get-online-features for one random user per request — with Feast's defaults and tuned
  (``-w 2 --no-access-log --max-requests 100000000``).

pgbench (Debian's postgresql package) runs the custom script::

    \\set id random(1, N)
    SELECT user_f0, ..., user_f9 FROM features.user WHERE user_id = :id;

over 8 connections in ``-M simple`` and ``-M prepared``, then over 1 connection with ``--log``
for p50/p99 latencies. Before any timing, each contender's answer for a few users is checked
against the generated rows. Prints a report (``--json FILE`` writes the numbers).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (  # noqa: E402 - the path above makes bench importable as a script
    BENCH,
    DAY,
    DAY0,
    FEATURES,
    PostgresProcess,
    RedisProcess,
    build_profile_repo,
    expected_row,
    feast_available,
    feature_names,
    free_port,
    load_average,
    percentiles,
    profile_table,
    ratio,
    run_feast,
    say,
    wait_until,
)

PGBENCH = shutil.which("pgbench") or "/usr/lib/postgresql/15/bin/pgbench"
WRK = shutil.which("wrk") or "/usr/bin/wrk"
FSQL = Path(sys.executable).parent / "fsql"
FEAST = BENCH / ".venv-feast" / "bin" / "feast"


# --- contenders' processes ----------------------------------------------------------------------


class Process:
    """A server subprocess, its output in a log file; stopped (SIGTERM, then SIGKILL) on exit."""

    def __init__(self, cmd: list[str], log: Path, cwd: Path | None = None,
                 env: dict[str, str] | None = None):
        self.cmd = cmd
        self.log = log
        self.cwd = cwd
        self.env = {**os.environ, **env} if env else None
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Process:
        if self.process is not None:  # already started (start_* functions start it)
            return self
        self.process = subprocess.Popen(
            self.cmd, stdout=self.log.open("wb"), stderr=subprocess.STDOUT, cwd=self.cwd,
            env=self.env, start_new_session=True,
        )  # fmt: skip
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def __exit__(self, *exc: object) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # the server and its worker processes
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=20)
        self.process = None


def start_fsql_server(repo: Path, workers: int, log: Path,
                      fast_lane: bool = True) -> tuple[Process, int]:
    port = free_port()
    proc = Process([str(FSQL), "--repo", str(repo), "serve", "--port", str(port),
                    "--workers", str(workers)], log,
                   env={"FSQL_SERVER_FAST_LANE": "1" if fast_lane else "0"})  # fmt: skip
    proc.__enter__()

    def ready() -> bool:
        if not proc.alive():
            raise RuntimeError(f"fsql serve exited:\n{proc.tail()}")
        return "fsql serving on" in proc.tail()

    try:
        wait_until(ready, 120, "fsql serve")
    except (TimeoutError, RuntimeError):
        proc.__exit__()
        raise
    return proc, port


def load_postgres(pg: PostgresProcess, table: Any) -> None:
    """``features."user"`` with a primary key, the same rows as fsql serves."""
    import psycopg

    names = feature_names()
    types = {"DOUBLE": "double precision", "BIGINT": "bigint", "VARCHAR": "text"}
    columns = ", ".join(f"{n} {types[t]}" for n, (_c, t, _f) in zip(names, FEATURES, strict=True))
    with psycopg.connect(pg.url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA features")
        conn.execute(f'CREATE TABLE features."user" (user_id bigint PRIMARY KEY, {columns})')
        rows = zip(
            table.column("user_id").to_pylist(),
            *(table.column(c).to_pylist() for c, _t, _f in FEATURES),
            strict=True,
        )
        with conn.cursor().copy(f'COPY features."user" (user_id, {", ".join(names)}) '
                                "FROM STDIN") as copy:  # fmt: skip
            for row in rows:
                copy.write_row(row)
        conn.execute('VACUUM ANALYZE features."user"')


def check_sql(url: str, table: Any, keys: Sequence[int], who: str) -> None:
    """The contender answers the benchmark's SELECT (simple and prepared) with the rows."""
    import psycopg

    names = feature_names()
    sql = f"SELECT {', '.join(names)} FROM features.user WHERE user_id = %s"
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        for prepare in (False, True):
            for k in keys:
                row = conn.execute(sql, (k,), prepare=prepare).fetchone()
                want = tuple(expected_row(table, k).values())
                assert row == want, f"{who} returned {row} for user {k}, expected {want}"


# --- load generators ----------------------------------------------------------------------------


def pgbench_script(path: Path, n_entities: int) -> Path:
    path.write_text(
        f"\\set id random(1, {n_entities})\n"
        f"SELECT {', '.join(feature_names())} FROM features.user WHERE user_id = :id;\n"
    )
    return path


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds (user + system) used so far by process ``root`` and its descendants,
    including children already reaped (their time is in the parent's cutime/cstime): the
    server side of a load run, whatever else the machine is doing."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        pid = int(entry.name)
        stats[pid] = fields
        children.setdefault(int(fields[1]), []).append(pid)
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        fields = stats.get(pid)
        if fields is None:
            continue
        total += sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
        todo.extend(children.get(pid, []))
    return total / tick


def run_pgbench(port: int, script: Path, mode: str, clients: int, duration: int,
                log_dir: Path | None = None,
                cpu_roots: dict[str, int] | None = None) -> dict[str, Any]:  # fmt: skip
    """One pgbench run; tps, average latency, failures, (with ``log_dir``) p50/p99 from the
    per-transaction log, and (with ``cpu_roots``) CPU microseconds per lookup spent by each
    named process tree (the server, redis-server)."""
    cmd = [PGBENCH, "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-n",
           "-f", str(script), "-M", mode, "-c", str(clients), "-j", str(min(clients, 2)),
           "-T", str(duration), "--random-seed", "1"]  # fmt: skip
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        cmd += ["--log", f"--log-prefix={log_dir}/tx"]
    load = load_average()
    env = {**os.environ, "PGCONNECT_TIMEOUT": "10", "PGDATABASE": "postgres"}
    cpu_before = {name: tree_cpu_seconds(pid) for name, pid in (cpu_roots or {}).items()}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 120,
                          env=env, check=False)  # fmt: skip
    time.sleep(0.5)  # let the server reap the backends that served the run's connections
    cpu = {
        name: tree_cpu_seconds(pid) - cpu_before[name] for name, pid in (cpu_roots or {}).items()
    }
    out = done.stdout + done.stderr
    result: dict[str, Any] = {"mode": mode, "clients": clients, "load": load,
                              "exit": done.returncode}  # fmt: skip
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out)
    latency = re.search(r"latency average = ([\d.]+) ms", out)
    processed = re.search(r"number of transactions actually processed: (\d+)", out)
    failed = re.search(r"number of failed transactions: (\d+)", out)
    result["tps"] = float(tps.group(1)) if tps else None
    result["latency_avg_ms"] = float(latency.group(1)) if latency else None
    result["transactions"] = int(processed.group(1)) if processed else 0
    result["failed"] = int(failed.group(1)) if failed else None
    if done.returncode != 0 or tps is None:
        result["error"] = out[-2000:]
    if result["transactions"]:
        # the whole run's transactions, connection setup included: -T counts only finished ones
        result["cpu_us_per_lookup"] = {
            name: round(seconds * 1e6 / result["transactions"], 1) for name, seconds in cpu.items()
        }
    if log_dir is not None:
        latencies = []
        for log in log_dir.glob("tx*"):
            for line in log.read_text().splitlines():
                parts = line.split()
                if len(parts) >= 3 and parts[2].isdigit():
                    latencies.append(int(parts[2]) * 1000)  # µs → ns
            log.unlink()
        if latencies:
            result.update(percentiles(latencies))
    return result


WRK_LUA = """
math.randomseed(1)
local features = '%(features)s'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  local id = math.random(1, %(n)d)
  local body = '{"features": [' .. features .. '], "entities": {"user_id": [' .. id .. ']}}'
  return wrk.format(nil, "/get-online-features", nil, body)
end
"""


def run_wrk(port: int, n_entities: int, connections: int, duration: int,
            work: Path) -> dict[str, Any]:  # fmt: skip
    refs = ", ".join(f'"user_profile:{n}"' for n, _t, _f in FEATURES)
    script = work / "feast.lua"
    script.write_text(WRK_LUA % {"features": refs, "n": n_entities})
    load = load_average()
    done = subprocess.run(
        [WRK, "-t", str(min(2, connections)), "-c", str(connections), "-d", f"{duration}s", "--latency",
         "--timeout", "5s", "-s", str(script), f"http://127.0.0.1:{port}"],
        capture_output=True, text=True, timeout=duration + 60, check=False,
    )  # fmt: skip
    out = done.stdout + done.stderr
    result: dict[str, Any] = {"connections": connections, "load": load}
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    result["rps"] = float(rps.group(1)) if rps else None
    for q in ("50", "99"):
        found = re.search(rf"^\s+{q}(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if found:
            value, unit = float(found.group(1)), found.group(2)
            result[f"p{q}_ms"] = value * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    result["non_2xx"] = int(non2xx.group(1)) if non2xx else 0
    result["socket_errors"] = errors.group(1) if errors else None
    if rps is None:
        result["error"] = out[-2000:]
    return result


def check_feast_http(port: int, table: Any, keys: Sequence[int]) -> None:
    import urllib.request

    refs = [f"user_profile:{n}" for n, _t, _f in FEATURES]
    for k in keys:
        body = json.dumps({"features": refs, "entities": {"user_id": [k]}}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/get-online-features",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.load(response)
        names = answer["metadata"]["feature_names"]
        got = {n: r["values"][0] for n, r in zip(names, answer["results"], strict=True)}
        want = expected_row(table, k)
        assert {n: got[n] for n in want} == want, f"feast serve: {got} for {k}, want {want}"


def start_feast_server(repo: Path, tuned: bool, log: Path) -> tuple[Process, int]:
    port = free_port()
    cmd = [str(FEAST), "-c", str(repo), "serve", "-h", "127.0.0.1", "-p", str(port)]
    if tuned:
        cmd += ["-w", "2", "--no-access-log", "--max-requests", "100000000"]
    proc = Process(cmd, log, cwd=repo)
    proc.__enter__()

    def ready() -> bool:
        if not proc.alive():
            raise RuntimeError(f"feast serve exited:\n{proc.tail()}")
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
            return bool(r.status == 200)

    try:
        wait_until(ready, 180, "feast serve")
    except (TimeoutError, RuntimeError):
        proc.__exit__()
        raise
    return proc, port


# --- the benchmark ------------------------------------------------------------------------------


def bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    n_entities = max(200, int(200_000 * args.scale))
    say(f"[server] generating {n_entities:,} users x 10 features (load {load_average()})")
    table = profile_table(n_entities)
    keys = [1, n_entities, *random.Random(3).sample(range(1, n_entities + 1), 5)]
    script = pgbench_script(work / "lookup.sql", n_entities)
    result: dict[str, Any] = {"entities": n_entities, "duration_s": args.duration,
                              "workers": args.workers, "runs": []}  # fmt: skip
    runs: list[dict[str, Any]] = result["runs"]

    def pgbench_all(who: str, port: int, cpu_roots: dict[str, int]) -> None:
        for mode in ("simple", "prepared"):
            run = run_pgbench(port, script, mode, 8, args.duration, cpu_roots=cpu_roots)
            runs.append({"who": who, **run})
            say(f"[server] {who} {mode} x8: {run.get('tps')} tps (load {run['load']})"
                + (f" ERROR {run['error'][-300:]}" if "error" in run else ""))  # fmt: skip
        for mode in ("simple", "prepared"):
            run = run_pgbench(port, script, mode, 1, args.duration, work / "pglog", cpu_roots)
            runs.append({"who": who, **run})
            say(f"[server] {who} {mode} x1: {run.get('tps')} tps p50 {run.get('p50_ms')} "
                f"p99 {run.get('p99_ms')}")  # fmt: skip

    with RedisProcess(work / "redis-fsql") as redis_fsql:
        repo = work / "fsql-repo"
        result["fsql_materialize_s"] = build_profile_repo(repo, redis_fsql.url, table)
        say(f"[server] fsql materialized in {result['fsql_materialize_s']:.1f} s")
        for workers, fast_lane in [(w, lane) for lane in args.fast_lane for w in args.workers]:
            label = f"fsql serve ({workers} worker{'s' if workers > 1 else ''})"
            if not fast_lane:
                label = f"fsql serve ({workers}w, no fast lane)"
            try:
                server, port = start_fsql_server(repo, workers, work / "fsql-serve.log",
                                                 fast_lane)
            except (TimeoutError, RuntimeError) as exc:
                result["fsql_error"] = str(exc)
                say(f"[server] fsql serve did not start: {exc}")
                continue
            with server:
                try:
                    check_sql(f"postgresql://postgres@127.0.0.1:{port}/postgres", table, keys,
                              "fsql serve")  # fmt: skip
                except Exception as exc:  # noqa: BLE001 - recorded in the report, run goes on
                    result["fsql_check_error"] = repr(exc)
                    say(f"[server] fsql serve answered wrongly: {exc!r}")
                assert server.process is not None and redis_fsql.process is not None
                pgbench_all(
                    label, port, {"server": server.process.pid, "redis": redis_fsql.process.pid}
                )

    with PostgresProcess() as pg:
        load_postgres(pg, table)
        check_sql(pg.url, table, keys, "PostgreSQL")
        pgbench_all("PostgreSQL 15", pg.port, {"server": pg.postmaster_pid()})

    missing = feast_available() if not args.no_feast else "--no-feast"
    if missing is not None:
        result["feast_missing"] = missing
        return result
    with RedisProcess(work / "redis-feast") as redis_feast:
        feast_repo = work / "feast-repo"
        parquet = str(repo / "data" / "profiles" / "part-0.parquet")
        spec = {"repo": str(feast_repo), "redis_port": redis_feast.port, "parquet": parquet,
                "view": "user_profile", "timestamp_field": "updated_at",
                "fields": [[n, f] for n, _t, f in FEATURES]}  # fmt: skip
        say(f"[server] Feast materialize (load {load_average()})")
        run_feast({**spec, "op": "setup", "start": (DAY0 - DAY).isoformat(),
                   "end": (DAY0 + 2 * DAY).isoformat()}, timeout=3600)  # fmt: skip
        for tuned in (False, True):
            label = "feast serve (tuned)" if tuned else "feast serve (defaults)"
            try:
                server, port = start_feast_server(feast_repo, tuned, work / "feast-serve.log")
            except (TimeoutError, RuntimeError) as exc:
                result.setdefault("feast_errors", []).append(f"{label}: {exc}")
                continue
            with server:
                check_feast_http(port, table, keys)
                for connections in (8, 1):
                    run = run_wrk(port, n_entities, connections, args.duration, work)
                    runs.append({"who": label, "mode": "http", "clients": connections, **run,
                                 "tps": run.get("rps")})  # fmt: skip
                    say(f"[server] {label} x{connections}: {run.get('rps')} rps "
                        f"p50 {run.get('p50_ms')} p99 {run.get('p99_ms')}")  # fmt: skip
    return result


def report(result: dict[str, Any]) -> str:
    runs = result["runs"]
    lines = [
        f"Point lookups, 1 user x 10 features per query, {result['entities']:,} users, "
        f"{result['duration_s']} s per run",
        f"{'contender':28} {'mode':9} {'conns':>5} {'lookups/s':>10} {'avg ms':>7} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'CPU us/lookup':>14} {'load':>16}",
    ]

    def cpu_cell(r: dict[str, Any]) -> str:
        cpu = r.get("cpu_us_per_lookup") or {}
        return "+".join(f"{v:.0f}" for v in cpu.values()) or "-"

    for r in runs:

        def cell(key: str, fmt: str, r: dict[str, Any] = r) -> str:
            value = r.get(key)
            return format(value, fmt) if isinstance(value, int | float) else "-"

        lines.append(
            f"{r['who']:28} {r['mode']:9} {r['clients']:>5} {cell('tps', '10.0f')} "
            f"{cell('latency_avg_ms', '7.3f')} {cell('p50_ms', '7.3f')} {cell('p99_ms', '7.3f')}"
            f" {cpu_cell(r):>14} {r['load']:>16}"
            + (f"  FAILED: {r['error'][-200:]!r}" if "error" in r else "")
        )

    def best(prefix: str, mode: str, clients: int) -> float | None:
        found = [
            r.get("tps")
            for r in runs
            if r["who"].startswith(prefix)
            and "no fast lane" not in r["who"]
            and r["mode"] == mode
            and r["clients"] == clients
            and r.get("tps")
        ]
        return max(found) if found else None  # fmt: skip

    for mode in ("simple", "prepared"):
        fsql, pg = best("fsql", mode, 8), best("PostgreSQL", mode, 8)
        feast = best("feast serve (defaults)", "http", 8)
        if fsql:
            lines.append(
                f"fsql {mode} x8: {fsql:,.0f}/s = {ratio(fsql, pg or 0)} of PostgreSQL, "
                f"{ratio(fsql, feast or 0)} Feast HTTP (defaults)"
            )
    lines.append("(CPU us/lookup: server process tree [+ redis-server], from /proc, whole run)")
    for key in ("fsql_error", "fsql_check_error", "feast_missing", "feast_errors"):
        if key in result:
            lines.append(f"{key}: {result[key]}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scale", type=float, default=1.0,
        help="fraction of the issue's 200,000 users (0.01 for a smoke run)",
    )  # fmt: skip
    parser.add_argument("--duration", type=int, default=20, help="seconds per load run")
    parser.add_argument(
        "--workers", type=lambda text: [int(n) for n in text.split(",")], default=[1],
        help="fsql serve worker processes; a list (1,2) runs the fsql contender once per count",
    )
    parser.add_argument(
        "--fast-lane", type=lambda text: [part == "on" for part in text.split(",")],
        default=[True],
        help="run the fsql contender with the fast lane on (default), off, or both (on,off)",
    )
    parser.add_argument("--no-feast", action="store_true", help="skip the Feast contender")
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    args = parser.parse_args(argv)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="fsql-bench-server-") as tmp:
        result = bench(args, Path(tmp))
    result["command"] = " ".join(sys.argv)
    result["seconds"] = time.time() - started
    print(report(result), flush=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))
    return result


if __name__ == "__main__":
    main()
