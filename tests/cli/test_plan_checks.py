"""Definition checks that `fsql plan` makes before anything is applied or materialized
(issue 16): each problem at its file:line:col, saying what to write instead."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import Run

HOURLY_DERIVED = """
CREATE FEATURE user_avg_purchase_hourly
  ENTITY user
  TYPE DOUBLE
  EVERY '1 hour'
AS SELECT user_id, user_purchase_sum_30d / NULLIF(user_purchase_count_30d, 0) FROM user;
"""


def test_derived_every_not_a_multiple_of_its_inputs_fails_plan(
    run: Run, example_repo: Path
) -> None:
    (example_repo / "features" / "hourly.sql").write_text(HOURLY_DERIVED)
    result = run("plan", repo=example_repo, ok=False)
    err = result.stderr
    assert err.startswith("Error: ")
    line = next(x for x in err.splitlines() if x.startswith("features/hourly.sql:"))
    assert line.startswith("features/hourly.sql:5:9:"), line
    assert "EVERY '1 hour' of derived feature user_avg_purchase_hourly" in line
    assert "multiple of '1 day' (the EVERY of input user_purchase" in line
    assert "write EVERY '1 day'" in line
    assert "1:00:00" not in err and "Traceback" not in err
    assert run("apply", "--yes", repo=example_repo, ok=False).stderr.startswith("Error: ")
