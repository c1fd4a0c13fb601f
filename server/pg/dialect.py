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

from sqlglot.dialects.postgres import Postgres
from sqlglot.tokenizer_core import TokenizerCore


class PgTokenizerCore(TokenizerCore):
    """sqlglot's tokenizer, with ``$<digit>`` always a parameter."""

    __slots__ = ()

    def _scan_string(self, start: str) -> bool:
        if start == "$" and self._peek.isdigit():
            self._add(self.heredoc_string_alternative)  # "$", then the number is scanned
            return True
        return super()._scan_string(start)


class FsqlPostgres(Postgres):
    """sqlglot's PostgreSQL dialect with :class:`PgTokenizerCore`."""

    class Tokenizer(Postgres.Tokenizer):
        def _init_core(self) -> TokenizerCore:
            core = super()._init_core()
            core.__class__ = PgTokenizerCore
            return core


DIALECT = FsqlPostgres()
