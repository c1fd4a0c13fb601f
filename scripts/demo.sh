#!/usr/bin/env bash
# The README's main command (`make demo`): generate the example data and run fsql on the example
# repo sql_features/ with the embedded defaults (SQLite registry, local offline store).
#
# Each step is one `step` call; later features append their steps at the end (materialize,
# serve, psql). Runs from any folder; VENV selects the virtualenv (default .venv).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV=${VENV:-.venv}
PY="$VENV/bin/python"
FSQL=("$VENV/bin/fsql" --repo sql_features)

step() {
  if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then
    printf '\n\033[1m==> %s\033[0m\n' "$*"
  else
    printf '\n==> %s\n' "$*"
  fi
}

step "Generate the example data (sql_features/data/)"
"$PY" sql_features/generate.py

step "fsql plan: what apply would change"
"${FSQL[@]}" plan

step "fsql apply: version the definitions in the registry"
"${FSQL[@]}" apply --yes

step "fsql ls: what the registry holds"
"${FSQL[@]}" ls

step "fsql materialize: daily feature timelines for the data's 90 days (up to today) into the offline store"
"${FSQL[@]}" materialize --start -90d --end now

step "fsql get: current values from the online store (the data runs up to today: fresh)"
"${FSQL[@]}" get user_plan user_lifetime_purchase_count user_purchase_sum_30d --key u00001 --key u00021

step "fsql training-set: point-in-time join of labels to the fraud_model_v1 features"
"$PY" - <<'PY'
import pyarrow as pa, pyarrow.parquet as pq
from datetime import datetime, timedelta, timezone
today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
spine = pa.table({  # labelled events 59 days ago, 16 days ago and this morning
    "user_id": ["u00001", "u00001", "u00021"],
    "event_time": [today - timedelta(days=59, hours=12), today - timedelta(days=16),
                   today + timedelta(hours=1)],
    "label": [0, 1, 0],
})
pq.write_table(spine, "sql_features/.fsql/demo_spine.parquet")
PY
"${FSQL[@]}" training-set --spine sql_features/.fsql/demo_spine.parquet --set fraud_model_v1 \
  --out sql_features/.fsql/demo_training.parquet
"$PY" -c "import duckdb; duckdb.sql(\"FROM 'sql_features/.fsql/demo_training.parquet'\").show(max_width=250)"

step "fsql serve + psql: query features over the PostgreSQL protocol"
command -v psql >/dev/null 2>&1 || bash scripts/system-deps.sh
log=$(mktemp)
"${FSQL[@]}" serve --port 0 >"$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 1 200); do
  grep -q "fsql serving on" "$log" && break
  kill -0 $server 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.1
done
port=$(sed -n 's/.*fsql serving on .*:\([0-9][0-9]*\).*/\1/p' "$log" | head -1)
echo "fsql serve is listening on 127.0.0.1:$port"
psql -X -h 127.0.0.1 -p "$port" -U demo -d fsql -c \
  "SELECT user_id, user_plan, user_lifetime_purchase_count, user_purchase_sum_30d FROM features.user WHERE user_id IN ('u00001', 'u00021') ORDER BY user_id"
psql -X -h 127.0.0.1 -p "$port" -U demo -d fsql -c \
  "SELECT feature_time, user_purchase_sum_30d FROM offline.user_purchase_sum_30d WHERE user_id = 'u00001' ORDER BY feature_time DESC LIMIT 3"

