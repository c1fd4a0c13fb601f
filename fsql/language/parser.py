"""SQL text → fsql definitions, with every problem located at file:line:col.

:func:`parse` reads a definition file, :func:`parse_sql` a client's query string that may mix
definitions with PostgreSQL, :func:`parse_expression` one expression; all use the fsql dialect
(:class:`fsql.language.dialect.FSQL`, whose grammar is :mod:`fsql.language.grammar`). Each
statement is parsed on its own and its problems collected, so one call reports every bad
statement in a file, each with file, line, column and the offending text; a definition carries
its location and original text.

>>> [d.name for d in parse("CREATE ENTITY user KEY (user_id VARCHAR);")]
['user']
"""

from __future__ import annotations

import dataclasses
import re
import typing as t

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, ParseError, TokenError
from sqlglot.tokens import Token, TokenType

from fsql.errors import DefinitionError, Location, Problem
from fsql.language.definitions import DropDef, Statement
from fsql.language.dialect import FSQL
from fsql.language.grammar import FsqlStatement, closest_name

__all__ = ["parse", "parse_expression", "parse_partially", "parse_sql", "statement_tree"]

_KIND_NAMES = ("ENTITY", "SOURCE", "FEATURE", "FEATURE SET", "CHECK")


def parse(text: str, file: str | None = None) -> list[Statement]:
    """Parse a definition file: every statement must be an fsql definition or DROP.

    Raises :class:`DefinitionError` listing every problem in the text (a bad statement does
    not hide the ones after it).
    """
    statements, problems = _parse_all(text, file, definitions_only=True)
    if problems:
        raise DefinitionError(problems)
    return t.cast(list[Statement], statements)


def parse_partially(text: str, file: str | None = None) -> tuple[list[Statement], list[Problem]]:
    """Like :func:`parse`, but returns the statements that parse along with the problems of
    those that do not, so the rest of a file can still be analysed."""
    statements, problems = _parse_all(text, file, definitions_only=True)
    return t.cast(list[Statement], statements), problems


def parse_sql(text: str) -> list[Statement | exp.Expr]:
    """Parse a client's query string that may mix fsql definitions with PostgreSQL SQL.

    Definitions become dataclasses; other statements stay sqlglot trees (FSQL dialect).
    Raises :class:`DefinitionError` on syntax errors, and for a CREATE/DROP sqlglot could only
    keep as an opaque command.
    """
    statements, problems = _parse_all(text, None, definitions_only=False)
    if problems:
        raise DefinitionError(problems)
    return statements


def parse_expression(sql: str) -> exp.Expr:
    """Parse one SQL expression (or query) in the FSQL dialect."""
    try:
        expression = sqlglot.parse_one(sql, read=FSQL)
    except (ParseError, TokenError) as error:
        raise DefinitionError(_problems_from_error(error, sql, None, 0)) from None
    return expression


def statement_tree(text: str) -> FsqlStatement | None:
    """The parsed tree of one fsql statement (positions relative to ``text``), or ``None`` if
    ``text`` is not exactly one valid fsql statement. For analysis, which points at problems
    inside a feature's query: the tree's ``meta`` holds ``query`` and option ``spans``."""
    dialect = FSQL()
    try:
        chunks = _split_statements(dialect.tokenize(text))
        if len(chunks) != 1:
            return None
        trees = dialect.parser(error_level=ErrorLevel.RAISE).parse(chunks[0], text)
    except (ParseError, TokenError):
        return None
    tree = trees[0] if trees else None
    return tree if isinstance(tree, FsqlStatement) and tree.definition is not None else None


# ---------------------------------------------------------------------------------------------
# Internals


def _location(text: str, file: str | None, start: int, end: int | None = None) -> Location:
    """A Location for ``text[start:end+1]`` (1-based line and column of its first character)."""
    line = text.count("\n", 0, start) + 1
    col = start - (text.rfind("\n", 0, start) + 1) + 1
    highlight = text[start : (end if end is not None else start) + 1].split("\n")[0]
    return Location(file, line, col, highlight)


def _problems_from_error(
    error: ParseError | TokenError, text: str, file: str | None, default_start: int
) -> list[Problem]:
    if isinstance(error, TokenError):
        # the tokenizer stops at the first bad character; an unterminated quote runs to the
        # end of the text, so the culprit is the last opening quote of that kind
        cause = re.search(r"Missing (.) from", str(error.__cause__ or ""))
        if cause:
            start = text.rfind(cause.group(1))
            kind = "string" if cause.group(1) == "'" else "quoted identifier"
            message = f"this {kind} is never closed; end it with {cause.group(1)}"
        else:
            start = min(getattr(error, "start", 0) + 50, max(len(text) - 1, 0))
            message = "cannot read the text here (an unclosed comment or quote?)"
        return [Problem(message, _location(text, file, max(start, 0)), "syntax")]
    problems: list[Problem] = []
    seen: set[int] = set()
    for item in error.errors:
        start = item.get("start", default_start)
        message = item.get("description") or str(error)
        if start in seen and message.startswith(_GENERIC_SQLGLOT_MESSAGES):
            continue  # sqlglot often reports one mistake twice at the same token
        seen.add(start)
        where = _location(text, file, start, item.get("end"))
        problems.append(Problem(_sentence(message), where, item.get("code", "syntax")))
    return problems


_GENERIC_SQLGLOT_MESSAGES = ("Invalid expression", "Expecting", "Required keyword", "Unexpected")


def _sentence(message: str) -> str:
    """sqlglot's terse messages, made to say what would be right where we know it."""
    if message.startswith("Invalid expression / Unexpected token"):
        return "unexpected text here; check for a missing comma, parenthesis or ';'"
    if message.startswith("Required keyword") or message.startswith("Expecting"):
        return f"syntax error: {message[0].lower()}{message[1:]}"
    return message


def _split_statements(tokens: list[Token]) -> list[list[Token]]:
    chunks: list[list[Token]] = [[]]
    for token in tokens:
        if token.token_type == TokenType.SEMICOLON:
            chunks.append([])
        else:
            chunks[-1].append(token)
    return [c for c in chunks if c]


def _parse_all(
    text: str, file: str | None, *, definitions_only: bool
) -> tuple[list[Statement | exp.Expr], list[Problem]]:
    dialect = FSQL()
    try:
        tokens = dialect.tokenize(text)
    except TokenError as error:
        return [], _problems_from_error(error, text, file, 0)
    statements: list[Statement | exp.Expr] = []
    problems: list[Problem] = []
    for chunk in _split_statements(tokens):
        first, last = chunk[0], chunk[-1]
        parser = dialect.parser(error_level=ErrorLevel.RAISE)
        try:
            trees = parser.parse(chunk, text)
        except ParseError as error:
            problems.extend(_problems_from_error(error, text, file, first.start))
            continue
        tree = trees[0] if trees else None
        where = _location(text, file, first.start, first.end)
        if isinstance(tree, FsqlStatement):
            definition = tree.definition
            if definition is None:  # pragma: no cover - the parser reports why
                problems.append(Problem("invalid definition", where, "syntax"))
                continue
            changes: dict[str, t.Any] = {"location": where}
            if not isinstance(definition, DropDef):
                changes["source_text"] = text[first.start : last.end + 1]
            statements.append(dataclasses.replace(definition, **changes))
        elif isinstance(tree, exp.Command) and tree.name.upper() in ("CREATE", "DROP"):
            problems.append(_unknown_command(tree, chunk, text, file))
        elif definitions_only:
            problems.append(_not_a_definition(chunk, text, file))
        elif tree is not None:
            statements.append(tree)
    return statements, problems


def _unknown_command(tree: exp.Command, chunk: list[Token], text: str, file: str | None) -> Problem:
    """A CREATE/DROP sqlglot could not parse (it would silently become exp.Command)."""
    verb = tree.name.upper()
    word = chunk[1] if len(chunk) > 1 else chunk[0]
    hint = closest_name(word.text.upper(), _KIND_NAMES)
    message = f"{verb} {word.text} is not a statement fsql understands; " + (
        f"{hint[:-1]} ({verb} {hint.removeprefix('did you mean ')[:-1]} ...)?"
        if hint
        else f"fsql defines {verb} " + "|".join(_KIND_NAMES)
    )
    return Problem(message, _location(text, file, word.start, word.end), "syntax")


def _not_a_definition(chunk: list[Token], text: str, file: str | None) -> Problem:
    first = chunk[0]
    words = " ".join(tok.text.upper() for tok in chunk[:2])
    return Problem(
        f"{words} ... is not a definition; definition files hold only CREATE ENTITY, "
        "CREATE SOURCE, CREATE FEATURE, CREATE FEATURE SET, CREATE CHECK and DROP statements "
        "(run queries through the server or the API instead)",
        _location(text, file, first.start, first.end),
        "not-a-definition",
    )
