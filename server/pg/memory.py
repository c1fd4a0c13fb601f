"""Memory sizes: DuckDB's memory settings in bytes, the size of rows held in Python, and the
53200 a session gets when rows would not fit its limit."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from fsql_server.pg import errors
from fsql_server.pg.errors import PgError


def estimate_bytes(rows: Sequence[Sequence[Any]]) -> int:
    """About how many bytes ``rows`` take as Python objects (from a sample of them)."""
    if not rows:
        return 0
    step = max(1, len(rows) // 32)
    sample = rows[::step]
    size = sum(sys.getsizeof(row) + sum(sys.getsizeof(v) for v in row) for row in sample)
    return size * len(rows) // len(sample)


def out_of_memory(needed: int, limit: int, what: str) -> PgError:
    """53200 for a result that would take more than the session's memory limit."""
    return PgError(
        errors.OUT_OF_MEMORY, "out of memory",
        detail=f"{what} would take about {needed // 2**20} MiB; the session's limit is "
               f"{limit // 2**20} MiB.",
        hint="Fetch the result in pieces without running other statements meanwhile, select "
             "fewer or narrower columns, or raise [compute] memory_limit.")


_SIZE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
               "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def memory_bytes(text: str) -> int:
    """A DuckDB memory setting (``"100MB"``, ``"2 GiB"``) in bytes."""
    value = text.strip().lower().replace(" ", "")
    number = value.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = value[len(number):]
    if unit not in _SIZE_UNITS or not number:
        raise ValueError(f"not a memory size: {text!r} (use e.g. 512MB or 2GB)")
    return int(float(number) * _SIZE_UNITS[unit])
