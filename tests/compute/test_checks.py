"""Checks on run statistics and on written values, evaluated by DuckDB."""

from __future__ import annotations

import pyarrow as pa
import pytest

from fsql.compute.checks import evaluate_checks, value_statistics
from fsql.errors import DefinitionError
from fsql.language.checks import Check, checks_from_definitions, validate_checks


def test_statistics_match_a_plain_python_computation() -> None:
    values = [3.0, None, -1.5, 3.0, 10.0, None, 0.0]
    stats = value_statistics(pa.array(values, pa.float64()))
    present = [v for v in values if v is not None]
    assert stats["rows"] == len(values)
    assert stats["null_fraction"] == pytest.approx(values.count(None) / len(values))
    assert stats["min"] == min(present) and stats["max"] == max(present)
    assert stats["mean"] == pytest.approx(sum(present) / len(present))
    # HyperLogLog estimate: exact for a handful of values
    assert stats["distinct_count"] == len(set(present))


def test_statistics_of_text_values_and_of_nothing() -> None:
    stats = value_statistics(pa.array(["b", "a", None]))
    assert (stats["min"], stats["max"], stats["mean"]) == ("a", "b", None)
    empty = value_statistics(pa.array([], pa.float64()))
    assert empty["rows"] == 0 and empty["null_fraction"] is None and empty["min"] is None


def test_row_check_counts_failing_rows_and_ignores_nulls_like_sql_check() -> None:
    check = Check(name="not_negative", feature="f", expression="value >= 0")
    (result,) = evaluate_checks([check], pa.array([1.0, None, -2.0, -3.0, 4.0]))
    assert not result.passed and result.failed_run
    assert result.observed["failing_rows"] == 2
    assert result.observed["examples"] == [-3.0, -2.0]
    (ok,) = evaluate_checks([check], pa.array([1.0, None, 0.0]))
    assert ok.passed and ok.observed["failing_rows"] == 0


def test_statistics_checks_pass_fail_and_warn() -> None:
    values = pa.array([1.0, None, None, 4.0])  # null_fraction 0.5
    checks = [
        Check(name="few_nulls", feature="f", expression="null_fraction < 0.01"),
        Check(
            name="few_nulls_warn", feature="f", expression="null_fraction < 0.01", severity="warn"
        ),
        Check(name="some_rows", feature="f", expression="rows > 0 AND max <= 4"),
    ]
    failed, warned, passed = evaluate_checks(checks, values)
    assert (failed.passed, failed.failed_run) == (False, True)
    assert failed.observed == {"null_fraction": 0.5}
    assert (warned.passed, warned.failed_run) == (False, False)
    assert passed.passed and passed.observed == {"rows": 4, "max": 4.0}


def test_a_statistics_check_on_null_statistics_fails() -> None:
    (result,) = evaluate_checks(
        [Check(name="positive_mean", feature="f", expression="mean > 0")], pa.array([None, None])
    )
    assert not result.passed and result.observed == {"mean": None}


def test_validate_rejects_unknown_names_mixed_kinds_and_bad_severity() -> None:
    checks = [
        Check(name="typo", feature="f", expression="nul_fraction < 0.1"),
        Check(name="mixed", feature="f", expression="value > mean"),
        Check(name="sev", feature="f", expression="rows > 0", severity="fatal"),  # type: ignore[arg-type]
        Check(name="good", feature="f", expression="value BETWEEN 0 AND 1"),
    ]
    with pytest.raises(DefinitionError) as info:
        validate_checks(checks)
    messages = [p.message for p in info.value.problems]
    assert len(messages) == 3
    assert "reads nul_fraction" in messages[0] and "null_fraction" in messages[0]
    assert "mixes value with run statistics (mean)" in messages[1]
    assert "'error' or 'warn'" in messages[2]


def test_checks_from_definitions_reads_check_kinds_and_inline_expect() -> None:
    class CheckDef:
        kind = "check"
        name = "c1"
        feature = "f"
        expression = "value > 0"
        severity = "warn"
        description = "positive"

    class FeatureDef:
        kind = "feature"
        name = "f"
        expect = ("rows > 0", ("null_fraction < 0.5", "warn"))

    checks = checks_from_definitions([CheckDef(), FeatureDef()])
    assert [(c.name, c.expression, c.severity) for c in checks] == [
        ("c1", "value > 0", "warn"),
        ("f_expect_1", "rows > 0", "error"),
        ("f_expect_2", "null_fraction < 0.5", "warn"),
    ]
