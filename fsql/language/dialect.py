"""The fsql dialect: PostgreSQL plus fsql's definition statements, and canonical SQL.

``FSQL`` subclasses sqlglot's PostgreSQL dialect with fsql's parser
(:class:`fsql.language.grammar.FSQLParser`) and a generator that renders fsql statements as
their canonical definitions; everything else keeps PostgreSQL's meaning. sqlglot is extended
only by subclassing, so other dialects in the same process are untouched (see
docs/language.md for the grammar). :func:`render` gives the canonical text fsql stores and
fingerprints: equal meaning gives equal text.

>>> render(FSQL().parse('SELECT "User_Id" FROM Purchases -- note')[0])
'SELECT "User_Id" FROM purchases'
"""

from __future__ import annotations

import re
import typing as t

from sqlglot import exp
from sqlglot.dialects.postgres import Postgres
from sqlglot.generators.postgres import PostgresGenerator
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers

from fsql.language.grammar import FSQLParser, FsqlStatement

__all__ = ["FSQL", "FSQLGenerator", "render"]


class FSQLGenerator(PostgresGenerator):
    """PostgreSQL's generator; fsql statements render as their canonical definition."""

    TRANSFORMS: t.ClassVar = {
        **PostgresGenerator.TRANSFORMS,
        FsqlStatement: lambda self, e: e.definition.canonical_sql(),
    }


class FSQL(Postgres):
    """The fsql dialect: PostgreSQL plus fsql's definition statements."""

    class Tokenizer(Postgres.Tokenizer):
        pass

    Parser = FSQLParser
    Generator = FSQLGenerator

    def canonical_sql(self, node: exp.Expr) -> str:
        """Canonical SQL for ``node``: unquoted identifiers lower-cased, quotes dropped where
        they change nothing, comments and layout dropped (see :func:`render`)."""
        node = normalize_identifiers(node.copy(), dialect=self)
        for ident in node.find_all(exp.Identifier):
            if ident.quoted and _is_plain_identifier(ident.name):
                ident.set("quoted", False)
        return node.sql(dialect=self, comments=False)


_FSQL = FSQL()
_KEYWORDS = {k.upper() for k in FSQL.Tokenizer.KEYWORDS}


def render(node: exp.Expr) -> str:
    """Canonical SQL for ``node``: unquoted identifiers lower-cased, quotes dropped where they
    change nothing, comments and layout dropped. Equal meaning gives equal text."""
    return _FSQL.canonical_sql(node)


def _is_plain_identifier(name: str) -> bool:
    return bool(re.fullmatch(r"[a-z_][a-z0-9_]*", name)) and name.upper() not in _KEYWORDS
