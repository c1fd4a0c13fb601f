"""The FSQL dialect: canonical rendering, and sqlglot's own dialects left untouched."""

from __future__ import annotations

import pytest
import sqlglot
from sqlglot import exp

from fsql.errors import DefinitionError
from fsql.language.dialect import FSQL, render
from fsql.language.parser import parse_expression


def test_parse_expression_and_render():
    node = parse_expression('Sum( "Amount" ) / NULLIF( "count" , 0 ) -- x')
    assert render(node) == 'SUM("Amount") / NULLIF(count, 0)'
    with pytest.raises(DefinitionError):
        parse_expression("SUM(")


def test_dialect_does_not_change_postgres():
    """fsql statements exist only in the FSQL dialect: sqlglot's own dialects are untouched."""
    parsed = sqlglot.parse_one("CREATE ENTITY u KEY (a BIGINT)", read="postgres")
    assert isinstance(parsed, exp.Command)
    named_window = sqlglot.parse_one(
        "SELECT SUM(x) OVER w FROM t WINDOW w AS (PARTITION BY y)", read=FSQL
    )
    assert named_window.args["windows"]
