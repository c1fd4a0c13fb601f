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

# --- later steps go here (materialize, serve, query with psql) ---
