"""Memory of a full scan of ``features.<entity>`` (issue 14): the server's resident set while
``SELECT count(*) FROM features.user`` reads every key of a SQLite online store.

    .venv/bin/python bench/scan_memory.py                 # 300,000 users x 10 features
    .venv/bin/python bench/scan_memory.py --users 20000   # smoke run

The repo is the server benchmark's profile repo (bench/_common.py) with the default SQLite
online store, materialized by fsql itself. ``fsql serve --workers 1`` answers the scan; the
script samples the resident set (VmRSS) of the server's processes every 20 ms during the
statement and reads their peak (VmHWM) before and after it. A scan that streams holds one
batch of keys and values (server/features/scan.py, SCAN_BATCH) at a time, so the peak grows
by a bounded amount, not with the number of users. Also runs a scan with a key filter
(``user_id IN (...)``, read through the lookup path) for the count it gives.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path
from tempfile import TemporaryDirectory

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import DAY, DAY0, profile_sql, profile_table, say  # noqa: E402
from bench.server import start_fsql_server  # noqa: E402


def tree_pids(root: int) -> list[int]:
    """``root`` and its descendants (the server and its worker processes)."""
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue
        todo.extend(int(c) for c in children)
    return pids


def status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=300_000)
    args = parser.parse_args()
    import psycopg

    from fsql.api.sync import SyncFeatureStore

    with TemporaryDirectory(prefix="fsql-scan-memory-") as tmp:
        repo = Path(tmp) / "repo"
        (repo / "data" / "profiles").mkdir(parents=True)
        import pyarrow.parquet as pq

        pq.write_table(profile_table(args.users), repo / "data/profiles/part-0.parquet")
        (repo / "fsql.toml").write_text("[compute]\nthreads = 2\n")  # SQLite online store
        say(f"materializing {args.users:,} users x 10 features into the SQLite online store")
        with SyncFeatureStore(repo) as store:
            store.register(profile_sql())
            store.materialize(DAY0 + DAY, DAY0 + 2 * DAY)
        server, port = start_fsql_server(repo, 1, Path(tmp) / "server.log")
        with server:
            assert server.process is not None
            url = f"postgresql://bench@127.0.0.1:{port}/fsql"
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("SELECT * FROM features.user WHERE user_id = 1").fetchall()
                conn.execute("SELECT count(*) FROM features.user WHERE user_id < 0").fetchall()
                pids = tree_pids(server.process.pid)
                before = {pid: status_kb(pid, "VmHWM") for pid in pids}
                rss_before = sum(status_kb(pid, "VmRSS") for pid in pids)
                samples: list[int] = []
                done = threading.Event()

                def sample() -> None:
                    while not done.is_set():
                        samples.append(sum(status_kb(pid, "VmRSS") for pid in pids))
                        time.sleep(0.02)

                sampler = threading.Thread(target=sample)
                sampler.start()
                started = time.perf_counter()
                count = conn.execute("SELECT count(*) FROM features.user").fetchone()[0]
                seconds = time.perf_counter() - started
                done.set()
                sampler.join()
                after = {pid: status_kb(pid, "VmHWM") for pid in pids}
                wanted = ", ".join(str(i) for i in range(1, 2001, 2)) + ", -5"
                filtered = conn.execute(f"SELECT count(*) FROM features.user WHERE user_id IN "
                                        f"({wanted})").fetchone()[0]
        assert count == args.users, (count, args.users)
        say(f"rows counted: {count:,} in {seconds:.1f} s; key-filtered count: {filtered:,}")
        say(f"server RSS before the scan: {rss_before / 1024:.0f} MiB; during it: "
            f"max {max(samples or [0]) / 1024:.0f} MiB over {len(samples)} samples")
        say("peak RSS (VmHWM) per server process before -> after: " + ", ".join(
            f"{before[p] / 1024:.0f} -> {after[p] / 1024:.0f} MiB" for p in pids))


if __name__ == "__main__":
    main()
