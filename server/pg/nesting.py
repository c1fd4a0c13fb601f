"""How deeply a statement nests, measured before anything recursive reads it.

sqlglot's parser and generator recurse once (or more) per level of nesting, on the worker's
event loop: 200 nested parentheses would end in a RecursionError, and 10,000 would hold the
loop for a long time first. PostgreSQL answers such a statement with ERROR 54001 ("stack depth
limit exceeded") and keeps the session; so does :func:`check_nesting`, with one linear scan
of the text that skips string literals, quoted identifiers, dollar quotes and comments.

Nesting counts parentheses, brackets and ``CASE ... END`` blocks: what makes the parse tree
deep. ``MAX_DEPTH`` leaves room under the worker's recursion limit (``RECURSION_LIMIT``, set
when a worker starts) for sqlglot's frames per level (about 25) and for the statement's own
passes after parsing.
"""

from __future__ import annotations

from fsql_server.pg import errors
from fsql_server.pg.errors import PgError

#: the deepest nesting accepted (PostgreSQL's own limit depends on max_stack_depth)
MAX_DEPTH = 100
#: the worker's Python recursion limit (see the module docstring)
RECURSION_LIMIT = 10_000

_OPEN = frozenset("([")
_CLOSE = frozenset(")]")
_WORD_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")


def nesting_depth(sql: str) -> tuple[int, int]:
    """(the deepest nesting of ``sql``, the 0-based offset where it is first reached)."""
    depth = deepest = 0
    where = 0
    i = 0
    n = len(sql)
    while i < n:
        ch = sql[i]
        if ch in _OPEN:
            depth += 1
            if depth > deepest:
                deepest, where = depth, i
            i += 1
        elif ch in _CLOSE:
            depth = max(0, depth - 1)
            i += 1
        elif ch == "'" or ch == '"':
            i = _skip_quoted(sql, i, ch)
        elif ch == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif ch == "/" and sql.startswith("/*", i):
            i = _skip_block_comment(sql, i)
        elif ch == "$":
            i = _skip_dollar_quote(sql, i)
        elif ch in _WORD_START:
            start = i
            while i < n and (sql[i].isalnum() or sql[i] in "_$"):
                i += 1
            word = sql[start:i].upper()
            if word == "CASE":
                depth += 1
                if depth > deepest:
                    deepest, where = depth, start
            elif word == "END":
                depth = max(0, depth - 1)
        else:
            i += 1
    return deepest, where


def _skip_quoted(sql: str, i: int, quote: str) -> int:
    """The offset after the literal or identifier opened at ``i`` (doubled quotes inside;
    backslash escapes in E'...' strings)."""
    escapes = quote == "'" and i > 0 and sql[i - 1] in "eE"
    j = i + 1
    n = len(sql)
    while j < n:
        ch = sql[j]
        if escapes and ch == "\\":
            j += 2
            continue
        if ch == quote:
            if j + 1 < n and sql[j + 1] == quote:
                j += 2
                continue
            return j + 1
        j += 1
    return n


def _skip_block_comment(sql: str, i: int) -> int:
    """After a ``/* ... */`` comment, which nests in PostgreSQL."""
    level = 0
    j = i
    n = len(sql)
    while j < n:
        if sql.startswith("/*", j):
            level += 1
            j += 2
        elif sql.startswith("*/", j):
            level -= 1
            j += 2
            if level == 0:
                return j
        else:
            j += 1
    return n


def _skip_dollar_quote(sql: str, i: int) -> int:
    """After a ``$tag$ ... $tag$`` string; a parameter (``$1``) is one character."""
    j = i + 1
    n = len(sql)
    while j < n and (sql[j].isalnum() or sql[j] == "_"):
        j += 1
    if j < n and sql[j] == "$" and not sql[i + 1 : j].isdigit():
        tag = sql[i : j + 1]
        end = sql.find(tag, j + 1)
        return n if end < 0 else end + len(tag)
    return i + 1


def check_nesting(sql: str) -> None:
    """54001 for a statement nested deeper than :data:`MAX_DEPTH`, before it is parsed."""
    depth, where = nesting_depth(sql)
    if depth > MAX_DEPTH:
        raise stack_depth_error(where + 1)


def stack_depth_error(position: int | None = None) -> PgError:
    """PostgreSQL's answer to a statement too deep for its stack (and the backstop for a
    RecursionError that nesting alone does not explain, e.g. a long chain of ``NOT``)."""
    return PgError(errors.STATEMENT_TOO_COMPLEX, "stack depth limit exceeded",
                   position=position,
                   hint=f"Nest parentheses, brackets and CASE at most {MAX_DEPTH} deep: "
                        "use a subquery in a CTE (WITH) or a temporary table instead.")
