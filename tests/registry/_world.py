"""Definitions the registry tests apply, and how they are turned into an Analysis.

``desired(text)`` parses fsql text with the real dialect and analyses it with the real
analyser, exactly as ``fsql plan`` does for a repo.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fsql.language.analysis import Analysis
from fsql.language.analysis import analyze as real_analyze
from fsql.language.definitions import AnyDefinition, DropDef
from fsql.language.parser import parse

BASE = """
CREATE ENTITY user KEY (user_id VARCHAR) DESCRIPTION 'A customer';
CREATE ENTITY user_item KEY (user_id VARCHAR, item_id BIGINT);
CREATE SOURCE purchases (user_id VARCHAR, item_id BIGINT, amount DOUBLE, ts TIMESTAMP,
                         loaded_at TIMESTAMP)
  FROM 'data/purchases' FORMAT PARQUET EVENT TIME ts CREATED TIME loaded_at
  DESCRIPTION 'Card payments';
CREATE SOURCE users (user_id VARCHAR, country VARCHAR, ts TIMESTAMP)
  FROM 'data/users.csv' FORMAT CSV EVENT TIME ts;
CREATE FEATURE purchase_sum_30d ENTITY user TYPE DOUBLE WINDOW '30 days' EVERY '1 day'
  TTL '2 days' DESCRIPTION 'Sum of purchases over 30 days'
  AS SELECT user_id, SUM(amount) FROM purchases WHERE amount > 0;
CREATE FEATURE purchase_count_30d ENTITY user WINDOW '30 days'
  AS SELECT user_id, COUNT(*) FROM purchases;
CREATE FEATURE avg_purchase_30d ENTITY user
  AS SELECT user_id, purchase_sum_30d / NULLIF(purchase_count_30d, 0) FROM user;
CREATE FEATURE country ENTITY user ONLINE FALSE EVERY '12 hours'
  AS SELECT user_id, country FROM users;
CREATE FEATURE item_spend ENTITY user_item
  AS SELECT user_id, item_id, SUM(amount) FROM purchases;
CREATE FEATURE SET fraud_model_v1 (purchase_sum_30d, avg_purchase_30d);
"""

#: the same definitions, reformatted, re-cased and commented: no new versions
BASE_REFORMATTED = """
-- entities
create entity USER key (USER_ID varchar) description 'A customer';
create entity user_item key (user_id varchar, item_id bigint);  /* composite key */
create source purchases (user_id varchar, item_id bigint, amount double, ts timestamp, loaded_at timestamp) from 'data/purchases'
format parquet event time ts created time loaded_at description 'Card payments';
create source users (user_id varchar, country varchar, ts timestamp) from 'data/users.csv' format csv event time ts;
create feature purchase_sum_30d entity user type double window '30 days' every '1 day' ttl '2 days'
description 'Sum of purchases over 30 days' as select user_id, sum(amount) from purchases where amount > 0;
create feature purchase_count_30d entity user window '30 days' as
  select user_id, count(*)   -- every purchase
  from purchases;
create feature avg_purchase_30d entity user as select user_id,
  purchase_sum_30d / nullif(purchase_count_30d, 0) from user;
create feature country entity user online false every '12 hours' as select user_id, country from users;
create feature item_spend entity user_item as select user_id, item_id, sum(amount) from purchases;
create feature set fraud_model_v1 (purchase_sum_30d, avg_purchase_30d);
"""


def analyze(definitions: Iterable[AnyDefinition]) -> Analysis:
    return real_analyze(definitions)


def statements(text: str, file: str = "defs.sql") -> list[Any]:
    return parse(text, file)


def desired(text: str, file: str = "defs.sql") -> Analysis:
    """The Analysis of every CREATE in ``text`` (DROPs ignored; see :func:`drops`)."""
    return analyze(s for s in parse(text, file) if not isinstance(s, DropDef))


def drops(text: str) -> list[DropDef]:
    return [s for s in parse(text, "drops.sql") if isinstance(s, DropDef)]


def definitions(text: str) -> dict[str, AnyDefinition]:
    return {s.name: s for s in parse(text, "defs.sql") if not isinstance(s, DropDef)}


def replace_statement(text: str, name: str, new: str) -> str:
    """``text`` with the statement defining ``name`` replaced by ``new`` (or removed if empty)."""
    parts = [p for p in text.split(";") if p.strip()]
    out = []
    for part in parts:
        words = [w.upper() for w in part.split()[:4]]
        defined = part.split()[3] if words[1:3] == ["FEATURE", "SET"] else part.split()[2]
        if words[0] == "CREATE" and defined == name:
            if new:
                out.append("\n" + new)
        else:
            out.append(part)
    return ";".join(out) + ";\n"
