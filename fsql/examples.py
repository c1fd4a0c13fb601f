"""Deterministic example data for the ``sql_features/`` repo and for ``fsql init``.

Three sources of an online shop over 90 days, UTC timestamps in [end − 90 days, end). The
reference window is 2024-01-01 to 2024-03-31 (``END``, what tests and golden files use);
``end=`` moves the same rows to another window, whole days later, so ``fsql init``, ``make
demo`` and ``sql_features/generate.py`` write data ending today (:func:`today_end`) and their
online values are fresh, not past their TTL. The rows depend only on the seed and the row
count; the day only shifts their times, so the data is the same all day and every day relative
to today (the demo's values do not change from one day to the next):

- ``users`` (CSV, to exercise ``FORMAT CSV``): one row per profile change — signup, later plan
  upgrades and country moves — so latest-value features have history to choose from.
- ``purchases`` (Parquet): ``amount`` is NULL for about 3% of rows (failed payments), and about
  5% of rows repeat an earlier purchase's event time for the same user with a later
  ``loaded_at`` (late corrections), which exercises the CREATED TIME tie-break.
- ``clicks`` (Parquet): page views grouped in sessions.

The same seed and row count always give the same rows (``random.Random``, no global state), so
tests and docs can rely on the data. Each source is a folder of ``part-NNNNN`` files, which is
what ``FROM 'data/purchases'`` in the example definitions points at.

``generate_example_data(Path("data"), rows=500)`` writes 500 purchases (plus users and clicks)
and returns ``{"users": ..., "purchases": 500, "clicks": 1000}``.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

#: Default number of purchase rows: a few thousand rows in all, generated in about a second.
DEFAULT_ROWS = 3_000
DEFAULT_SEED = 42
START = datetime(2024, 1, 1)
END = datetime(2024, 3, 31)  # exclusive upper bound of every generated event time
#: rows per output file; large data sets are written in several parts
PART_ROWS = 1_000_000

COUNTRIES = ("US", "DE", "FR", "GB", "BR", "IN", "JP", "NG")
COUNTRY_WEIGHTS = (30, 12, 9, 10, 10, 15, 8, 6)
PLANS = ("free", "plus", "pro")
PAGES = ("home", "search", "item", "cart", "checkout", "help")
PAGE_WEIGHTS = (20, 25, 35, 10, 7, 3)

#: Column names and Arrow types per source; kept in step with sql_features/sources/*.sql.
SCHEMAS: dict[str, list[tuple[str, str]]] = {
    "users": [
        ("user_id", "string"),
        ("country", "string"),
        ("plan", "string"),
        ("signup_at", "timestamp"),
        ("updated_at", "timestamp"),
    ],
    "purchases": [
        ("purchase_id", "int64"),
        ("user_id", "string"),
        ("item_id", "int64"),
        ("amount", "float64"),
        ("ts", "timestamp"),
        ("loaded_at", "timestamp"),
    ],
    "clicks": [
        ("user_id", "string"),
        ("item_id", "int64"),
        ("session_id", "string"),
        ("page", "string"),
        ("ts", "timestamp"),
    ],
}


def today_end(now: datetime | None = None) -> datetime:
    """The end of a data window ending today: today's midnight UTC (naive, like the data)."""
    now = now or datetime.now(UTC)
    return datetime(now.year, now.month, now.day)


def _shifted(rows: Iterator[dict[str, Any]], delta: timedelta) -> Iterator[dict[str, Any]]:
    """``rows`` with every timestamp moved by ``delta`` (whole days: ticks stay aligned)."""
    if not delta:
        yield from rows
        return
    for row in rows:
        yield {k: (v + delta if isinstance(v, datetime) else v) for k, v in row.items()}


def _span_seconds() -> int:
    return int((END - START).total_seconds())


def _random_time(rng: random.Random, after: datetime = START) -> datetime:
    """A whole-second time in [after, END), uniform."""
    lo = int((after - START).total_seconds())
    hi = _span_seconds() - 1
    return START + timedelta(seconds=rng.randint(min(lo, hi), hi))


def _sizes(rows: int) -> tuple[int, int, int]:
    """(users, items, clicks) for ``rows`` purchases: ~15 purchases and ~2 clicks per purchase
    per user keep windows populated at every scale."""
    users = max(20, rows // 15)
    items = max(10, rows // 20)
    clicks = rows * 2
    return users, items, clicks


def user_ids(count: int) -> list[str]:
    return [f"u{n:05d}" for n in range(1, count + 1)]


def generate_users(rng: random.Random, n_users: int) -> list[dict[str, Any]]:
    """Signup rows plus later changes of plan or country (sorted by update time per user)."""
    rows: list[dict[str, Any]] = []
    for user_id in user_ids(n_users):
        signup = _random_time(rng)
        # a third of users signed up before the data window: their signup lies in 2023
        if rng.random() < 0.33:
            signup = signup - timedelta(days=365)
        country = rng.choices(COUNTRIES, COUNTRY_WEIGHTS)[0]
        plan = "free"
        updated = signup
        rows.append(dict(user_id=user_id, country=country, plan=plan, signup_at=signup,
                         updated_at=updated))
        for _ in range(rng.choice((0, 0, 1, 1, 2, 3))):
            updated = _random_time(rng, max(updated, START) + timedelta(seconds=1))
            if rng.random() < 0.6:
                plan = rng.choice([p for p in PLANS if p != plan])
            else:
                country = rng.choices(COUNTRIES, COUNTRY_WEIGHTS)[0]
            rows.append(dict(user_id=user_id, country=country, plan=plan, signup_at=signup,
                             updated_at=updated))
    rows.sort(key=lambda r: (r["updated_at"], r["user_id"]))
    return rows


def generate_purchases(
    rng: random.Random, rows: int, n_users: int, n_items: int
) -> Iterator[dict[str, Any]]:
    """``rows`` purchases; heavy users buy more (a skewed, Zipf-like pick)."""
    users = user_ids(n_users)
    # cumulative weights once: rng.choices with plain weights re-sums them on every call
    cum_weights = list(accumulate(1.0 / (rank**0.8) for rank in range(1, n_users + 1)))
    recent: list[tuple[str, datetime]] = []
    for purchase_id in range(1, rows + 1):
        if recent and rng.random() < 0.05:
            # a correction of an earlier purchase: same user, same event time, loaded later
            user_id, ts = recent[rng.randrange(len(recent))]
        else:
            user_id = rng.choices(users, cum_weights=cum_weights)[0]
            ts = _random_time(rng)
            recent.append((user_id, ts))
            if len(recent) > 1000:
                recent.pop(0)
        amount: float | None = round(rng.lognormvariate(3.2, 0.9), 2)
        if rng.random() < 0.03:
            amount = None
        loaded_at = ts + timedelta(minutes=rng.randint(1, 180))
        if loaded_at >= END:
            loaded_at = END - timedelta(seconds=1)
        yield dict(purchase_id=purchase_id, user_id=user_id, item_id=rng.randint(1, n_items),
                   amount=amount, ts=ts, loaded_at=loaded_at)


def generate_clicks(
    rng: random.Random, rows: int, n_users: int, n_items: int
) -> Iterator[dict[str, Any]]:
    """About ``rows`` page views in sessions of 1-12 clicks a few seconds to minutes apart."""
    users = user_ids(n_users)
    emitted = 0
    session = 0
    while emitted < rows:
        session += 1
        user_id = rng.choice(users)
        ts = _random_time(rng)
        for _ in range(min(rng.randint(1, 12), rows - emitted)):
            page = rng.choices(PAGES, PAGE_WEIGHTS)[0]
            item_id = rng.randint(1, n_items) if page in ("item", "cart") else None
            yield dict(user_id=user_id, item_id=item_id, session_id=f"s{session:07d}",
                       page=page, ts=ts)
            emitted += 1
            ts = ts + timedelta(seconds=rng.randint(2, 240))
            if ts >= END:
                break


def _arrow_schema(source: str) -> Any:

    types = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64(),
             "timestamp": pa.timestamp("us")}
    return pa.schema([(name, types[kind]) for name, kind in SCHEMAS[source]])


def _write_parquet(rows: Iterator[dict[str, Any]], folder: Path, source: str) -> int:
    """Write rows as ``part-00000.parquet``, ``part-00001.parquet``, ... of PART_ROWS each."""

    schema = _arrow_schema(source)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("part-*"):
        old.unlink()
    total = part = 0
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        nonlocal part
        columns = {name: [r[name] for r in batch] for name in schema.names}
        table = pa.table(columns, schema=schema)
        pq.write_table(table, folder / f"part-{part:05d}.parquet")
        part += 1
        batch.clear()

    for row in rows:
        batch.append(row)
        total += 1
        if len(batch) >= PART_ROWS:
            flush()
    if batch or part == 0:
        flush()
    return total


def _write_csv(rows: list[dict[str, Any]], folder: Path, source: str) -> int:
    """Write a CSV with a header; timestamps as ``YYYY-MM-DD HH:MM:SS`` (UTC, no offset)."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("part-*"):
        old.unlink()
    names = [name for name, _ in SCHEMAS[source]]
    with (folder / "part-00000.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(names)
        for row in rows:
            writer.writerow(
                [v.strftime("%Y-%m-%d %H:%M:%S") if isinstance(v, datetime) else
                 ("" if v is None else v) for v in (row[n] for n in names)]
            )
    return len(rows)


def generate_example_data(
    data_dir: Path | str,
    rows: int = DEFAULT_ROWS,
    seed: int = DEFAULT_SEED,
    progress: Callable[[str, int], None] | None = None,
    end: datetime | None = None,
) -> dict[str, int]:
    """Write ``users/`` (CSV), ``purchases/`` and ``clicks/`` (Parquet) under ``data_dir``.

    ``rows`` is the number of purchases; users, items and clicks scale with it. Returns the row
    count per source. ``progress(source, rows_written)`` is called after each source. ``end``
    (a midnight, naive UTC; default ``END``, 2024-03-31) is the exclusive end of the data
    window: the same rows, moved so that they end there (:func:`today_end` for data ending
    today).
    """
    target = END if end is None else end.replace(tzinfo=None)
    delta = timedelta(days=(target.date() - END.date()).days)
    if rows < 1:
        raise ValueError(f"rows must be at least 1, not {rows}")
    data = Path(data_dir)
    n_users, n_items, n_clicks = _sizes(rows)
    counts: dict[str, int] = {}
    # one independent stream per source, so changing one source's logic leaves the others alone
    counts["users"] = _write_csv(
        list(_shifted(iter(generate_users(random.Random(f"{seed}/users"), n_users)), delta)),
        data / "users", "users",
    )  # fmt: skip
    if progress:
        progress("users", counts["users"])
    counts["purchases"] = _write_parquet(
        _shifted(generate_purchases(random.Random(f"{seed}/purchases"), rows, n_users, n_items),
                 delta),
        data / "purchases",
        "purchases",
    )
    if progress:
        progress("purchases", counts["purchases"])
    counts["clicks"] = _write_parquet(
        _shifted(generate_clicks(random.Random(f"{seed}/clicks"), n_clicks, n_users, n_items),
                 delta),
        data / "clicks",
        "clicks",
    )
    if progress:
        progress("clicks", counts["clicks"])
    return counts


def utc_range() -> tuple[datetime, datetime]:
    """The generated event-time range as aware UTC datetimes: [START, END)."""
    return START.replace(tzinfo=UTC), END.replace(tzinfo=UTC)
