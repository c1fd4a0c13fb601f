"""A small feature repo for pipeline tests, and an independent reference for its values.

Three users, purchases over a few days (one exactly on a tick boundary), two windowed
aggregates and one derived feature, as ``CREATE`` statements applied to a fresh SQLite registry.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from fsql.config import Config, config_from_mapping
from fsql.language.analysis import analyze
from fsql.language.parser import parse
from fsql.registry import open_registry

DEFINITIONS = """
CREATE ENTITY user KEY (user_id VARCHAR);
CREATE SOURCE purchases (user_id VARCHAR, amount DOUBLE, ts TIMESTAMP)
  FROM 'data/purchases' FORMAT PARQUET EVENT TIME ts;
CREATE FEATURE spend_2d ENTITY user WINDOW '2 days' EVERY '1 day'
  DESCRIPTION 'Money spent in the last 2 days'
AS SELECT user_id, SUM(amount) FROM purchases;
CREATE FEATURE orders_2d ENTITY user WINDOW '2 days'
  DESCRIPTION 'Orders placed in the last 2 days'
AS SELECT user_id, COUNT(*) FROM purchases;
CREATE FEATURE avg_order_2d ENTITY user
  DESCRIPTION 'Average order value over 2 days'
AS SELECT user_id, spend_2d / NULLIF(orders_2d, 0) FROM user;
CREATE FEATURE SET model_v1 (avg_order_2d);
"""

D = datetime(2024, 1, 1, tzinfo=UTC)

#: (user, amount, event time); u1's 2024-01-04T00:00 purchase sits exactly on a tick
PURCHASES: list[tuple[str, float | None, datetime]] = [
    ("u1", 10.0, D + timedelta(days=1, hours=9)),
    ("u1", 5.0, D + timedelta(days=2, hours=23, minutes=59)),
    ("u1", 7.0, D + timedelta(days=3)),
    ("u2", 3.0, D + timedelta(days=2, hours=12)),
    ("u2", None, D + timedelta(days=3, hours=1)),
    ("u3", 100.0, D + timedelta(days=4, hours=6)),
    ("u1", 1.0, D + timedelta(days=5, hours=2)),
]


def purchases_table(rows: list[tuple[str, float | None, datetime]] = PURCHASES) -> pa.Table:
    return pa.table({
        "user_id": pa.array([r[0] for r in rows], pa.string()),
        "amount": pa.array([r[1] for r in rows], pa.float64()),
        "ts": pa.array([r[2].replace(tzinfo=None) for r in rows], pa.timestamp("us")),
    })  # fmt: skip


def write_purchases(repo: Path, rows: list[tuple[str, float | None, datetime]] = PURCHASES) -> None:
    folder = repo / "data" / "purchases"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(purchases_table(rows), folder / "part-0.parquet")


def make_repo(root: Path, definitions: str = DEFINITIONS) -> Config:
    """Write the repo (definitions, fsql.toml, data) under ``root`` and apply it."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "features.sql").write_text(definitions)
    (root / "fsql.toml").write_text('[online_store]\nurl = "sqlite:///.fsql/online.db"\n')
    write_purchases(root)
    config = config_from_mapping({}, root, "test")
    apply(config, definitions)
    return config


def apply(config: Config, definitions: str) -> None:
    registry = open_registry(config)
    try:
        analysis = analyze(parse(definitions))
        registry.apply(registry.plan(analysis), analysis)
    finally:
        registry.close()


# -- an independent reference: the semantics of docs/semantics.md, in plain Python ----------


def seen_before(user: str, tick: datetime) -> bool:
    return any(u == user and ts < tick for u, _, ts in PURCHASES)


def reference(feature: str, user: str, tick: datetime) -> Any:
    """The value of ``feature`` for ``user`` at ``tick`` (2-day windows [tick - 2d, tick))."""
    if not seen_before(user, tick):
        return None
    window = [a for u, a, ts in PURCHASES if u == user and tick - timedelta(days=2) <= ts < tick]
    if feature == "spend_2d":
        present = [a for a in window if a is not None]
        return sum(present) if present else None
    if feature == "orders_2d":
        return len(window)
    if feature == "avg_order_2d":
        spend, orders = reference("spend_2d", user, tick), reference("orders_2d", user, tick)
        return None if spend is None or not orders else spend / orders
    raise KeyError(feature)
