"""A CSV source value that does not match its declared type is reported with the file, the
1-based line and the column's name and declared type (pyarrow says "column #1", from 0),
never the value itself (a source file's content stays out of messages: issue 15)."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import Run
from tests.pipelines._repo import make_repo

DEFINITIONS = """
CREATE ENTITY user KEY (user_id VARCHAR);
CREATE SOURCE pay (user_id VARCHAR, amount DOUBLE, ts TIMESTAMP)
  FROM 'data/pay.csv' FORMAT CSV EVENT TIME ts;
CREATE FEATURE spend_2d ENTITY user WINDOW '2 days' AS SELECT user_id, SUM(amount) FROM pay;
"""


def test_csv_error_names_line_and_column(tmp_path: Path, run: Run) -> None:
    repo = tmp_path / "repo"
    make_repo(repo, DEFINITIONS)
    (repo / "data" / "pay.csv").write_text(
        "user_id,amount,ts\n"
        "a,1.5,2024-01-01 01:00:00\n"
        '"b\nwith a line break",2.0,2024-01-01 02:00:00\n'  # one row on lines 3-4
        "c,oops,2024-01-01 03:00:00\n"  # line 5
    )
    result = run("materialize", "--start", "2024-01-01", "--end", "2024-01-03", repo=repo,
                 ok=False)  # fmt: skip
    message = " ".join(result.stderr.split())
    assert (
        "file data/pay.csv, line 5, column amount holds a value that is not a valid DOUBLE "
        "(declared amount DOUBLE); fix the data or the declared type"
    ) in message, message
    assert "#1" not in message and "oops" not in message
