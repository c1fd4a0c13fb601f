"""The grammar of fsql's statements: a sqlglot ``Parser`` subclass.

:class:`FSQLParser` is PostgreSQL's parser plus six statements (``CREATE ENTITY``, ``CREATE
SOURCE``, ``CREATE FEATURE``, ``CREATE FEATURE SET``, ``CREATE CHECK`` and ``DROP ...`` of those
kinds); everything else keeps PostgreSQL's meaning. Each fsql statement becomes a
:class:`FsqlStatement` node whose ``meta`` holds the validated dataclass
(:mod:`fsql.language.definitions`). Problems are raised through sqlglot's error machinery with
the offending token's start offset and a problem code; :mod:`fsql.language.parser` turns them
into located problems. The parser renders queries in canonical form through the dialect that
created it (:meth:`fsql.language.dialect.FSQL.canonical_sql`), so this module does not import
the dialect (which imports it).

Why one module: sqlglot's parser is one class, and the grammar's methods share its token cursor
and error state; splitting the six statements across modules would mean mixins over one class,
which hides where a method comes from more than a long file does.
"""

from __future__ import annotations

import difflib
import re
import typing as t
from datetime import timedelta

from sqlglot import exp
from sqlglot.errors import ParseError
from sqlglot.parsers.postgres import PostgresParser
from sqlglot.tokens import Token, TokenType

from fsql.intervals import IntervalSyntaxError, format_interval, parse_interval
from fsql.language.checks import ROW_NAME, STAT_NAMES
from fsql.language.definitions import (
    DEFAULT_EVERY,
    CheckDef,
    Column,
    DropDef,
    EntityDef,
    FeatureDef,
    FeatureSetDef,
    Kind,
    Severity,
    SourceDef,
    Statement,
)

__all__ = ["SUPPORTED_TYPES", "FSQLParser", "FsqlStatement", "canonical_type", "closest_name"]


#: the words after CREATE / DROP that name an fsql kind, longest first
_KIND_WORDS: tuple[tuple[tuple[str, ...], Kind], ...] = (
    (("FEATURE", "SET"), "feature_set"),
    (("FEATURE",), "feature"),
    (("ENTITY",), "entity"),
    (("SOURCE",), "source"),
    (("CHECK",), "check"),
)

#: option keywords of CREATE FEATURE; seeing one after the query means it was misplaced
_FEATURE_OPTIONS = (
    "ENTITY", "TYPE", "WINDOW", "EVERY", "TTL", "ONLINE", "EXPECT", "DESCRIPTION"
)  # fmt: skip
#: what a check's severity may be written as (default ERROR)
_SEVERITIES = ("WARN", "ERROR")

#: sqlglot type → fsql's canonical type name (parameters handled separately)
_CANONICAL_TYPES: dict[exp.DType, str] = {
    exp.DType.VARCHAR: "VARCHAR",
    exp.DType.TEXT: "VARCHAR",
    exp.DType.CHAR: "VARCHAR",
    exp.DType.NCHAR: "VARCHAR",
    exp.DType.NVARCHAR: "VARCHAR",
    exp.DType.BPCHAR: "VARCHAR",
    exp.DType.NAME: "VARCHAR",
    exp.DType.BIGINT: "BIGINT",
    exp.DType.INT: "INTEGER",
    exp.DType.SMALLINT: "SMALLINT",
    exp.DType.TINYINT: "SMALLINT",
    exp.DType.DOUBLE: "DOUBLE",
    exp.DType.FLOAT: "REAL",
    exp.DType.BOOLEAN: "BOOLEAN",
    exp.DType.DATE: "DATE",
    exp.DType.TIMESTAMP: "TIMESTAMP",
    exp.DType.TIMESTAMPNTZ: "TIMESTAMP",
    exp.DType.DATETIME: "TIMESTAMP",
    exp.DType.TIMESTAMPTZ: "TIMESTAMPTZ",
    exp.DType.TIMESTAMPLTZ: "TIMESTAMPTZ",
    exp.DType.VARBINARY: "BLOB",
    exp.DType.BINARY: "BLOB",
    exp.DType.BLOB: "BLOB",
}
SUPPORTED_TYPES = (
    "VARCHAR, BIGINT, INTEGER, SMALLINT, DOUBLE, REAL, DECIMAL(p, s), BOOLEAN, DATE, "
    "TIMESTAMP, TIMESTAMPTZ, BLOB"
)


def canonical_type(data_type: exp.DataType) -> str | None:
    """fsql's canonical name for a sqlglot type (``TEXT`` → ``VARCHAR``, ``INT8`` → ``BIGINT``,
    ``FLOAT8`` → ``DOUBLE``, ``NUMERIC(10,2)`` → ``DECIMAL(10,2)``), or ``None`` when fsql
    does not support it (arrays, JSON, intervals, a DECIMAL without precision...)."""
    dtype = data_type.this
    if dtype == exp.DType.DECIMAL:
        params = [p.name for p in data_type.expressions]
        if not params:
            return None
        precision, scale = params[0], params[1] if len(params) > 1 else "0"
        return f"DECIMAL({precision},{scale})"
    if dtype == exp.DType.USERDEFINED and data_type.args.get("kind", "").upper() == "STRING":
        return "VARCHAR"
    return _CANONICAL_TYPES.get(dtype)


class FsqlStatement(exp.Expression):
    """An fsql statement in a sqlglot tree: ``this`` is the name, ``kind`` the statement kind
    (``entity``/``source``/``feature``/``feature_set``/``drop``). The validated dataclass is in
    ``meta["definition"]`` (kept out of ``args`` so hashing and copying stay sqlglot's)."""

    arg_types = {"this": True, "kind": True}

    @property
    def definition(self) -> Statement:
        return t.cast(Statement, self.meta["definition"])


class FSQLParser(PostgresParser):
    """PostgreSQL's parser plus the fsql statements. Custom keywords arrive as VAR tokens and
    are matched by text, since sqlglot's TokenType cannot be extended. Made by the FSQL dialect
    (``FSQL().parser()``), whose ``canonical_sql`` renders a definition's query."""

    STATEMENT_PARSERS: t.ClassVar = {
        **PostgresParser.STATEMENT_PARSERS,
        TokenType.CREATE: lambda self: self._parse_fsql_create(),
        TokenType.DROP: lambda self: self._parse_fsql_drop(),
    }

    _fsql_meta: dict[str, t.Any] = {}
    _name_token: Token | None = None

    # -- error plumbing ------------------------------------------------------------------------

    def raise_error(  # type: ignore[override]
        self, message: str, token: Token | None = None, *, code: str = "syntax"
    ) -> None:
        """As sqlglot's, but each error also records the token's start offset, so fsql can
        report the column where the offending text begins (sqlglot's ``col`` is its end),
        and a problem code (:attr:`fsql.errors.Problem.code`)."""
        token = token or self._curr or self._prev or Token.string("")
        count = len(self.errors)
        extra = {"start": token.start, "end": token.end, "code": code}
        try:
            super().raise_error(message, token)
        except ParseError as error:
            error.errors[0].update(extra)
            raise
        if len(self.errors) > count:
            self.errors[-1].errors[0].update(extra)

    def _warn_unsupported(self) -> None:
        """Silent: fsql reports an unparseable CREATE/DROP as an error itself (parse_sql),
        and sqlglot's log warning would only duplicate it."""

    def _render(self, node: exp.Expr) -> str:
        """Canonical SQL for ``node``, in the dialect that made this parser (fsql's)."""
        return t.cast(str, self.dialect.canonical_sql(node))

    # -- statements ----------------------------------------------------------------------------

    def _match_kind(self) -> tuple[Kind, Token] | None:
        for words, kind in _KIND_WORDS:
            token = self._curr
            if token and self._match_text_seq(*words):
                if kind == "feature_set" and not self._names_follow():
                    # a feature named "set": CREATE FEATURE set ENTITY ... / DROP FEATURE set
                    self._retreat(self._index - 1)
                    return "feature", token
                return kind, token
        return None

    def _names_follow(self) -> bool:
        """After FEATURE SET: does a set's name follow? If instead a feature option, AS or
        nothing follows, SET was the name of a feature (``CREATE FEATURE set ENTITY ...``)."""
        curr = self._curr
        if not curr:
            return False
        return curr.token_type != TokenType.ALIAS and curr.text.upper() not in _FEATURE_OPTIONS

    def _parse_fsql_create(self) -> exp.Expr:
        create = self._prev
        index = self._index
        self._match_pair(TokenType.OR, TokenType.REPLACE)  # a synonym: definitions are declarative
        matched = self._match_kind()
        if matched is None:
            self._retreat(index)
            return self._parse_create()
        kind, _ = matched
        self._name_token = self._curr  # missing-clause errors point at the definition's name
        name = self._parse_fsql_name(f"CREATE {kind.replace('_', ' ').upper()}")
        if kind == "entity":
            definition: Statement | None = self._parse_entity_body(name)
        elif kind == "source":
            definition = self._parse_source_body(name)
        elif kind == "feature":
            definition = self._parse_feature_body(name)
        elif kind == "check":
            definition = self._parse_check_body(name)
        else:
            definition = self._parse_feature_set_body(name)
        return self._fsql_node(create, kind, name, definition)

    def _parse_fsql_drop(self) -> exp.Expr:
        drop = self._prev
        index = self._index
        matched = self._match_kind()
        if matched is None:
            self._retreat(index)
            return self._parse_drop()
        kind, _ = matched
        if_exists = bool(self._match_text_seq("IF", "EXISTS"))
        name = self._parse_fsql_name(f"DROP {kind.replace('_', ' ').upper()}")
        definition = DropDef(target_kind=kind, name=name, if_exists=if_exists) if name else None
        return self._fsql_node(drop, "drop", name, definition)

    def _fsql_node(
        self, token: Token, kind: str, name: str | None, definition: Statement | None
    ) -> FsqlStatement:
        node = FsqlStatement(this=exp.to_identifier(name or "?"), kind=exp.var(kind))
        node.meta.update(self._fsql_meta)
        node.meta["definition"] = definition
        node.meta["start"] = token.start
        self._fsql_meta = {}
        return node

    def _parse_fsql_name(self, what: str) -> str | None:
        """A definition's or column's name: a quoted identifier (case kept) or a bare word,
        lower-cased. Bare words include SQL keywords (``from``, ``select``), because the
        canonical form writes names unquoted whenever they are lower-case words."""
        token = self._curr
        if token and token.token_type == TokenType.IDENTIFIER:
            self._advance()
            return token.text
        if token and re.fullmatch(r"[^\W\d][\w$]*", token.text):
            self._advance()
            # PostgreSQL folds only ASCII letters (as sqlglot's normalisation of queries does)
            return "".join(c.lower() if c.isascii() else c for c in token.text)
        self.raise_error(f"{what} needs a name here, e.g. {what} my_name", token or self._prev)
        return None

    def _parse_columns(self, what: str) -> tuple[Column, ...]:
        if not self._match(TokenType.L_PAREN):
            self.raise_error(f"{what} expects a parenthesised column list, e.g. (user_id VARCHAR)")
            return ()
        columns: list[Column] = []
        while True:
            column = self._parse_column_def_fsql(what)
            if column:
                columns.append(column)
            if not self._match(TokenType.COMMA):
                break
        if not self._match(TokenType.R_PAREN):
            self.raise_error(f"expected ',' or ')' in the column list of {what}")
        return tuple(columns)

    def _parse_column_def_fsql(self, what: str) -> Column | None:
        token = self._curr
        name = self._parse_fsql_name(f"a column of {what}")
        type_token = self._curr
        if name is None or not type_token:
            return None
        if type_token.token_type in (TokenType.COMMA, TokenType.R_PAREN):
            self.raise_error(
                f"column {name} needs a type, e.g. {name} VARCHAR (one of {SUPPORTED_TYPES})",
                token,
            )
            return None
        data_type = self._parse_types(check_func=False, allow_identifiers=True)
        if not isinstance(data_type, exp.DataType):
            self.raise_error(
                f"'{type_token.text}' is not a type; use one of {SUPPORTED_TYPES}",
                type_token,
                code="invalid-type",
            )
            return None
        canonical = canonical_type(data_type)
        if canonical is None:
            written = self._find_sql(type_token, self._prev)
            hint = (
                "give DECIMAL a precision and scale, e.g. DECIMAL(18, 2)"
                if data_type.this == exp.DType.DECIMAL
                else f"use one of {SUPPORTED_TYPES}"
            )
            self.raise_error(
                f"type {written} is not supported in fsql; {hint}", type_token, code="invalid-type"
            )
            return None
        return Column(name=name, type=canonical)

    def _parse_type_option(self) -> str | None:
        token = self._curr
        data_type = self._parse_types(check_func=False, allow_identifiers=True)
        if not isinstance(data_type, exp.DataType):
            self.raise_error(
                f"TYPE expects a type, one of {SUPPORTED_TYPES}", token, code="invalid-type"
            )
            return None
        canonical = canonical_type(data_type)
        if canonical is None:
            self.raise_error(
                f"type {self._find_sql(token, self._prev)} is not supported in fsql; "
                f"use one of {SUPPORTED_TYPES}",
                token,
                code="invalid-type",
            )
        return canonical

    def _parse_description(self) -> str | None:
        if self._match(TokenType.STRING):
            return self._prev.text
        self.raise_error("DESCRIPTION expects a string literal, e.g. DESCRIPTION 'Sum of ...'")
        return None

    def _parse_interval_option(self, option: str) -> timedelta | None:
        """``'30 days'`` or ``INTERVAL '30 days'`` (or ``INTERVAL '30' DAY``)."""
        start = self._curr
        self._match(TokenType.INTERVAL)
        if not self._match(TokenType.STRING):
            self.raise_error(
                f"{option} expects a duration string such as '30 days', '12 hours' or '90 minutes'",
                self._curr or start,
            )
            return None
        text_token = self._prev
        text = text_token.text
        if start and start.token_type == TokenType.INTERVAL and self._curr:
            if self._curr.token_type == TokenType.VAR and re.fullmatch(r"\s*\d+\s*", text):
                self._advance()
                text = f"{text.strip()} {self._prev.text}"
        try:
            return parse_interval(text)
        except IntervalSyntaxError as error:
            self.raise_error(f"{option} {error}", text_token, code="invalid-interval")
            return None

    def _parse_options(
        self,
        what: str,
        options: dict[str, t.Callable[[], t.Any]],
        stop: t.Callable[[], bool],
    ) -> tuple[dict[str, t.Any], dict[str, Token]]:
        """Options in any order, each at most once, until ``stop()``; returns values and the
        token where each option began (for later errors)."""
        values: dict[str, t.Any] = {}
        tokens: dict[str, Token] = {}
        while self._curr and not stop():
            token = self._curr
            for words in options:
                if self._match_text_seq(*words.split()):
                    if words in values:
                        self.raise_error(
                            f"{words} is given twice in {what}; keep one",
                            token,
                            code="duplicate-option",
                        )
                    tokens[words] = token
                    values[words] = options[words]()
                    break
            else:
                expected = ", ".join(options)
                self.raise_error(f"unexpected '{token.text}' in {what}; expected one of {expected}")
                # skip to the stop point so later, independent problems are still found
                while self._curr and not stop():
                    self._advance()
        return values, tokens

    def _parse_entity_body(self, name: str | None) -> EntityDef | None:
        what = f"CREATE ENTITY {name}"
        if not self._match_texts(("KEY", "KEYS")):
            self.raise_error(f"{what} needs KEY (column type, ...), e.g. KEY (user_id VARCHAR)")
            return None
        keys = self._parse_columns(what)
        values, _ = self._parse_options(
            what, {"DESCRIPTION": self._parse_description}, lambda: False
        )
        seen: set[str] = set()
        for key in keys:
            if key.name in seen:
                self.raise_error(f"key column {key.name} appears twice in {what}", self._prev)
            seen.add(key.name)
        if name is None or not keys:
            return None
        return EntityDef(name=name, keys=keys, description=values.get("DESCRIPTION"))

    def _parse_source_body(self, name: str | None) -> SourceDef | None:
        what = f"CREATE SOURCE {name}"
        columns = self._parse_columns(what)

        def path() -> str | None:
            if self._match(TokenType.STRING):
                return self._prev.text
            self.raise_error(
                "FROM expects a quoted path relative to the repo or an s3:// URI, "
                "e.g. FROM 'data/purchases'"
            )
            return None

        def file_format() -> str | None:
            token = self._curr
            if self._match_texts(("PARQUET", "CSV")):
                return self._prev.text.lower()
            self.raise_error("FORMAT must be PARQUET or CSV", token)
            self._advance()
            return None

        def column_name() -> str | None:
            return self._parse_fsql_name("EVENT TIME / CREATED TIME")

        values, tokens = self._parse_options(
            what,
            {
                "FROM": path,
                "FORMAT": file_format,
                "EVENT TIME": column_name,
                "CREATED TIME": column_name,
                "LATENESS": lambda: self._parse_interval_option("LATENESS"),
                "DESCRIPTION": self._parse_description,
            },
            lambda: False,
        )
        problems = False
        if "FROM" not in values:
            self.raise_error(
                f"{what} needs FROM 'path' (a repo-relative path or s3:// URI)", self._name_token
            )
            problems = True
        if "EVENT TIME" not in values:
            self.raise_error(
                f"{what} needs EVENT TIME <column>: when each row happened", self._name_token
            )
            problems = True
        names = [c.name for c in columns]
        for column in {c.name for c in columns if names.count(c.name) > 1}:
            self.raise_error(f"column {column} appears twice in {what}", self._prev)
            problems = True
        for option in ("EVENT TIME", "CREATED TIME"):
            problems |= not self._check_time_column(what, option, values, tokens, columns)
        if problems or name is None or not columns or None in values.values():
            return None
        return SourceDef(
            name=name,
            columns=columns,
            path=values["FROM"],
            format=values.get("FORMAT", "parquet"),
            event_time=values["EVENT TIME"],
            created_time=values.get("CREATED TIME"),
            lateness=values.get("LATENESS"),
            description=values.get("DESCRIPTION"),
        )

    def _check_time_column(
        self,
        what: str,
        option: str,
        values: dict[str, t.Any],
        tokens: dict[str, Token],
        columns: tuple[Column, ...],
    ) -> bool:
        """EVENT TIME / CREATED TIME must name a TIMESTAMP, TIMESTAMPTZ or DATE column."""
        name = values.get(option)
        if name is None or not columns:
            return True
        token = self._token_after(tokens[option], len(option.split()))
        column = next((c for c in columns if c.name == name), None)
        if column is None:
            hint = closest_name(name, [c.name for c in columns])
            self.raise_error(
                f"{option} names column {name}, which {what} does not declare; "
                f"{hint or 'declare it in the column list'}",
                token,
                code="unknown-column",
            )
            return False
        if column.type not in ("TIMESTAMP", "TIMESTAMPTZ", "DATE"):
            self.raise_error(
                f"{option} column {name} is {column.type}; it must be TIMESTAMP, TIMESTAMPTZ "
                "or DATE",
                token,
                code="invalid-type",
            )
            return False
        return True

    def _token_after(self, token: Token, offset: int) -> Token:
        position = next(i for i, tok in enumerate(self._tokens) if tok is token)
        return self._tokens[min(position + offset, len(self._tokens) - 1)]

    def _parse_feature_body(self, name: str | None) -> FeatureDef | None:
        what = f"CREATE FEATURE {name}"
        values, tokens = self._parse_options(
            what,
            {
                "ENTITY": lambda: self._parse_fsql_name("ENTITY"),
                "TYPE": self._parse_type_option,
                "WINDOW": lambda: self._parse_interval_option("WINDOW"),
                "EVERY": lambda: self._parse_interval_option("EVERY"),
                "TTL": lambda: self._parse_interval_option("TTL"),
                "ONLINE": self._parse_online,
                "EXPECT": lambda: self._parse_expect_list(what, name),
                "DESCRIPTION": self._parse_description,
            },
            lambda: self._curr.token_type == TokenType.ALIAS,
        )
        if not self._match(TokenType.ALIAS):
            self.raise_error(f"{what} needs AS SELECT ... after its options")
            return None
        query_token = self._curr
        if not query_token or query_token.token_type not in (
            TokenType.SELECT,
            TokenType.WITH,
            TokenType.L_PAREN,
        ):
            self.raise_error(f"{what} AS must be followed by a SELECT", query_token or self._prev)
            return None
        query = self._parse_statement()
        while isinstance(query, exp.Subquery) and not query.alias:  # AS (SELECT ...)
            query = query.this
        self._check_feature_query_end(what, query)
        # kept for fsql.language.analysis, which reports problems inside the query at file positions
        self._fsql_meta = {
            "query": query,
            "spans": {
                option: (value.start, value.end)
                for option, token in tokens.items()
                for value in [self._token_after(token, len(option.split()))]
            },
        }
        ok = True
        if "ENTITY" not in values:
            self.raise_error(
                f"{what} needs ENTITY <name> before AS: the entity whose keys it is computed for",
                query_token,
            )
            ok = False
        window, every = values.get("WINDOW"), values.get("EVERY") or DEFAULT_EVERY
        if window is not None and window % every:
            self.raise_error(
                f"WINDOW {_fmt(window)} is not a whole multiple of EVERY {_fmt(every)}; "
                f"use a window that is (e.g. {_fmt(every * max(1, window // every))}) "
                "or a finer EVERY",
                self._token_after(tokens["WINDOW"], 1),
                code="window-not-multiple",
            )
            ok = False
        if not ok or name is None or not isinstance(query, exp.Query):
            return None
        if any(values.get(k) is None for k in values):
            return None
        return FeatureDef(
            name=name,
            entity=values["ENTITY"],
            query=self._render(query),
            type=values.get("TYPE"),
            window=window,
            every=every,
            ttl=values.get("TTL"),
            online=values.get("ONLINE", True),
            expect=values.get("EXPECT", ()),
            description=values.get("DESCRIPTION"),
        )

    def _parse_online(self) -> bool | None:
        if self._match(TokenType.TRUE):
            return True
        if self._match(TokenType.FALSE):
            return False
        self.raise_error("ONLINE expects TRUE or FALSE")
        return None

    def _check_feature_query_end(self, what: str, query: exp.Expr | None) -> None:
        """Options written after the query would be swallowed by SQL (``FROM t ttl`` is a
        table alias, ``WINDOW '30 days'`` a named window): say where they belong instead."""
        if isinstance(query, exp.Select):
            for table in query.find_all(exp.Table):
                alias = table.args.get("alias")
                ident = alias.this if isinstance(alias, exp.TableAlias) else None
                if ident is not None and ident.name.upper() in _FEATURE_OPTIONS:
                    token = self._token_at(ident)
                    self.raise_error(
                        f"{ident.name.upper()} after the query is read as a table alias; "
                        f"put {ident.name.upper()} ... before AS in {what}",
                        token,
                    )
                    while self._curr:
                        self._advance()
                    return
        if self._curr:
            word = self._curr.text.upper()
            hint = (
                f"put {word} ... before AS in {what}"
                if word in _FEATURE_OPTIONS
                else "end the statement with ';'"
            )
            self.raise_error(f"unexpected '{self._curr.text}' after the feature's query; {hint}")
            while self._curr:
                self._advance()

    def _token_at(self, node: exp.Expr) -> Token | None:
        start = node.meta.get("start")
        return next((tok for tok in self._tokens if tok.start == start), None)

    def _parse_window_clause(self) -> list[exp.Expr] | None:
        """PostgreSQL's named windows, except that ``WINDOW '30 days'`` (an fsql option put
        after the query) is an error rather than a window silently named "30 days"."""
        if not self._match(TokenType.WINDOW):
            return None
        if self._curr and self._curr.token_type in (TokenType.STRING, TokenType.INTERVAL):
            self.raise_error(
                "WINDOW with a duration is a CREATE FEATURE option and goes before AS; after "
                "the SELECT, WINDOW names a SQL window (WINDOW w AS (...))",
                self._prev,
            )
            while self._curr:
                self._advance()
            return None
        return self._parse_csv(self._parse_named_window)

    def _parse_feature_set_body(self, name: str | None) -> FeatureSetDef | None:
        what = f"CREATE FEATURE SET {name}"
        if not self._match(TokenType.L_PAREN):
            self.raise_error(f"{what} expects a parenthesised list of features, e.g. (f1, f2)")
            return None
        features: list[str] = []
        while True:
            token = self._curr
            feature = self._parse_fsql_name(f"a feature in {what}")
            if feature is not None:
                if feature in features:
                    self.raise_error(f"feature {feature} is listed twice in {what}", token)
                features.append(feature)
            if not self._match(TokenType.COMMA):
                break
        if not self._match(TokenType.R_PAREN):
            self.raise_error(f"expected ',' or ')' in the feature list of {what}")
        values, _ = self._parse_options(
            what, {"DESCRIPTION": self._parse_description}, lambda: False
        )
        if name is None or not features:
            return None
        return FeatureSetDef(
            name=name, features=tuple(features), description=values.get("DESCRIPTION")
        )

    # -- data checks ---------------------------------------------------------------------------

    def _parse_check_expression(self, what: str) -> str | None:
        """One boolean expression of a check, canonically rendered; its names are validated
        here (each bad name is reported where it is written): ``value`` or the run
        statistics, not both."""

        token = self._curr
        if not token or token.token_type in (TokenType.R_PAREN, TokenType.COMMA):
            self.raise_error(f"{what} expects a boolean expression here, e.g. value >= 0", token)
            return None
        expression = self._parse_disjunction()
        if expression is None:
            self.raise_error(f"{what} expects a boolean expression here, e.g. value >= 0", token)
            return None
        columns = list(expression.find_all(exp.Column))
        allowed = (ROW_NAME, *STAT_NAMES)
        ok = True
        for column in columns:
            if column.name.lower() not in allowed or column.table:
                hint = closest_name(column.name.lower(), allowed)
                self.raise_error(
                    f"{what} reads {column.sql(dialect=self.dialect)}; a check may read "
                    f"{ROW_NAME} (each written value) or the run statistics "
                    f"{', '.join(STAT_NAMES)}" + (f" ({hint})" if hint else ""),
                    self._token_at(column.this) or token,
                    code="check",
                )
                ok = False
        names = {c.name.lower() for c in columns}
        if ok and ROW_NAME in names and names - {ROW_NAME}:
            self.raise_error(
                f"{what} mixes {ROW_NAME} with run statistics "
                f"({', '.join(sorted(names - {ROW_NAME}))}); split it into a row check and a "
                "statistics check",
                token,
                code="check",
            )
            ok = False
        return self._render(expression) if ok else None

    def _parse_severity(self) -> Severity | None:
        """``WARN`` or ``ERROR`` if written next (``None`` when neither is)."""
        token = self._curr
        if token and self._match_texts(_SEVERITIES):
            return t.cast(Severity, token.text.lower())
        return None

    def _bad_severity(self, what: str, token: Token) -> None:
        self.raise_error(
            f"'{token.text}' is not a severity in {what}; write WARN (the run still succeeds "
            "and the failure is recorded) or ERROR (the default: the run fails)",
            token,
            code="check-severity",
        )

    def _parse_expect_list(
        self, what: str, feature: str | None
    ) -> tuple[tuple[str, Severity], ...] | None:
        """``EXPECT (expr [WARN|ERROR], ...)`` of CREATE FEATURE; the checks are named
        ``<feature>_expect_<n>`` (as :func:`fsql.language.checks.checks_from_definitions`)."""
        if not self._match(TokenType.L_PAREN):
            self.raise_error(
                f"EXPECT in {what} expects a parenthesised list of checks, "
                "e.g. EXPECT (value >= 0, null_fraction < 0.01 WARN)"
            )
            return None
        checks: list[tuple[str, Severity]] = []
        ok = True
        while True:
            number = len(checks) + 1
            expression = self._parse_check_expression(f"check {feature}_expect_{number}")
            severity = self._parse_severity() or "error"
            token = self._curr
            if token and token.token_type not in (TokenType.COMMA, TokenType.R_PAREN):
                if token.token_type == TokenType.VAR:
                    self._bad_severity(what, token)
                    self._advance()
                else:
                    self.raise_error(f"expected ',' or ')' in the EXPECT list of {what}", token)
                    return None
            ok &= expression is not None
            checks.append((expression or "", severity))
            if not self._match(TokenType.COMMA):
                break
        if not self._match(TokenType.R_PAREN):
            self.raise_error(f"expected ',' or ')' in the EXPECT list of {what}")
            return None
        return tuple(checks) if ok else None

    def _parse_check_body(self, name: str | None) -> CheckDef | None:
        """``ON feature EXPECT (expr) [WARN|ERROR] [DESCRIPTION '...']``."""
        what = f"CREATE CHECK {name}"
        if not self._match(TokenType.ON):
            self.raise_error(
                f"{what} needs ON <feature> EXPECT (expression), "
                f"e.g. CREATE CHECK {name} ON my_feature EXPECT (value >= 0)"
            )
            return None
        feature = self._parse_fsql_name(f"ON in {what}")
        self._fsql_meta = {"spans": {"ON": (self._prev.start, self._prev.end)}}
        if not (self._curr and self._match_text_seq("EXPECT")):
            self.raise_error(f"{what} needs EXPECT (expression) after ON {feature}")
            return None
        if not self._match(TokenType.L_PAREN):
            self.raise_error(
                f"EXPECT in {what} expects a parenthesised expression, e.g. (value >= 0)"
            )
            return None
        expression = self._parse_check_expression(f"check {name}")
        if not self._match(TokenType.R_PAREN):
            self.raise_error(
                f"expected ')' after the expression of {what} (one expression per CREATE CHECK; "
                "combine conditions with AND)"
            )
            return None

        severities: list[Severity] = []
        values: dict[str, t.Any] = {}
        while self._curr:
            token = self._curr
            matched = self._parse_severity()
            if matched is not None:
                if severities:
                    self.raise_error(
                        f"a severity is given twice in {what}; keep one", token,
                        code="duplicate-option",
                    )  # fmt: skip
                severities.append(matched)
            elif self._match_text_seq("DESCRIPTION"):
                if "DESCRIPTION" in values:
                    self.raise_error(f"DESCRIPTION is given twice in {what}; keep one", token,
                                     code="duplicate-option")  # fmt: skip
                values["DESCRIPTION"] = self._parse_description()
            else:
                if token.token_type == TokenType.VAR:
                    self._bad_severity(what, token)
                else:
                    self.raise_error(
                        f"unexpected '{token.text}' in {what}; expected WARN, ERROR or "
                        "DESCRIPTION 'text'",
                        token,
                    )
                while self._curr:
                    self._advance()
        if name is None or feature is None or expression is None:
            return None
        return CheckDef(
            name=name,
            feature=feature,
            expression=expression,
            severity=severities[0] if severities else "error",
            description=values.get("DESCRIPTION"),
        )


def closest_name(name: str, candidates: t.Iterable[str]) -> str | None:
    """'did you mean X?' for the closest candidate, if any is close."""
    match = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"did you mean {match[0]}?" if match else None


def _fmt(value: timedelta) -> str:
    return f"'{format_interval(value)}'"
