"""No store password leaves fsql: a password planted in the online store's URL (passed the
documented way, ``FSQL_ONLINE_URL``) appears in none of the server's errors (58000, XX000
WRONGTYPE), EXPLAIN, run records, CLI output, or a pipeline's plan in the DAGs folder."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from fsql.cli import cli
from fsql.errors import OnlineStoreUnavailable
from fsql.pipelines.artifact import load_artifact
from fsql.pipelines.tasks import run_feature_interval
from fsql.secrets import redact, without_password
from fsql.stores.online.redis import entity_hash_key
from tests.api._shop import DAY, make_shop, today, write_shop
from tests.server.conftest import FsqlServer, write_config

pytestmark = [pytest.mark.server, pytest.mark.redis, pytest.mark.timeout(300)]

PASSWORD = "Planted-s3cret-9f2e"


def _redis(port: int, *words: str) -> bytes:
    """One command (after AUTH) on a fresh connection; the raw reply."""
    payload = b"".join(
        b"*%d\r\n" % len(command)
        + b"".join(b"$%d\r\n%s\r\n" % (len(w), w.encode()) for w in command)
        for command in (("AUTH", PASSWORD), words)
    )
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(payload)
        reply = b""
        while reply.count(b"\r\n") < 2:
            reply += sock.recv(4096)
    assert reply.startswith(b"+OK\r\n"), reply
    return reply[5:]


def test_redact_and_without_password() -> None:
    assert (
        redact(f"Redis at redis://:{PASSWORD}@h:1/0 said no")
        == "Redis at redis://:***@h:1/0 said no"
    )
    assert redact(f"postgresql://fsql:{PASSWORD}@db/x?password={PASSWORD}&a=1") == (
        "postgresql://fsql:***@db/x?password=***&a=1"
    )
    assert redact("sqlite:////tmp/x.db and redis://h/0") == "sqlite:////tmp/x.db and redis://h/0"
    assert without_password(f"redis://:{PASSWORD}@h:1/0") == "redis://h:1/0"
    assert without_password(f"postgresql://u:{PASSWORD}@db/x?sslmode=require") == (
        "postgresql://db/x?sslmode=require"
    )


def test_the_online_store_password_appears_nowhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    from fsql import SyncFeatureStore
    from tests.api.test_feature_store import ORDERS_SQL
    from tests.services.redis import RedisServer

    (tmp_path / "redis").mkdir()
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    with socket.create_connection(("127.0.0.1", redis.port), timeout=5) as sock:
        sock.sendall(f"CONFIG SET requirepass {PASSWORD}\r\n".encode())
        assert sock.recv(64).startswith(b"+OK")
    monkeypatch.setenv("FSQL_ONLINE_URL", f"redis://:{PASSWORD}@127.0.0.1:{redis.port}/0")
    shop = make_shop(seed=5)
    repo = tmp_path / "repo"
    write_shop(shop, repo)
    write_config(repo, "[online_store]\ntimeout = 0.5\n")
    api = SyncFeatureStore(repo)
    server = None
    seen: dict[str, str] = {}  # every text a user or a file gets, by where it came from
    try:
        api.register(shop.sql("data/orders", "data/profiles"))
        api.register_feature(ORDERS_SQL)
        api.materialize(today() - DAY, today() + DAY)
        server = FsqlServer(repo).start()
        user = shop.users[0]
        lookup = f"SELECT user_orders FROM features.user WHERE user_id = '{user}'"
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            explain = "\n".join(r[0] for r in conn.execute("EXPLAIN " + lookup).fetchall())
            assert "redis://:***@127.0.0.1" in explain
            seen["EXPLAIN"] = explain
            # a key of the wrong type: Redis answers WRONGTYPE, the server XX000
            _redis(redis.port, "DEL", entity_hash_key("user", user))
            _redis(redis.port, "SET", entity_hash_key("user", user), "not a hash")
            with pytest.raises(psycopg.Error) as wrong:
                conn.execute(lookup)
            assert wrong.value.sqlstate == "XX000" and "WRONGTYPE" in str(wrong.value)
            seen["WRONGTYPE"] = str(wrong.value)
            redis.stop()
            with pytest.raises(psycopg.Error) as down:
                conn.execute(lookup)
            assert down.value.sqlstate == "58000" and "redis://:***@" in str(down.value)
            seen["58000"] = str(down.value)
            # the CLI with Redis down: its error, the run record it leaves, fsql status
            runner = CliRunner()
            failed = runner.invoke(
                cli,
                [
                    "--repo",
                    str(repo),
                    "materialize",
                    "user_orders",
                    "--start",
                    (today() - DAY).isoformat(),
                    "--end",
                    (today() + DAY).isoformat(),
                    "--force",
                ],
            )
            assert failed.exit_code == 1 and "Error: " in failed.output, failed.output
            seen["fsql materialize"] = failed.output
            dags = tmp_path / "dags"
            created = runner.invoke(
                cli,
                [
                    "--repo",
                    str(repo),
                    "pipeline",
                    "create",
                    "user_orders",
                    "--dags-folder",
                    str(dags),
                    "--start",
                    "2024-01-01",
                    "--json",
                ],
            )
            assert created.exit_code == 0, created.output
            seen["fsql pipeline create"] = created.output
            plans = list(dags.glob("*.json"))
            assert plans
            # a pipeline task takes the password from its worker's FSQL_ONLINE_URL, and its
            # run record keeps the error without it
            with pytest.raises(OnlineStoreUnavailable):
                run_feature_interval(
                    load_artifact(plans[0]), "user_orders", today() - DAY, today() + DAY, force=True
                )
            errors = conn.execute("SELECT error FROM fsql.runs WHERE error IS NOT NULL").fetchall()
            assert errors and "redis://:***@" in errors[0][0]
            seen["fsql.runs"] = "\n".join(e[0] for e in errors)
            status = runner.invoke(cli, ["--repo", str(repo), "status", "--json"])
            assert status.exit_code == 0, status.output
            seen["fsql status --json"] = status.output
        for path in dags.rglob("*"):
            if path.is_file():
                seen[str(path)] = path.read_text()
        plan = json.loads(plans[0].read_text())
        assert plan["config"]["online_store"]["url"] == f"redis://127.0.0.1:{redis.port}/0"
        seen["server log"] = "".join(server.output)
        leaks = [where for where, text in seen.items() if PASSWORD in text]
        assert not leaks, {where: seen[where] for where in leaks}
    finally:
        if server is not None:
            server.stop()
        api.close()
        redis.stop()
