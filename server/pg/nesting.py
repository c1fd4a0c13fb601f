"""How deeply a statement nests, measured before anything recursive reads it.

sqlglot's parser and generator recurse once (or more) per level of nesting, on the worker's
event loop: 200 nested parentheses would end in a RecursionError, and 10,000 would hold the
loop for a long time first. PostgreSQL answers such a statement with ERROR 54001 ("stack depth
limit exceeded") and keeps the session; so does :func:`check_nesting`, with one linear scan
of the text that skips string literals, quoted identifiers, dollar quotes and comments
(one regular expression whose alternatives each take linear time).

Nesting counts parentheses, brackets and ``CASE ... END`` blocks: what makes the parse tree
deep. ``MAX_DEPTH`` leaves room under the worker's recursion limit (``RECURSION_LIMIT``, set
when a worker starts) for sqlglot's frames per level (about 25) and for the statement's own
passes after parsing.
"""

from __future__ import annotations

import re

from fsql_server.pg import errors
from fsql_server.pg.errors import PgError

#: the deepest nesting accepted (PostgreSQL's own limit depends on max_stack_depth)
MAX_DEPTH = 100
#: the worker's Python recursion limit (see the module docstring)
RECURSION_LIMIT = 10_000

#: what the scan looks at: literals, quoted identifiers and comments (skipped whole), and
#: what opens or closes a level. Every alternative is linear: an unclosed string or comment
#: runs to the end of the text (as PostgreSQL reads it) instead of backtracking.
_TOKENS = re.compile(
    # a cheap first-character test before the alternatives; the alternatives are "unrolled"
    # (no nested quantifier can match the same text two ways)
    r"""(?=['"\-/$(\[)\]CcEe])(?:(?P<skip>'[^']*(?:''[^']*)*(?:'|$)|"[^"]*(?:""[^"]*)*(?:"|$)"""
    r"""|--[^\n]*|/\*[^*]*(?:\*+[^*/][^*]*)*(?:\*+/|\*+$|$)"""
    r"""|\$(?P<tag>(?:[A-Za-z_]\w*)?)\$(?s:.*?)(?:\$(?P=tag)\$|\Z))"""
    r"""|(?P<open>[(\[]|\bCASE\b)|(?P<close>[)\]]|\bEND\b))""",
    re.I,
)


def nesting_depth(sql: str) -> tuple[int, int]:
    """(the deepest nesting of ``sql``, the 0-based offset where it is first reached)."""
    depth = deepest = 0
    where = 0
    for match in _TOKENS.finditer(sql):
        kind = match.lastgroup
        if kind == "open":
            depth += 1
            if depth > deepest:
                deepest, where = depth, match.start()
        elif kind == "close":
            depth = max(0, depth - 1)
    return deepest, where


def check_nesting(sql: str) -> None:
    """54001 for a statement nested deeper than :data:`MAX_DEPTH`, before it is parsed.
    Statements with too few openers to nest that deep (nearly all) are not scanned."""
    if len(sql) <= MAX_DEPTH or (
            sql.count("(") + sql.count("[") + sql.upper().count("CASE") <= MAX_DEPTH):
        return
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
