"""PostgreSQL functions DuckDB lacks, as macros of every session's DuckDB database.

They are created when a session's database opens (:mod:`.duckdb_backend`), before its
configuration is locked, so they work in any statement a client sends, not only in catalog
queries (whose database has its own, :mod:`.catalog.tables`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fsql_server.pg.catalog.tables import RESERVED_WORDS

#: PostgreSQL's quote_ident: quoted unless a lower-case identifier that is no keyword of
#: PostgreSQL's beyond the unreserved ones (its list, as the catalog's quote_ident has it:
#: DuckDB's own keyword categories differ, e.g. USER is unreserved there, reserved in PG)
_QUOTE_IDENT = (
    "CREATE TEMP MACRO quote_ident(x) AS CASE WHEN x IS NULL THEN NULL "
    "WHEN regexp_full_match(CAST(x AS VARCHAR), '[a-z_][a-z0-9_$]*') AND upper(CAST(x AS "
    f"VARCHAR)) NOT IN ({', '.join(repr(w) for w in sorted(RESERVED_WORDS))}) "
    "THEN CAST(x AS VARCHAR) "
    "ELSE '\"' || replace(CAST(x AS VARCHAR), '\"', '\"\"') || '\"' END"
)

#: PostgreSQL's quote_literal: quotes doubled, and backslashes doubled in an E'' string
_QUOTE_LITERAL = (
    "CREATE TEMP MACRO quote_literal(x) AS CASE WHEN x IS NULL THEN NULL "
    "WHEN contains(CAST(x AS VARCHAR), '\\') THEN 'E''' || replace(replace(CAST(x AS VARCHAR), "
    "'\\', '\\\\'), '''', '''''') || '''' "
    "ELSE '''' || replace(CAST(x AS VARCHAR), '''', '''''') || '''' END"
)

_QUOTE_NULLABLE = "CREATE TEMP MACRO quote_nullable(x) AS coalesce(quote_literal(x), 'NULL')"

#: the divisor of every division (:mod:`.meanings`): PostgreSQL's division by zero is an
#: error (22012), DuckDB's NULL or infinity
DIVISOR = "fsql_divisor"
_DIVISOR = (f"CREATE TEMP MACRO {DIVISOR}(y) AS "
            "CASE WHEN y = 0 THEN error('division by zero') ELSE y END")

#: statements run on each new session database
SESSION_MACROS = (_QUOTE_IDENT, _QUOTE_LITERAL, _QUOTE_NULLABLE, _DIVISOR)


#: PostgreSQL's numeric division: at least 16 significant digits (NUMERIC_MIN_SIG_DIGITS),
#: counted in base-10000 digit groups (DEC_DIGITS = 4), never fewer decimals than the dividend
_MIN_SIG_DIGITS, _DEC_DIGITS, _MAX_DISPLAY_SCALE = 16, 4, 1000

#: the name of :func:`pg_average` in every session's DuckDB
AVERAGE = "fsql_pg_avg"


def _weight_and_first_group(value: Decimal) -> tuple[int, int]:
    """The base-10000 weight of ``|value|`` and its first digit group (PostgreSQL's numeric
    layout: 123456 is 12|3456, weight 1, first group 12; 0.05 is .0500, weight -1, 500)."""
    value = abs(value)
    if value == 0:
        return 0, 0
    weight = value.adjusted() // _DEC_DIGITS
    return weight, int(value.scaleb(-_DEC_DIGITS * weight))


def pg_average(total: str | None, count: int | None) -> str | None:
    """``total / count`` as PostgreSQL's ``avg`` of integers or numerics answers it: the
    quotient of numeric division at the scale its ``select_div_scale`` picks (7.0000000000000000
    for 7/1, 0.50000000000000000000 for 5/10), rounded half away from zero; exact, as the
    text PostgreSQL prints (``total``: the exact sum as text; NULL for no rows)."""
    if total is None or not count:
        return None
    dividend = Decimal(total)
    sign, digits, exponent = dividend.as_tuple()
    assert isinstance(exponent, int)
    w1, first1 = _weight_and_first_group(dividend)
    w2, first2 = _weight_and_first_group(Decimal(count))
    qweight = w1 - w2 - (1 if first1 <= first2 else 0)
    scale = max(_MIN_SIG_DIGITS - qweight * _DEC_DIGITS, max(0, -exponent), 0)
    scale = min(scale, _MAX_DISPLAY_SCALE)
    numerator = int("".join(map(str, digits)) or "0") * 10 ** (exponent + scale)
    quotient, remainder = divmod(numerator, abs(count))
    if 2 * remainder >= abs(count):
        quotient += 1
    negative = bool(sign) != (count < 0) and quotient != 0
    return format(Decimal((int(negative), tuple(int(d) for d in str(quotient)), -scale)), "f")


def register_functions(con: Any) -> None:
    """PostgreSQL's functions written in Python, on a session's DuckDB (before its
    configuration is locked)."""
    con.create_function(AVERAGE, pg_average, ["VARCHAR", "BIGINT"], "VARCHAR")
