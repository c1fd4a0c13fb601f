"""A tiny shop for the API tests: orders and profiles around *today*, so that values served
"now" are not NULL by TTL, plus a plain-Python reference of the expected feature values."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

DAY = timedelta(days=1)

SHOP_SQL = """
CREATE ENTITY user KEY (user_id VARCHAR) DESCRIPTION 'A customer';
CREATE SOURCE orders (user_id VARCHAR, purchase_amount DOUBLE, ts TIMESTAMP)
  FROM '{orders}' FORMAT PARQUET EVENT TIME ts;
CREATE SOURCE profiles (user_id VARCHAR, country VARCHAR, updated_at TIMESTAMP)
  FROM '{profiles}' FORMAT PARQUET EVENT TIME updated_at;
"""


def today() -> datetime:
    now = datetime.now(UTC)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass
class Shop:
    orders: list[tuple[str, float | None, datetime]]
    profiles: list[tuple[str, str, datetime]]
    users: list[str]

    def sql(self, orders_uri: str, profiles_uri: str) -> str:
        return SHOP_SQL.format(orders=orders_uri, profiles=profiles_uri)

    def purchase_sum(self, user: str, tick: datetime, window: timedelta) -> float | None:
        """SUM(purchase_amount) over [tick − window, tick): NULL for an emptied window or
        when every amount is NULL; NULL (no row) for a user with no order before the tick."""
        seen = [o for o in self.orders if o[0] == user and o[2] < tick]
        amounts = [o[1] for o in seen if tick - window <= o[2] and o[1] is not None]
        return sum(amounts) if amounts else None

    def order_count(self, user: str, tick: datetime) -> int | None:
        seen = [o for o in self.orders if o[0] == user and o[2] < tick]
        return len(seen) if seen else None

    def country(self, user: str, tick: datetime) -> str | None:
        rows = [p for p in self.profiles if p[0] == user and p[2] < tick]
        return max(rows, key=lambda p: p[2])[1] if rows else None


def make_shop(seed: int = 7, n_users: int = 12, days: int = 40) -> Shop:
    rng = random.Random(seed)
    t0 = today()
    users = [f"u{i:03d}" for i in range(n_users)]
    orders: list[tuple[str, float | None, datetime]] = []
    profiles: list[tuple[str, str, datetime]] = []
    for i, user in enumerate(users[:-2]):  # the last two users never order
        for _ in range(rng.randint(1, 8)):
            moment = t0 - timedelta(seconds=rng.randint(1, days * 86400))
            if rng.random() < 0.15:
                moment = t0 - rng.randint(1, days) * DAY  # exactly on a tick
            amount = None if rng.random() < 0.1 else round(rng.uniform(1, 300), 2)
            orders.append((user, amount, moment))
        if i % 3:
            profiles.append((user, rng.choice(["DE", "FR", "US"]), t0 - rng.randint(1, 20) * DAY))
    # one user whose only orders left the 30-day window: a tombstone (SUM over nothing = NULL)
    orders.append((users[-2], 50.0, t0 - 35 * DAY))
    return Shop(orders, profiles, users)


def write_shop(shop: Shop, root: Path, filesystem: Any = None) -> tuple[str, str]:
    """Write the sources as Parquet under ``root`` (a local dir, or ``bucket/prefix`` with a
    pyarrow ``filesystem``); returns their two paths."""
    orders = pa.table(
        {
            "user_id": [o[0] for o in shop.orders],
            "purchase_amount": pa.array([o[1] for o in shop.orders], pa.float64()),
            "ts": pa.array([o[2].replace(tzinfo=None) for o in shop.orders], pa.timestamp("us")),
        }
    )
    profiles = pa.table(
        {
            "user_id": pa.array([p[0] for p in shop.profiles], pa.string()),
            "country": pa.array([p[1] for p in shop.profiles], pa.string()),
            "updated_at": pa.array(
                [p[2].replace(tzinfo=None) for p in shop.profiles], pa.timestamp("us")
            ),
        }
    )
    paths = []
    for name, table in (("orders", orders), ("profiles", profiles)):
        directory = f"{root}/data/{name}"
        if filesystem is None:
            Path(directory).mkdir(parents=True, exist_ok=True)
        else:
            filesystem.create_dir(directory)
        pq.write_table(table, f"{directory}/part-0.parquet", filesystem=filesystem)
        paths.append(directory)
    return paths[0], paths[1]
