"""Data checks on what a materialization run wrote, and the run statistics they read.

A check is a SQL boolean expression over one feature's run (``CREATE CHECK name ON feature
EXPECT (expr) [WARN]``, or ``EXPECT (...)`` on ``CREATE FEATURE``; see
/work/notes/pipelines-to-language.md for the grammar request). Two kinds, told apart by the
names the expression reads:

- **row checks** read ``value`` (the feature value of each written row), e.g. ``value >= 0``.
  They hold when no written row makes the expression FALSE; like a SQL ``CHECK`` constraint, a
  NULL result passes (``value >= 0`` says nothing about NULL values: ``null_fraction`` does).
- **statistics checks** read the run statistics :data:`STAT_NAMES` (``rows``,
  ``null_fraction``, ``min``, ``max``, ``mean``, ``distinct_count``), e.g.
  ``null_fraction < 0.01`` or ``rows > 0``. They hold when the expression is TRUE (NULL fails:
  ``mean > 0`` on a run whose values are all NULL has nothing to vouch for).

An expression may not mix the two. A failed ``error`` check fails the run; a failed ``warn``
check is recorded and the run still succeeds. Expressions are evaluated by DuckDB, the embedded
engine, over the written rows (an Arrow table), so they mean what SQL means: see
:mod:`fsql.compute.checks`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import sqlglot
import sqlglot.errors
from sqlglot import exp

from fsql.errors import DefinitionError, Location, Problem

Severity = Literal["error", "warn"]

#: the run statistics a check may read; also what :func:`value_statistics` computes
STAT_NAMES: tuple[str, ...] = ("rows", "null_fraction", "min", "max", "mean", "distinct_count")
#: the per-row name a row check reads
ROW_NAME = "value"


@dataclass(frozen=True, kw_only=True)
class Check:
    """One declared expectation on a feature's materialized values."""

    name: str
    feature: str
    #: a SQL boolean expression (fsql/PostgreSQL syntax) over ``value`` or over the statistics
    expression: str
    severity: Severity = "error"
    description: str | None = None
    location: Location | None = field(default=None, compare=False, repr=False)

    @property
    def kind(self) -> Literal["row", "statistics"]:
        return _classify(self)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "feature": self.feature,
            "expression": self.expression,
            "severity": self.severity,
            "description": self.description,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Check:
        return cls(
            name=data["name"],
            feature=data["feature"],
            expression=data["expression"],
            severity=data.get("severity", "error"),
            description=data.get("description"),
        )


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check on one run. ``observed`` says what was seen (the statistics
    read, or how many rows failed and a few of their values)."""

    check: Check
    passed: bool
    observed: Mapping[str, Any]
    error: str | None = None

    @property
    def failed_run(self) -> bool:
        """True when this result fails the run (a failed check of severity ``error``)."""
        return not self.passed and self.check.severity == "error"

    def to_json(self) -> dict[str, Any]:
        return {
            **self.check.to_json(),
            "passed": self.passed,
            "observed": dict(self.observed),
            "error": self.error,
        }

    def summary(self) -> str:
        verdict = "passed" if self.passed else ("FAILED" if self.failed_run else "warned")
        seen = json.dumps(dict(self.observed), default=str, sort_keys=True)
        return f"check {self.check.name} on {self.check.feature} ({self.check.expression}) {verdict}; observed {seen}"


def expression_names(expression: str) -> set[str]:
    """The column names an expression reads, lower-cased (parsed, never pattern-matched)."""
    tree = sqlglot.parse_one(expression, read="postgres")
    return {c.name.lower() for c in tree.find_all(exp.Column)}


def _classify(check: Check) -> Literal["row", "statistics"]:
    names = expression_names(check.expression)
    unknown = sorted(names - {ROW_NAME, *STAT_NAMES})
    if unknown:
        raise DefinitionError(
            Problem(
                f"check {check.name} on {check.feature} reads {', '.join(unknown)}; a check may "
                f"read {ROW_NAME} (each written value) or the run statistics "
                f"{', '.join(STAT_NAMES)}",
                check.location,
                code="check",
            )
        )
    if ROW_NAME in names and names - {ROW_NAME}:
        raise DefinitionError(
            Problem(
                f"check {check.name} on {check.feature} mixes {ROW_NAME} with run statistics "
                f"({', '.join(sorted(names - {ROW_NAME}))}); split it into a row check and a "
                "statistics check",
                check.location,
                code="check",
            )
        )
    return "row" if ROW_NAME in names else "statistics"


def validate_checks(checks: Iterable[Check]) -> None:
    """Raise :class:`DefinitionError` listing every check whose expression is unusable."""
    problems: list[Problem] = []
    for check in checks:
        if check.severity not in ("error", "warn"):
            problems.append(Problem(
                f"check {check.name}: severity must be 'error' or 'warn', not {check.severity!r}",
                check.location, code="check"))  # fmt: skip
            continue
        try:
            _classify(check)
        except DefinitionError as exc:
            problems.extend(exc.problems)
        except sqlglot.errors.ParseError as exc:
            problems.append(Problem(
                f"check {check.name}: {check.expression!r} is not a SQL expression ({exc})",
                check.location, code="check"))  # fmt: skip
    if problems:
        raise DefinitionError(problems)


def checks_from_definitions(definitions: Iterable[Any]) -> list[Check]:
    """The checks declared in the registry's definitions: ``CREATE CHECK`` definitions (kind
    ``"check"``) and each feature's inline ``EXPECT (...)`` (``FeatureDef.expect``), in order.

    Read by attribute so it works with whatever the dialect stores: an ``expect`` item is
    ``(expression, severity)`` or a plain expression (severity ``error``).
    """
    checks: list[Check] = []
    for definition in definitions:
        kind = getattr(definition, "kind", None)
        if kind == "check":
            checks.append(
                Check(
                    name=definition.name,
                    feature=definition.feature,
                    expression=definition.expression,
                    severity=getattr(definition, "severity", "error") or "error",
                    description=getattr(definition, "description", None),
                    location=getattr(definition, "location", None),
                )
            )
        elif kind == "feature":
            for number, item in enumerate(getattr(definition, "expect", ()) or (), start=1):
                expression, severity = (item, "error") if isinstance(item, str) else item
                checks.append(
                    Check(
                        name=f"{definition.name}_expect_{number}",
                        feature=definition.name,
                        expression=expression,
                        # checked by validate_checks, which names a bad severity
                        severity=cast(Severity, str(severity).lower()),
                        location=getattr(definition, "location", None),
                    )
                )
    return checks
