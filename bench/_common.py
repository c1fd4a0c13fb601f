"""Shared pieces of the serving benchmarks (bench/online.py, bench/server.py).

Everything a benchmark talks to is started here by the script itself, on loopback, on a free
port, in a temporary directory, and stopped when the script ends: ``redis-server``
(:class:`RedisProcess`), PostgreSQL 15 via initdb/pg_ctl (:class:`PostgresProcess`). The data
is generated from a seed (:func:`profile_table`, :func:`event_table`), so every contender reads
the same values and every run the same values.

The Feast side runs in ``bench/.venv-feast`` (made by ``bench/setup.sh``) as a subprocess
driving ``bench/_feast_serving.py``; :func:`run_feast` calls it with a JSON request and reads
a JSON answer.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
FEAST_PYTHON = BENCH / ".venv-feast" / "bin" / "python"
FEAST_WORKER = BENCH / "_feast_serving.py"
PG_BIN = Path(os.environ.get("FSQL_BENCH_PG_BIN", "/usr/lib/postgresql/15/bin"))
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"

#: the first day of the generated data (fixed, so runs are reproducible; no TTLs are used, so
#: "now" never turns a value into NULL)
DAY0 = datetime(2026, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)

#: the ten features of the serving benchmarks: name, fsql type, Feast type
FEATURES: list[tuple[str, str, str]] = [
    *((f"f{i}", "DOUBLE", "Float64") for i in range(6)),
    ("f6", "BIGINT", "Int64"),
    ("f7", "BIGINT", "Int64"),
    ("f8", "VARCHAR", "String"),
    ("f9", "VARCHAR", "String"),
]
COUNTRIES = ["DE", "FR", "US", "GB", "JP", "BR", "IN", "ES", "IT", "NL"]
PLANS = ["free", "basic", "pro", "team", "enterprise"]


# --- small helpers --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``check`` until it returns True; any exception counts as "not yet"."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:  # noqa: BLE001 - polling: any failure means "not ready yet"
            last = exc
        time.sleep(0.05)
    raise TimeoutError(f"{what} did not become ready in {timeout}s (last error: {last})")


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def percentiles(samples_ns: Sequence[int]) -> dict[str, float]:
    """p50 / p99 / mean of latencies given in nanoseconds, in milliseconds."""
    ordered = sorted(samples_ns)
    n = len(ordered)

    def at(q: float) -> float:
        return ordered[min(n - 1, int(q * n))] / 1e6

    return {"p50_ms": at(0.50), "p99_ms": at(0.99), "mean_ms": statistics.fmean(ordered) / 1e6,
            "n": n}  # fmt: skip


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


# --- services ---------------------------------------------------------------------------------


class RedisProcess:
    """A throwaway ``redis-server`` on a free loopback port (no persistence)."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> RedisProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir), "--daemonize", "no"],
            stdout=(self.workdir / "redis.log").open("ab"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_until(self._ping, 20, f"redis-server on port {self.port}")
        return self

    def _ping(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")

    def command(self, *args: str) -> bytes:
        """One inline command (``INFO memory``, ``DBSIZE``...), its raw reply."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall((" ".join(args) + "\r\n").encode())
            time.sleep(0.05)
            return sock.recv(1 << 16)

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=20)
            self.process = None


def _as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its binaries as the ``postgres`` OS user."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


class PostgresProcess:
    """A throwaway PostgreSQL 15 cluster (initdb + pg_ctl) on a free loopback port."""

    def __init__(self) -> None:
        # Not under a 0700 root directory: the postgres user must reach the data directory.
        self.root = Path(tempfile.mkdtemp(prefix="fsql-bench-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self.data = self.root / "data"
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, cmd: list[str]) -> None:
        result = subprocess.run(_as_postgres(cmd), cwd=self.root, capture_output=True,
                                text=True, check=False, timeout=180)  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed ({result.returncode}): {result.stderr}")

    def __enter__(self) -> PostgresProcess:
        self._run([str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
                   "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"])  # fmt: skip
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c synchronous_commit=off -c max_connections=50")  # fmt: skip
        self._run(
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.root / "server.log"),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ]
        )
        return self

    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def __exit__(self, *exc: object) -> None:
        subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast",
                                     "-w", "stop"]), cwd=self.root, capture_output=True,
                       check=False, timeout=120)  # fmt: skip
        shutil.rmtree(self.root, ignore_errors=True)


# --- data -------------------------------------------------------------------------------------


def profile_table(n_entities: int, seed: int = 42) -> Any:
    """One row per user (``user_id`` 1..n): ten feature columns of mixed types, all updated
    during ``DAY0`` (so the value at every tick from ``DAY0 + 1 day`` on is this row)."""
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    ids = np.arange(1, n_entities + 1, dtype=np.int64)
    columns: dict[str, Any] = {"user_id": ids}
    for name, sql_type, _feast in FEATURES:
        if sql_type == "DOUBLE":
            columns[name] = np.round(rng.gamma(2.0, 50.0, n_entities), 4)
        elif sql_type == "BIGINT":
            columns[name] = rng.integers(0, 10_000, n_entities, dtype=np.int64)
        else:
            choices = COUNTRIES if name == "f8" else PLANS
            columns[name] = pa.array(np.asarray(choices)[rng.integers(0, len(choices), n_entities)])
    base = int(DAY0.timestamp()) * 1_000_000
    micros = base + rng.integers(0, 86_400_000_000, n_entities, dtype=np.int64)
    columns["updated_at"] = pa.array(micros, pa.timestamp("us"))
    columns["created_at"] = pa.array(micros + 1_000_000, pa.timestamp("us"))
    return pa.table(columns)


def event_table(n_entities: int, events_per_entity: int, seed: int = 7) -> Any:
    """``n_entities × events_per_entity`` events: entity ``u`` has one event on each of days
    0..events_per_entity-1 (so every entity's timeline is dense from ``DAY0 + 1 day``), with
    an ``amount`` (DOUBLE) and an ``item_id`` (BIGINT)."""
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    n = n_entities * events_per_entity
    day = np.tile(np.arange(events_per_entity, dtype=np.int64), n_entities)
    ids = np.repeat(np.arange(1, n_entities + 1, dtype=np.int64), events_per_entity)
    base = int(DAY0.timestamp()) * 1_000_000
    micros = base + day * 86_400_000_000 + rng.integers(0, 86_400_000_000, n, dtype=np.int64)
    return pa.table({
        "user_id": ids,
        "amount": np.round(rng.gamma(2.0, 30.0, n), 2),
        "item_id": rng.integers(1, 50_000, n, dtype=np.int64),
        "ts": pa.array(micros, pa.timestamp("us")),
        "created_at": pa.array(micros + 1_000_000, pa.timestamp("us")),
    })  # fmt: skip


def expected_row(table: Any, user_id: int) -> dict[str, Any]:
    """The generated values of one user (``user_id`` = row number + 1): the reference every
    contender's answer is compared with."""
    row = user_id - 1
    return {name: table.column(name)[row].as_py() for name, _t, _f in FEATURES}


# --- an fsql repo serving the profile features from Redis --------------------------------------


PROFILE_SQL = """
CREATE ENTITY user KEY (user_id BIGINT) DESCRIPTION 'A customer';
CREATE SOURCE profiles (user_id BIGINT, {columns}, updated_at TIMESTAMP, created_at TIMESTAMP)
  FROM 'data/profiles' FORMAT PARQUET EVENT TIME updated_at CREATED TIME created_at;
{features}
"""


def write_fsql_repo(repo: Path, redis_url: str, sql: str, tables: dict[str, Any]) -> None:
    """A feature repo in ``repo``: ``fsql.toml`` (SQLite registry, local offline store, Redis
    online store), the sources as Parquet under ``data/<name>/`` and ``sql`` in defs.sql."""
    import pyarrow.parquet as pq

    repo.mkdir(parents=True, exist_ok=True)
    (repo / "fsql.toml").write_text(
        f'[online_store]\nurl = "{redis_url}"\ntimeout = 10.0\nbatch_size = 10000\n'
        "[compute]\nthreads = 2\n"
    )
    for name, table in tables.items():
        directory = repo / "data" / name
        directory.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, directory / "part-0.parquet", row_group_size=1_000_000)
    (repo / "defs.sql").write_text(sql)


def profile_sql() -> str:
    columns = ", ".join(f"{name} {sql_type}" for name, sql_type, _f in FEATURES)
    features = "\n".join(
        f"CREATE FEATURE user_{name} ENTITY user TYPE {sql_type} "
        f"AS SELECT user_id, {name} FROM profiles;"
        for name, sql_type, _f in FEATURES
    )
    return PROFILE_SQL.format(columns=columns, features=features)


def feature_names() -> list[str]:
    return [f"user_{name}" for name, _t, _f in FEATURES]


def build_profile_repo(repo: Path, redis_url: str, table: Any) -> float:
    """Register the ten profile features and materialize them (offline + Redis push) at the
    tick ``DAY0 + 1 day``. Returns the seconds the materialize call took."""
    from fsql.api.sync import SyncFeatureStore

    write_fsql_repo(repo, redis_url, profile_sql(), {"profiles": table})
    with SyncFeatureStore(repo) as store:
        store.register(profile_sql())
        started = time.perf_counter()
        store.materialize(DAY0 + DAY, DAY0 + 2 * DAY)
        return time.perf_counter() - started


# --- Feast in its own venv ---------------------------------------------------------------------


def feast_available() -> str | None:
    """None when bench/.venv-feast can run Feast with Redis, else why not."""
    if not FEAST_PYTHON.exists():
        return "bench/.venv-feast is missing: run bench/setup.sh"
    check = subprocess.run([str(FEAST_PYTHON), "-c", "import feast, redis"],
                           capture_output=True, text=True, check=False)  # fmt: skip
    if check.returncode != 0:
        return f"Feast with Redis is not installed in bench/.venv-feast: {check.stderr[-300:]}"
    return None


def run_feast(request: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run one request in the Feast venv (``bench/_feast_serving.py``); its JSON answer."""
    result = subprocess.run(
        [str(FEAST_PYTHON), str(FEAST_WORKER), "--request-on-stdin"], input=json.dumps(request), capture_output=True,
        text=True, timeout=timeout, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"Feast worker failed ({result.returncode}):\n{result.stderr[-3000:]}")
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"Feast worker printed no answer:\n{result.stderr[-3000:]}")
    return json.loads(lines[-1])  # type: ignore[no-any-return]
