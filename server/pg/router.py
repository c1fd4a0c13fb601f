"""The router: which part of the server answers each statement a client sends.

Client SQL is split into statements with sqlglot's tokenizer, then routed:

- session statements (``BEGIN``/``COMMIT``/``ROLLBACK``, ``SET``/``RESET``/``SHOW``,
  ``DISCARD``, ``DEALLOCATE``, ``LISTEN``, cursors with ``DECLARE``/``FETCH``/``CLOSE``) are
  answered from the session's own state (:mod:`fsql_server.pg.commands`);
- ``COPY`` goes to :mod:`fsql_server.pg.copy`;
- the surface's planner (:mod:`fsql_server.pg.planner`; fsql's: definitions, point lookups
  on ``features.<entity>``, ``training_set(...)``) is asked before parsing, first after
  parsing, and last before DuckDB;
- catalog queries go to the catalog emulation (:mod:`fsql_server.pg.catalog`);
- a ``SELECT`` without ``FROM`` made only of constants and session functions (``version()``,
  ``current_setting``, ``set_config``) is evaluated in Python;
- everything else runs in the session's sandboxed DuckDB (:mod:`fsql_server.pg.duckdb_backend`),
  with the surface's tables (:class:`~fsql_server.pg.planner.DataRelations`) registered in it.

Each distinct statement is parsed once per session: plans are cached by exact text (and
parameter types), and statements that differ only in their literals share one plan when the
plan is a point lookup (:attr:`~fsql_server.pg.backend.Plan.fast_lookup`; the literals become
parameters).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import sqlglot
from fsql_server.pg import (
    collations,
    colnames,
    commands,
    copy,
    errors,
    introspection,
    row_addresses,
    search_path,
    session_functions,
    workers,
)
from fsql_server.pg.backend import Column, FastLookup, Plan, Result
from fsql_server.pg.catalog.engine import plan_catalog
from fsql_server.pg.dialect import DIALECT, FsqlPostgres
from fsql_server.pg.duckdb_backend import refuse
from fsql_server.pg.errors import PgError, position_of
from fsql_server.pg.session import Session
from fsql_server.pg.types import TEXT, PgType
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

_POSTGRES = DIALECT

#: leading comments and whitespace
_LEADING = re.compile(r"^(?:\s+|--[^\n]*(?:\n|$)|/\*(?:[^*]|\*(?!/))*(?:\*/|$))*")

# The patterns below run on the event loop over whatever a client sends, so each must take
# time linear in the text. A comment or string that is never closed runs to the end of the
# text (as PostgreSQL reads it) instead of failing: a lazy ``/\*.*?\*/`` that fails scans to
# the end from every ``/*``, quadratic time for ``/* /* /* ...`` (20 s for 100 kB).
#: a comment, closed or running to the end of the text
_COMMENT = r"--[^\n]*|/\*(?:[^*]|\*(?!/))*(?:\*/|$)"
#: a string literal, closed or running to the end of the text
_STRING = r"'(?:[^']|'')*(?:'|$)"
_FIRST_WORDS = re.compile(r"[A-Za-z_]+")

#: literals and the things that look like literals but are not (skipped): used to turn the
#: literals of a simple-protocol statement into parameters for the plan cache
_LITERAL_SCAN = re.compile(
    r"""(?P<skip>"(?:[^"]|"")*(?:"|$)|""" + _COMMENT + r"""|\$\d+|[A-Za-z_][\w$]*)"""
    r"""|(?P<str>'(?:[^']|'')*')"""
    r"""|(?P<num>(?<![\w.])\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?![\w.]))""",
    re.S,
)


def split_statements(text: str) -> list[tuple[str, int]]:
    """Split a simple-protocol query into (statement text, offset) pairs; empty pieces are
    dropped (so ``;;`` is no statement). Offsets let error positions point into the whole
    message the client sent, as PostgreSQL's do."""
    body = text.rstrip().rstrip(";")
    if ";" not in body:
        # the common case, one statement (maybe with a final ";"): no tokenizing needed
        return [(body, 0)] if body.strip() else []
    try:
        tokens = _POSTGRES.tokenize(text)
    except TokenError as exc:
        raise syntax_error_from_token_error(text, exc) from None
    pieces: list[tuple[str, int]] = []
    start = 0
    for token in tokens:
        if token.token_type == sqlglot.TokenType.SEMICOLON:
            pieces.append((text[start : token.start], start))
            start = token.end + 1
    pieces.append((text[start:], start))
    return [(piece, offset) for piece, offset in pieces if _strip_comments(piece)]


def _strip_comments(text: str) -> str:
    return _LEADING.sub("", text).strip()


def syntax_error_from_token_error(text: str, exc: Exception) -> PgError:
    quote = re.search(r"(?<![\w'])'(?:[^']|'')*$", text)
    if quote:
        return PgError(
            errors.SYNTAX_ERROR,
            f'unterminated quoted string at or near "{text[quote.start():][:40]}"',
            position=quote.start() + 1,
        )
    return PgError(errors.SYNTAX_ERROR, f"syntax error: {exc}")


def parse_error(sql: str, exc: ParseError) -> PgError:
    """A sqlglot ParseError as 42601 with PostgreSQL's 1-based position."""
    first = exc.errors[0] if exc.errors else {}
    highlight = first.get("highlight") or ""
    line = first.get("line") or 1
    col = first.get("col") or 1
    position = position_of(sql, line, max(1, col - len(highlight) + 1))
    near = f' at or near "{highlight}"' if highlight else ""
    if highlight and position + len(highlight) - 1 >= len(sql.rstrip().rstrip(";").rstrip()):
        near = " at end of input"
    description = (first.get("description") or "").split(". ")[0]
    message = f"syntax error{near}"
    hint = None
    if description and "Invalid expression" not in description and "<class" not in description:
        hint = description
    return PgError(errors.SYNTAX_ERROR, message, position=position, hint=hint)


def first_words(sql: str, n: int = 3) -> list[str]:
    body = _strip_comments(sql)
    return [w.upper() for w in _FIRST_WORDS.findall(body[:200])[:n]]


#: ``INTERVAL '1 day 02:03:04'``: sqlglot keeps only the first number and unit of such a
#: literal, so it is read as the equivalent ``CAST('...' AS INTERVAL)`` instead
_INTERVAL_LITERAL = re.compile(
    r"\bINTERVAL\s+'((?:[^']|'')*)'(?!\s*(?:YEAR|MONTH|DAY|HOUR|MINUTE|SECOND)S?\b)", re.I)


def parse_tree(sql: str) -> exp.Expression:
    """Parse one statement with sqlglot's PostgreSQL dialect (42601 with position on error)."""
    text = sql
    if "nterval" in sql or "NTERVAL" in sql:
        text = _INTERVAL_LITERAL.sub(lambda m: f"CAST('{m.group(1)}' AS INTERVAL)", sql)
    try:
        trees = [t for t in sqlglot.parse(text, read=FsqlPostgres) if t is not None]
    except ParseError as exc:
        raise parse_error(sql, exc) from None
    except TokenError as exc:
        raise syntax_error_from_token_error(sql, exc) from None
    if len(trees) != 1:
        raise PgError(errors.SYNTAX_ERROR, "cannot insert multiple commands into a prepared "
                      "statement")
    tree = trees[0]
    assert isinstance(tree, exp.Expression)
    return tree


def plan_statement(session: Session, sql: str, param_oids: Sequence[int] = ()) -> Plan | None:
    """The plan for one statement (None for an empty one), from the cache when seen before."""
    key = (sql, tuple(param_oids))
    plan = session.cached_plan(key)
    if plan is not None and not _stale(plan):
        return plan
    if not param_oids and session.literal_templates:
        bound = _plan_from_template(session, sql)
        if bound is not None:
            return bound
    if not _strip_comments(sql):
        return None
    planner = session.server.planner
    if not param_oids and planner is not None and planner.shares_literals(sql):
        bound = _plan_with_literals_as_parameters(session, sql)
        if bound is not None:
            # the same text has the same literals: the bound plan is reusable as it is
            session.cache_plan(key, bound)
            return bound
    plan = _plan_uncached(session, sql, param_oids)
    if plan.cacheable:
        session.cache_plan(key, plan)
    return plan


def cached_lookup(session: Session, sql: str) -> tuple[FastLookup, Sequence[Any]] | None:
    """The point lookup and parameter values for a simple-protocol query, when the
    session's caches have it: what :func:`plan_statement` would return for the one statement
    in ``sql``, without ever planning (None for anything else). A lane's way in
    (:mod:`fsql_server.features.fast_lane`)."""
    body = sql.rstrip().rstrip(";")
    if ";" in body:
        return None  # several statements, or a ';' in a literal: the full path splits them
    plan = session.cached_plan((body, ()))
    if plan is None:
        plan = _plan_from_template(session, body) if session.literal_templates else None
        if plan is None:
            return None
    elif _stale(plan):
        return None
    if type(plan) is LiteralBoundPlan:
        lookup = plan.inner.fast_lookup
        if lookup is not None:
            return lookup, plan.bound_values()
    return None


def _stale(plan: Plan) -> bool:
    stale = getattr(plan, "stale", None)
    return bool(stale is not None and stale())


class LiteralBoundPlan(Plan):
    """A cached plan whose parameters are the literals of one simple-protocol statement."""

    def __init__(self, inner: Plan, literals: list[str], n_params: int):
        self.inner = inner
        self.sql = inner.sql
        self.command = inner.command
        self.literals = literals
        self.param_types = inner.param_types[:n_params]
        self.interruptible = getattr(inner, "interruptible", True)
        self.heavy = inner.heavy
        self.cacheable = True
        self.values: list[Any] | None = None

    def stale(self) -> bool:
        return _stale(self.inner)

    def describe(self, session: Session) -> list[Column] | None:
        return self.inner.describe(session)

    def bound_values(self) -> list[Any]:
        """The literals as the inner plan's parameter values."""
        if self.values is None:
            self.values = [literal_value(text, kind) for text, kind
                           in zip(self.literals, self.inner.param_types, strict=False)]
        return self.values

    async def run(self, session: Session, params: Sequence[Any]) -> Result:
        return await self.inner.run(session, self.bound_values())


#: a statement's last literal, when only whitespace and one ';' follow it (a number as
#: _LITERAL_SCAN reads one, without exponent, or a quoted string)
_LITERAL = r"(\d+(?:\.\d+)?|'(?:[^']|'')*')"
_LAST_LITERAL = re.compile(r"(?<![\w.$'])" + _LITERAL + r"(?![\w.])(\s*;?\s*)$")
#: what follows a template's text when the statement is one already split (no ';'): the
#: literal as _LAST_LITERAL reads one, then whitespace (for ``fullmatch`` after the prefix)
LITERAL_TAIL = re.compile(_LITERAL + r"(\s*)")
_TEMPLATES_PER_SESSION = 256


def _plan_from_template(session: Session, sql: str) -> Plan | None:
    """The fast way to the shared plan of a lookup that differs from one seen before only in
    its last literal (``... WHERE user_id = 42``): one regex search from the end and a dict
    lookup, instead of scanning the whole text for literals. The text around the literal was
    checked by the full scan (:func:`normalize_literals`) when it was first seen: it holds no
    other literal, so the normalized text, and the plan, are the same."""
    found = last_literal(sql)
    if found is None:
        return None
    key = session.literal_templates.get(found[0])
    if key is None:
        return None
    plan = session.cached_plan(key)
    if plan is None or _stale(plan):
        return None
    return LiteralBoundPlan(plan, [found[1]], 0)


def last_literal(sql: str) -> tuple[tuple[str, str], str] | None:
    """``sql``'s template key (the text before its last literal, what follows it) and that
    literal's text, as :func:`_plan_from_template` looks statements up; None when the text
    does not end in a literal."""
    found = _LAST_LITERAL.search(sql)
    if found is None:
        return None
    return (sql[: found.start()], found.group(2)), found.group(1)


def literal_value(text: str, kind: PgType) -> Any:
    """A literal's text (a number, or a quoted string) as a parameter value of type ``kind``."""
    raw = text[1:-1].replace("''", "'") if text.startswith("'") else text
    return kind.text_in(raw.encode())


def _remember_template(session: Session, sql: str, key: tuple[str, tuple[int, ...]],
                       literals: list[str]) -> None:
    """Let :func:`_plan_from_template` find ``key`` for ``sql`` with another last literal."""
    if len(literals) != 1:
        return
    found = last_literal(sql)
    if found is None or found[1] != literals[0]:
        return
    templates = session.literal_templates
    if len(templates) >= _TEMPLATES_PER_SESSION:
        templates.clear()
    templates[found[0]] = key


def _plan_with_literals_as_parameters(session: Session, sql: str) -> Plan | None:
    """Point lookups that differ only in literals share one plan: the literals become
    parameters of a plan cached under the normalized text (None when that plan is no point
    lookup, or takes other parameters than the literals)."""
    if any(m.lastgroup == "skip" and m[0][0] == "$" for m in _LITERAL_SCAN.finditer(sql)):
        return None  # parameters of its own (a Parse without types): literals would clash
    normalized = normalize_literals(sql, 1)
    if normalized is None:
        return None
    text, literals = normalized
    key = ("\x00literals\x00" + text, ())
    plan = session.cached_plan(key)
    if plan is None or _stale(plan):
        try:
            candidate = _plan_uncached(session, text, ())
        except PgError:
            return None  # the original text reports its own error with the right position
        if candidate.fast_lookup is None or len(candidate.param_types) != len(literals):
            return None
        candidate.sql = sql
        session.cache_plan(key, candidate)
        plan = candidate
    _remember_template(session, sql, key, literals)
    return LiteralBoundPlan(plan, literals, 0)


def normalize_literals(sql: str, first_param: int) -> tuple[str, list[str]] | None:
    """Replace literals with ``$n`` (numbered from ``first_param``): (normalized text, the
    literal texts). Used as the plan-cache key of simple-protocol statements."""
    literals: list[str] = []
    out: list[str] = []
    last = 0
    for match in _LITERAL_SCAN.finditer(sql):
        if match.lastgroup == "skip":
            continue
        out.append(sql[last : match.start()])
        literals.append(match.group())
        out.append(f"${first_param + len(literals) - 1}")
        last = match.end()
    if not literals:
        return None
    out.append(sql[last:])
    return "".join(out), literals


#: statements that manage the engine rather than query data: never for clients
ENGINE_STATEMENTS = frozenset((
    "ATTACH", "DETACH", "INSTALL", "LOAD", "FORCE", "PRAGMA", "EXPORT", "IMPORT", "USE", "CALL",
    "CHECKPOINT", "VACUUM", "UPDATE_EXTENSIONS",
))
_STRINGS_AND_COMMENTS = re.compile(_STRING + "|" + _COMMENT)
_FILE_ACCESS = re.compile(
    r"\b(read_\w+|\w+_scan|glob|sniff_csv|parquet_\w+|getenv|query_table|duckdb_secrets)\s*\(",
    re.I)
#: DuckDB's ``FROM '/path/file'`` (a string with a path where a table belongs), also without a
#: space (``FROM'/etc/passwd'``); a plain file name is left to the surface (``CREATE SOURCE
#: ... FROM 'events.csv'``, checked against the source roots)
_FROM_FILE = re.compile(r"\b(?:FROM|JOIN)\s*'([^']*)'(?!\s*::)", re.I)


def _path_like(text: str) -> bool:
    return "/" in text


def precheck_sandbox(sql: str, head: str) -> None:
    """Refuse engine statements and file access on the text, before any parsing: these are
    not PostgreSQL, so sqlglot would only call them syntax errors."""
    if head in ENGINE_STATEMENTS:
        raise refuse(head)
    without_comments = _STRINGS_AND_COMMENTS.sub(
        lambda m: m.group() if m.group().startswith("'") else " ", sql)
    found = _FILE_ACCESS.search(_STRINGS_AND_COMMENTS.sub(
        lambda m: "'" if m.group().startswith("'") else " ", without_comments))
    if found:
        raise refuse(f"the function {found.group(1).lower()}()")
    for path in _FROM_FILE.finditer(without_comments):
        if _path_like(path.group(1)):
            raise refuse(f"reading the file '{path.group(1)}'")


def _plan_uncached(session: Session, sql: str, param_oids: Sequence[int]) -> Plan:
    words = first_words(sql)
    head = words[0] if words else ""
    precheck_sandbox(sql, head)
    if head == "WITH" and introspection.is_asyncpg_typeinfo(sql):
        return introspection.TypeInfoPlan(sql)
    if head == "SELECT" and introspection.is_psycopg_typeinfo(sql):
        return introspection.TypeByNamePlan(sql)
    if head == "SELECT" and introspection.is_adbc_type_query(sql):
        return introspection.adbc_type_plan(sql)
    if head == "SELECT" and introspection.is_adbc_attribute_query(sql):
        return introspection.adbc_attribute_plan(sql)
    command = commands.plan_session_command(session, sql, words, plan_statement,
                                            param_oids)
    if command is not None:
        return command
    if head == "COPY":
        return copy.plan_copy(session, sql, param_oids, plan_statement)
    if head == "EXPLAIN":
        return plan_explain(session, sql)
    planner = session.server.planner
    if planner is not None:
        own = planner.plan_text(session, sql, first_words(sql, 4))
        if own is not None:
            return own
    if head not in SQL_STATEMENTS:
        word = _FIRST_WORDS.search(_strip_comments(sql))
        near = word.group() if word else sql.strip()[:20]
        raise PgError(errors.SYNTAX_ERROR, f'syntax error at or near "{near}"',
                      position=sql.find(near) + 1 if near in sql else None)
    tree = parse_tree(sql)
    return plan_tree(session, sql, tree, param_oids)


_EXPLAIN = re.compile(r"^\s*EXPLAIN\s+(?:\((?P<options>[^)]*)\)\s*|(?P<analyze>ANALYZE\s+))?"
                      r"(?P<body>.*)$", re.I | re.S)


class ExplainPlan(Plan):
    """``EXPLAIN statement``: which part of fsql answers it, and DuckDB's plan when DuckDB
    does. One text column ``QUERY PLAN``, one row per line, as in PostgreSQL."""

    interruptible = True
    heavy = False  # DuckDB plans the statement, runs none of it

    def __init__(self, sql: str, inner: Plan):
        self.sql = sql
        self.inner = inner
        self.command = "EXPLAIN"
        self.cacheable = False

    def describe(self, session: Session) -> list[Column] | None:
        return [Column("QUERY PLAN", TEXT)]

    async def run(self, session: Session, params: Sequence[Any]) -> Result:
        inner = self.inner
        while not hasattr(inner, "explain") and hasattr(inner, "inner"):
            inner = inner.inner  # wrappers (literals as parameters, session values, ...)
        lines = inner.explain(session) if hasattr(inner, "explain") else [
            "Result computed by the fsql server itself (no engine, no store)"]
        if not isinstance(lines, list):
            lines = await lines
        return Result(self.describe(session), [(line,) for line in lines], "EXPLAIN",
                      counted=False)


def plan_explain(session: Session, sql: str) -> Plan:
    match = _EXPLAIN.match(sql)
    if match is None or not match.group("body").strip():
        raise PgError(errors.SYNTAX_ERROR, "EXPLAIN needs a statement")
    if match.group("analyze") or "analy" in (match.group("options") or "").lower():
        raise PgError(errors.FEATURE_NOT_SUPPORTED, "EXPLAIN ANALYZE is not supported",
                      hint="EXPLAIN shows the plan without running the statement.")
    inner = plan_statement(session, match.group("body"))
    if inner is None:
        raise PgError(errors.SYNTAX_ERROR, "EXPLAIN needs a statement")
    return ExplainPlan(sql, inner)


#: first words of the statements that go on to the SQL parser
SQL_STATEMENTS = frozenset((
    "SELECT", "WITH", "VALUES", "TABLE", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP",
    "ALTER", "EXPLAIN", "DESCRIBE", "SUMMARIZE", "TRUNCATE", "MERGE", "FROM", "COMMENT",
    "ANALYZE", "GRANT", "REVOKE", "LOCK", "REFRESH",
))


def plan_tree(
    session: Session, sql: str, tree: exp.Expression, param_oids: Sequence[int]
) -> Plan:
    """Route a parsed statement to the surface, the catalog, Python or DuckDB."""
    tree = search_path.apply_search_path(session, collations.drop_bytewise_collations(tree))
    relations = session.server.relations
    if relations is not None:
        tree = row_addresses.drop_whole_table_ranges(tree, relations.schemas)
    colnames.fold_aliases(tree)
    planner = session.server.planner
    if planner is not None:
        own = planner.plan_tree(session, sql, tree, param_oids)
        if own is not None:
            return own
    catalog = plan_catalog(session, sql, tree, param_oids)
    if catalog is not None:
        return catalog
    local = session_functions.plan_constant_select(session, sql, tree, param_oids)
    if local is not None:
        return local
    if planner is not None:
        own = planner.plan_engine_tree(session, sql, tree, param_oids)
        if own is not None:
            return own
    plan = session_functions.plan_on_duckdb(session, sql, tree, param_oids)
    plan.heavy = workers.reads_data(tree)  # a statement reading no relation is light
    return plan
