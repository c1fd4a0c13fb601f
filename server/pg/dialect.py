"""The PostgreSQL dialect client SQL is parsed with: sqlglot's, with PostgreSQL's reading of
``$``.

sqlglot's PostgreSQL tokenizer reads ``$`` as the start of a dollar-quoted string
(``$tag$ ... $tag$``) and only falls back to a parameter when the would-be tag is digits or
holds a space. ``$1,$2`` therefore reads as the tag ``1,`` and fails with "Error tokenizing",
and so do ``IN ($1,$2)``, ``VALUES ($1,$2)``, ``coalesce($1,$2)``, ``ARRAY[$1,$2]`` and
``$1||$2`` — what pgjdbc, psqlODBC, psycopg 3 and postgres.js send. In PostgreSQL a dollar
quote's tag is an identifier, which never starts with a digit: ``$`` followed by a digit is
always a positional parameter, which is what :class:`PgTokenizerCore` reads.
"""

from __future__ import annotations

from typing import Any

from sqlglot import exp
from sqlglot.dialects.postgres import Postgres
from sqlglot.parsers.postgres import PostgresParser
from sqlglot.tokenizer_core import TokenizerCore
from sqlglot.tokens import TokenType

#: the meta key of a function node that holds the name it was called by, as written
CALLED_AS = "pg_called_as"


class PgTokenizerCore(TokenizerCore):
    """sqlglot's tokenizer, with ``$<digit>`` always a parameter."""

    __slots__ = ()

    def _scan_string(self, start: str) -> bool:
        if start == "$" and self._peek.isdigit():
            self._add(self.heredoc_string_alternative)  # "$", then the number is scanned
            return True
        return super()._scan_string(start)


class FsqlPostgres(Postgres):
    """sqlglot's PostgreSQL dialect with :class:`PgTokenizerCore`, and arrays of object
    identifier types (``proallargtypes::regtype[]``, pgcli's function query), which sqlglot
    reads as an index without a subscript."""

    class Parser(PostgresParser):
        def _parse_function_call(self, *args: Any, **kwargs: Any) -> exp.Expr | None:
            # the name each function was called by goes into its node's meta: result columns
            # are named after it (:mod:`.colnames`), and sqlglot parses several names alike
            # (now() and CURRENT_TIMESTAMP, date_part() and EXTRACT, char_length and length)
            token = self._curr
            parsed = super()._parse_function_call(*args, **kwargs)
            func = parsed
            while isinstance(func, (exp.Window, exp.Filter, exp.WithinGroup)):
                func = func.this
            if isinstance(func, exp.Expression) and token is not None:
                func.meta.setdefault(CALLED_AS, token.text)  # mod(a, b) is an exp.Mod
            return parsed

        def _parse_types(self, *args: Any, **kwargs: Any) -> exp.Expr | None:
            parsed = super()._parse_types(*args, **kwargs)
            if isinstance(parsed, exp.ObjectIdentifier) and self._match_pair(
                    TokenType.L_BRACKET, TokenType.R_BRACKET):
                element = exp.DataType(this=exp.DType.USERDEFINED,
                                       kind=exp.to_identifier(str(parsed.this).lower()))
                return exp.DataType(this=exp.DType.ARRAY, expressions=[element], nested=True)
            return parsed

    class Tokenizer(Postgres.Tokenizer):
        def _init_core(self) -> TokenizerCore:
            core = super()._init_core()
            core.__class__ = PgTokenizerCore
            return core


DIALECT = FsqlPostgres()


def keep_joins(old: exp.Table, new: exp.Table) -> None:
    """Carry the joins of a parenthesized join (``FROM ((a JOIN b ON ...) JOIN c ON ...)``,
    psqlODBC's catalog queries) over to the table replacing ``old``: sqlglot holds them in
    the first table's ``joins``, which a plain ``replace`` would drop."""
    for key in ("joins", "pivots", "laterals"):
        if old.args.get(key):
            new.set(key, old.args[key])
