"""``fsql get`` reads the online store in-process (click's CliRunner)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from fsql.api import SyncFeatureStore
from fsql.cli import cli
from fsql.cli.online import parse_key
from tests.api._shop import DAY, make_shop, today, write_shop


def test_parse_key() -> None:
    assert parse_key("u1") == "u1"
    assert parse_key("a,7") == ("a", "7")
    assert parse_key("user_id=a,item_id=7") == {"user_id": "a", "item_id": "7"}


def test_fsql_get(tmp_path: Path) -> None:
    shop = make_shop()
    write_shop(shop, tmp_path)
    with SyncFeatureStore(tmp_path) as store:
        store.register(shop.sql("data/orders", "data/profiles"))
        store.register_feature(
            "CREATE FEATURE user_orders ENTITY user AS SELECT user_id, COUNT(*) FROM orders"
        )
        store.materialize(today() - DAY, today() + DAY)
    runner = CliRunner()
    users = shop.users[:3]
    args = ["--repo", str(tmp_path), "get", "user_orders"]
    for user in [*users, "nobody"]:
        args += ["--key", user]
    result = runner.invoke(cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [
        {"user_id": u, "user_orders": shop.order_count(u, today())} for u in [*users, "nobody"]
    ]
    text = runner.invoke(cli, args)
    assert text.exit_code == 0
    lines = text.stdout.splitlines()
    assert lines[0].split() == ["user_id", "user_orders"]
    assert lines[-1].split() == ["nobody", "NULL"]
    bad = runner.invoke(cli, ["--repo", str(tmp_path), "get", "user_ordrs", "--key", "u1"])
    assert bad.exit_code == 1
    assert "no feature or feature set named user_ordrs; did you mean user_orders?" in bad.stderr
