"""A feature's SELECT, and where each of its nodes is in the definition's file.

Every analysis pass reports problems inside a feature's query at the offending text: a
:class:`FeatureQuery` re-parses the feature's source text (when it still matches the canonical
query) to keep each node's position, and turns a node or an option into a :class:`Location`.
"""

from __future__ import annotations

import typing as t

from sqlglot import exp
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers

from fsql.errors import Location
from fsql.language.definitions import FeatureDef
from fsql.language.dialect import FSQL, render
from fsql.language.parser import parse_expression, statement_tree

__all__ = ["FeatureQuery"]


class FeatureQuery:
    """A feature's SELECT, with a way to locate any of its nodes in the definition's file."""

    def __init__(self, feature: FeatureDef):
        self.feature = feature
        self.text = ""
        self.spans: dict[str, tuple[int, int]] = {}
        tree = statement_tree(feature.source_text) if feature.source_text else None
        query = tree.meta.get("query") if tree is not None else None
        if tree is not None and isinstance(query, exp.Expr) and render(query) == feature.query:
            self.text = t.cast(str, feature.source_text)
            self.spans = tree.meta.get("spans", {})
        else:  # no (matching) source text: parse the canonical query, locate the statement only
            query = parse_expression(feature.query)

        self.query: exp.Expr = normalize_identifiers(query, dialect=FSQL)

    def location(self, node: exp.Expr | None = None, option: str | None = None) -> Location | None:
        """Where ``node`` (or the value of ``option``) is in the file, with its text."""
        base = self.feature.location
        span: tuple[int, int] | None = None
        if option is not None:
            span = self.spans.get(option)
        elif node is not None and self.text:
            starts = [n.meta["start"] for n in node.walk() if n._meta and "start" in n.meta]
            ends = [n.meta["end"] for n in node.walk() if n._meta and "end" in n.meta]
            if starts:
                span = (min(starts), max(ends))
                # a call's meta covers only its name and arguments: close its parentheses
                span = (span[0], _balance_parentheses(self.text, *span))
                # keywords carry no position: start a JOIN / subquery at its keyword / "("
                leads: dict[type, str] = {exp.Join: "JOIN", exp.Subquery: "(", exp.Exists: "EXISTS"}
                lead = leads.get(type(node))
                if lead is not None:
                    found = self.text.upper().rfind(lead, 0, span[0])
                    span = (found, span[1]) if found != -1 else span
        if base is None or span is None:
            if base is None:
                return None
            highlight = node.sql(dialect=FSQL) if node is not None else base.highlight
            return Location(base.file, base.line, base.col, highlight)
        start, end = span
        line_offset = self.text.count("\n", 0, start)
        col = base.col + start if line_offset == 0 else start - self.text.rfind("\n", 0, start)
        highlight = self.text[start : end + 1].split("\n")[0]
        return Location(base.file, base.line + line_offset, col, highlight)


def _balance_parentheses(text: str, start: int, end: int) -> int:
    """The smallest end >= ``end`` such that ``text[start:end+1]`` closes every parenthesis
    it opens (string literals skipped), so a highlighted call includes its ``)``."""
    depth, position, quote = 0, start, ""
    while position < len(text):
        char = text[position]
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if position >= end and depth <= 0 and not quote:
            return position
        position += 1
    return end
