"""Collations: fsql compares text bytewise (UTF-8 code point order), which is exactly what
PostgreSQL's ``"C"`` and ``"POSIX"`` collations (and ``"default"`` in an fsql database, whose
collation is C) mean. :func:`drop_bytewise_collations` removes such ``COLLATE`` clauses from a
parsed statement before anything plans it, so every path accepts them: point lookups on
``features.<entity>`` (DuckDB's postgres extension writes ``WHERE key COLLATE "C" = ...``),
filters, ``ORDER BY``. Other collations stay, and DuckDB answers them (or refuses them).
"""

from __future__ import annotations

from sqlglot import exp

#: collations that mean bytewise comparison in an fsql database
BYTEWISE = frozenset(("c", "posix", "default", "ucs_basic"))


def drop_bytewise_collations(tree: exp.Expression) -> exp.Expression:
    """``tree`` without ``COLLATE "C"`` and its equivalents (a copy when it had any)."""
    if not any(_bytewise(node) for node in tree.find_all(exp.Collate)):
        return tree
    tree = tree.copy()
    for node in list(tree.find_all(exp.Collate)):
        if _bytewise(node):
            node.replace(node.this)
    return tree


def _bytewise(node: exp.Collate) -> bool:
    collation = node.expression
    name = collation.name if isinstance(collation, exp.Expression) else str(collation)
    if isinstance(collation, exp.Dot):  # pg_catalog."C"
        name = collation.expression.name
    return name.lower() in BYTEWISE
