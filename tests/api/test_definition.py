"""FeatureDefinition ↔ CREATE FEATURE: rendering, parsing back, types and clear errors."""

from __future__ import annotations

from datetime import timedelta

import pytest

from fsql.api import Aggregation, Expression, FeatureDefinition, LatestValue, WindowedAggregation
from fsql.api.definition import canonical_value_type
from fsql.errors import DefinitionError
from fsql.language.definitions import Column, EntityDef, SourceDef
from fsql.language.parser import parse

USER = EntityDef(name="user", keys=(Column("user_id", "VARCHAR"),))
ORDERS = SourceDef(
    name="orders",
    columns=(Column("user_id", "VARCHAR"), Column("amount", "DOUBLE"), Column("ts", "TIMESTAMP")),
    path="data/orders",
    event_time="ts",
)
CONTEXT = {"user": USER, "orders": ORDERS}


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE FEATURE f ENTITY user TYPE DOUBLE WINDOW '30 days' AS "
        "SELECT user_id, SUM(amount) FROM orders",
        "CREATE FEATURE f ENTITY user WINDOW '7 days' EVERY '6 hours' TTL '2 days' ONLINE FALSE "
        "DESCRIPTION 'x' AS SELECT user_id, COUNT(DISTINCT item_id) FROM orders WHERE amount > 0",
        "CREATE FEATURE f ENTITY user AS SELECT user_id, COUNT(*) FROM orders",
        "CREATE FEATURE f ENTITY user AS SELECT user_id, MAX(amount * 2) FROM orders",
        "CREATE FEATURE f ENTITY user AS SELECT user_id, country FROM profiles",
        "CREATE FEATURE f ENTITY user AS SELECT user_id, plan <> 'free' FROM profiles",
        "CREATE FEATURE f ENTITY user TYPE DOUBLE AS SELECT user_id, a / NULLIF(b, 0) FROM user",
    ],
)
def test_sql_round_trip(sql: str) -> None:
    """from_sql then to_sql gives the same canonical statement (so the same version)."""
    fd = FeatureDefinition.from_sql(sql)
    (original,) = parse(sql)
    (again,) = parse(fd.to_sql({}))
    assert again.canonical_sql() == original.canonical_sql()


def test_transforms_are_recovered() -> None:
    fd = FeatureDefinition.from_sql(
        "CREATE FEATURE f ENTITY user WINDOW '7 days' AS "
        "SELECT user_id, AVG(amount) FROM orders WHERE amount > 0"
    )
    assert fd.transformation == WindowedAggregation("avg", timedelta(days=7), "amount > 0")
    assert (fd.dependencies, fd.source) == (["amount"], "orders")
    latest = FeatureDefinition.from_sql("CREATE FEATURE g ENTITY user AS SELECT user_id, c FROM p")
    assert latest.transformation == LatestValue() and latest.dependencies == ["c"]
    derived = FeatureDefinition.from_sql(
        "CREATE FEATURE h ENTITY user AS SELECT user_id, a + b FROM user"
    )
    assert derived.transformation == Expression("a + b") and derived.source is None


def test_render_against_the_registry() -> None:
    fd = FeatureDefinition(
        "spend", "user", "float", WindowedAggregation("sum", "30d", filter="amount > 0"),
        ["amount"], ttl=timedelta(days=2), every="1 day", description="it's money",
    )  # fmt: skip
    assert fd.to_sql(CONTEXT) == (
        "CREATE FEATURE spend ENTITY user TYPE DOUBLE WINDOW '30 days' EVERY '1 day' "
        "TTL '2 days' ONLINE TRUE DESCRIPTION 'it''s money' "
        "AS SELECT user_id, SUM(amount) FROM orders WHERE amount > 0"
    )
    count = FeatureDefinition("n", "user", "int", Aggregation("count"), source="orders")
    assert count.to_sql(CONTEXT).endswith("AS SELECT user_id, COUNT(*) FROM orders")
    assert count.to_definition(CONTEXT).type == "BIGINT"


@pytest.mark.parametrize(
    "value_type, sql_type",
    [("float", "DOUBLE"), ("int", "BIGINT"), ("str", "VARCHAR"), ("bool", "BOOLEAN"),
     ("decimal(10,2)", "DECIMAL(10,2)"), (None, None)],
)  # fmt: skip
def test_value_types(value_type: str | None, sql_type: str | None) -> None:
    assert canonical_value_type(value_type) == sql_type


def test_errors_say_what_would_be_right() -> None:
    with pytest.raises(DefinitionError, match="agg_func 'median' is not supported; use one of sum"):
        FeatureDefinition("f", "user", None, WindowedAggregation("median"), ["amount"]).to_sql(
            CONTEXT
        )
    with pytest.raises(DefinitionError, match="only count may have none"):
        FeatureDefinition("f", "user", None, WindowedAggregation("sum"), source="orders").to_sql(
            CONTEXT
        )
    with pytest.raises(DefinitionError, match="source orders has no column amunt"):
        FeatureDefinition("f", "user", None, Aggregation("sum"), ["orders.amunt"]).to_sql(CONTEXT)
    with pytest.raises(DefinitionError, match="'30 dayz' is not a duration"):
        FeatureDefinition(
            "f", "user", None, WindowedAggregation("sum", "30 dayz"), ["amount"]
        ).to_sql(CONTEXT)
    with pytest.raises(
        DefinitionError, match="unknown dependency amount: .*no source has user's key"
    ):
        FeatureDefinition("f", "user", None, Aggregation("sum"), ["amount"]).to_sql({"user": USER})
