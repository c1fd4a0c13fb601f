#!/usr/bin/env bash
# Install the system packages the tests need, only those that are missing (Debian, apt-get).
# The tests start every service themselves (initdb/pg_ctl, redis-server, ...); this only makes
# sure the programs exist: redis-server, PostgreSQL 15 (initdb, pg_ctl, pgbench), psql, pgjdbc
# Java 17 (the JDBC client test and Spark), Node.js, psqlODBC/unixODBC, tmux and wrk (the server benchmark's HTTP load). Extra package names may be given as arguments
# (the Makefile passes python3-venv when `python3 -m venv` fails).
set -euo pipefail

missing=("$@")
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
[ -x /usr/lib/postgresql/15/bin/initdb ] || missing+=(postgresql)
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
[ -f /usr/share/java/postgresql.jar ] || missing+=(libpostgresql-jdbc-java)
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
command -v javac >/dev/null 2>&1 || missing+=(openjdk-17-jdk-headless)
# Node.js and npm: node-postgres and postgres.js (tests/server/test_clients_node.py)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
# psqlODBC through unixODBC (tests/server/test_clients_odbc.py; pyodbc is in the test extra)
dpkg -s odbc-postgresql >/dev/null 2>&1 || missing+=(odbc-postgresql)
dpkg -s unixodbc >/dev/null 2>&1 || missing+=(unixodbc)
# tmux drives pgcli as a person would (tests/server/test_clients_pgcli.py)
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
# the HTTP load generator bench/server.py drives Feast's feature server with
command -v wrk >/dev/null 2>&1 || missing+=(wrk)

if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: all present"
  exit 0
fi

echo "system packages: installing ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  echo "error: need root (or sudo) to run: apt-get install -y ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -q
"${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
