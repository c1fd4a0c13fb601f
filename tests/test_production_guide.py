"""docs/production.md runs as written: every fenced ``sh`` block starting with ``# step`` is run,
in order, in one bash shell, against a real PostgreSQL, a moto S3 server, redis-server and Spark
in local mode (the variables the guide names are set to those servers)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "production.md"


def guide_steps(text: str) -> list[str]:
    """The guide's runnable blocks: fenced ``sh`` blocks whose first line is ``# step...``."""
    steps, block, inside = [], [], False
    for line in text.splitlines():
        if not inside and line.strip() == "```sh":
            inside, block = True, []
        elif inside and line.strip() == "```":
            inside = False
            if block and block[0].startswith("# step"):
                steps.append("\n".join(block))
        elif inside:
            block.append(line)
    return steps


def test_the_guide_has_its_steps() -> None:
    names = [s.splitlines()[0] for s in guide_steps(GUIDE.read_text())]
    assert names == [
        "# step: a repo on the embedded defaults",
        "# step: a UTF-8 database for the registry",
        "# step: move the registry",
        "# step: the production fsql.toml",
        "# step: materialize on Spark into S3, serve from Redis",
        "# step: a pipeline for the model's features",
        "# step: clean old versions' data",
    ]


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.s3
@pytest.mark.spark
def test_the_production_guide_runs(
    tmp_path: Path, postgres_url: str, redis_server: Any, s3_endpoint: Any
) -> None:
    import psycopg

    redis_server.flush()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS fsql_registry WITH (FORCE)")
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PG_ADMIN_URL": postgres_url,
        "PG_URL": postgres_url.rsplit("/", 1)[0],
        "REDIS_URL": redis_server.url,
        "BUCKET": s3_endpoint.bucket,
        "S3_ENDPOINT": s3_endpoint.endpoint_url,
        "SPARK_MASTER": "local[1]",
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "NO_COLOR": "1",
        "COLUMNS": "200",
    }
    for var in ("FSQL_REPO", "FSQL_REGISTRY_URL", "FSQL_ENGINE", "FSQL_ONLINE_URL"):
        env.pop(var, None)
    script = "set -euo pipefail\n" + "\n".join(
        f"echo {shlex.quote('=== ' + s.splitlines()[0][2:])}\n{s}"
        for s in guide_steps(GUIDE.read_text())
    )
    try:
        done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=900)  # fmt: skip
        out = done.stdout
        assert done.returncode == 0, out + done.stderr
        steps = {part.split("\n", 1)[0]: part for part in out.split("=== ")[1:]}
        # the registry moved: the feature set is listed from PostgreSQL
        assert "starter_model" in steps["step: move the registry"]
        # Spark wrote the timeline to S3, Redis serves the value
        served = steps["step: materialize on Spark into S3, serve from Redis"]
        (row,) = json.loads(served[served.index("[") : served.index("]") + 1])
        assert row["user_id"] == "u00001" and isinstance(row["user_purchase_sum_30d"], float)
        assert any(k.startswith("offline/feature=user_purchase_sum_30d/version=1/")
                   for k in s3_endpoint.keys(""))  # fmt: skip
        assert "Created pipeline fsql_starter_model" in steps[
            "step: a pipeline for the model's features"
        ]
        repo = tmp_path / "shop"
        (plan_file,) = (repo / "dags").glob("fsql_starter_model.plan-*.json")
        plan = json.loads(plan_file.read_text())
        assert plan["repo"] == ".." and plan["engine"] == "spark"
        assert plan["config"]["registry"]["url"] == env["PG_URL"] + "/fsql_registry"
        assert plan_file.stat().st_mode & 0o044 == 0o044
        with psycopg.connect(env["PG_URL"] + "/fsql_registry") as conn:
            (encoding,) = conn.execute(
                "SELECT pg_encoding_to_char(encoding) FROM pg_database "
                "WHERE datname = current_database()"
            ).fetchone()
            assert encoding == "UTF8"
            runs = conn.execute("SELECT count(*) FROM fsql_runs WHERE engine = 'spark'").fetchone()
            assert runs[0] >= 1
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS fsql_registry WITH (FORCE)")
