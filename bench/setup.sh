#!/usr/bin/env bash
# Creates bench/.venv-feast: Feast (from PyPI) with its DuckDB offline store and Redis online store, in its own venv so
# that its pins (pandas, pyarrow, numpy ...) never touch fsql's environment. Idempotent.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv-feast"
feast_version="${FEAST_VERSION:-0.67.0}"
python="${PYTHON:-python3.11}"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import feast, duckdb, ibis, redis" 2>/dev/null; then
    echo "bench/.venv-feast ready: feast $("$venv/bin/python" -c 'import feast; print(feast.__version__)')"
    exit 0
fi
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet "feast[duckdb,redis]==$feast_version"
"$venv/bin/python" -c "import feast; print('installed feast', feast.__version__)"
# The serving benchmarks (bench/online.py, bench/server.py) also need Feast's Redis online store.
if ! "$venv/bin/python" -c "import redis" 2>/dev/null; then
    "$venv/bin/pip" install --quiet "feast[duckdb,redis]==$feast_version"
fi
