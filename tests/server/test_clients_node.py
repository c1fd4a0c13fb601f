"""node-postgres (``pg``) and postgres.js (``postgres``) from npm, run with the machine's
Node.js: tests/server/node/clients.mjs does the same everyday work (lookups, parameters,
``IN ($1, $2)``, scans, offline reads, errors, temporary tables, postgres.js's list and insert
helpers) against fsql and against a real PostgreSQL 15 holding the same tables and rows; the
answers (column names, type OIDs, rows, SQLSTATEs) must be equal. ``make test`` installs the
packages pinned in tests/server/node/package.json (``npm ci``); the fixture does too when they
are missing. Known failures are strict xfails naming issue #14: one that starts passing fails
the run, so the list stays honest."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.server._differential import Pair, pair  # noqa: F401 - fixture

pytestmark = [pytest.mark.server, pytest.mark.postgres]

NODE_DIR = Path(__file__).parent / "node"

#: (client, operation) → why it fails today (fixes belong to issue #14's other parts)
KNOWN_FAILING: dict[tuple[str, str], str] = {}  # none left

OPERATIONS = {
    "pg": ["simple", "param", "in_list", "any_array", "scan_group_by", "offline",
           "sources_param", "error", "after_error", "temp_table", "types"],
    "postgres": ["simple", "param", "in_list", "scan_group_by", "offline", "sources_param",
                 "error", "after_error", "insert_helper"],
}


def ensure_node_modules() -> None:
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "Node.js and npm are needed (Debian: apt-get install nodejs npm)"
    if not (NODE_DIR / "node_modules" / "pg").exists() or \
            not (NODE_DIR / "node_modules" / "postgres").exists():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--prefer-offline"],
                       cwd=NODE_DIR, check=True, capture_output=True, timeout=300)


@pytest.fixture(scope="module")
def answers(pair: Pair) -> dict[tuple[str, str], dict]:  # noqa: F811
    """{(client, server): {operation: answer}} for both clients on both servers."""
    ensure_node_modules()
    servers = {"fsql": (pair.fsql.port, "fsql"), "postgres": (pair.pg_port, pair.pg_db)}
    out = {}
    for client in OPERATIONS:
        for server, (port, database) in servers.items():
            run = subprocess.run(
                ["node", str(NODE_DIR / "clients.mjs"), client, "127.0.0.1", str(port),
                 database, "tester"],
                capture_output=True, text=True, timeout=120,
            )
            assert run.returncode == 0, f"{client} on {server}: {run.stderr}"
            out[client, server] = json.loads(run.stdout)
    return out


CASES = [
    pytest.param(client, operation, id=f"{client}-{operation}",
                 marks=[pytest.mark.xfail(strict=True, reason=KNOWN_FAILING[client, operation])]
                 if (client, operation) in KNOWN_FAILING else [])
    for client, operations in OPERATIONS.items() for operation in operations
]


@pytest.mark.parametrize(("client", "operation"), CASES)
def test_node_client_equals_postgres(answers: dict, client: str, operation: str) -> None:
    ours = answers[client, "fsql"][operation]
    theirs = answers[client, "postgres"][operation]
    assert "error" not in theirs or operation == "error", theirs  # the reference must work
    assert ours == theirs


def test_node_clients_ran_every_operation(answers: dict) -> None:
    for (client, _server), result in answers.items():
        assert sorted(result) == sorted(OPERATIONS[client])
