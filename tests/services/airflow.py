"""A throwaway Airflow for tests: its own AIRFLOW_HOME in a temp dir with a migrated SQLite
metadata database, created once per session. Nothing assumes a running Airflow: tests run the
``airflow`` CLI as a subprocess (``airflow dags test DAG DATE`` needs no scheduler)::

    def test_run(airflow_env, tmp_path):
        dags = tmp_path / "dags"
        ...                                    # write DAG files into dags/
        result = airflow_env.run("dags", "test", "my_dag", "2024-01-05", dags_folder=dags)
        assert result.returncode == 0, result.output

``airflow_env.env(dags_folder)`` is the environment for any other subprocess that should see
this Airflow (e.g. one that builds a DagBag).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

#: the airflow console script of the interpreter running the tests
AIRFLOW_BIN = str(Path(sys.executable).with_name("airflow"))
#: the API user of the throwaway Airflow (simple auth manager, admin role)
API_USER, API_PASSWORD = "fsql", "fsql-test-password"


@dataclass(frozen=True)
class AirflowRun:
    returncode: int
    output: str


@dataclass(frozen=True)
class AirflowEnv:
    """A migrated Airflow home. ``env()`` gives the variables a subprocess needs to use it."""

    home: Path

    def env(self, dags_folder: Path | None = None, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        env.update(
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=f"{API_USER}:admin",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(self.home / "passwords.json"),
            AIRFLOW_HOME=str(self.home),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__UNIT_TEST_MODE="False",
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{self.home / 'airflow.db'}",
            AIRFLOW__CORE__DAGS_FOLDER=str(dags_folder or self.home / "dags"),
            # no periodic processes, no network: tests only run DAGs in-process
            AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
            AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT="120",
            NO_COLOR="1",
        )
        env.update(extra)
        return env

    def run(
        self, *args: str, dags_folder: Path | None = None, timeout: float = 300, **extra: str
    ) -> AirflowRun:
        """Run ``airflow ARGS`` with this home; stdout and stderr together in ``output``."""
        proc = subprocess.run(
            [AIRFLOW_BIN, *args],
            env=self.env(dags_folder, **extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
        return AirflowRun(proc.returncode, proc.stdout)


@pytest.fixture(scope="session")
def airflow_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowEnv]:
    """A fresh AIRFLOW_HOME with a migrated SQLite metadata DB, shared by the session."""
    home = tmp_path_factory.mktemp("airflow_home")
    (home / "dags").mkdir()
    (home / "passwords.json").write_text(json.dumps({API_USER: API_PASSWORD}))
    airflow = AirflowEnv(home)
    result = airflow.run("db", "migrate", timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{result.output[-4000:]}")
    yield airflow


@dataclass(frozen=True)
class AirflowApi:
    """A running ``airflow api-server`` of the session's Airflow home."""

    url: str
    username: str
    password: str


@pytest.fixture(scope="session")
def airflow_api(airflow_env: AirflowEnv) -> Iterator[AirflowApi]:
    """Airflow's API server (REST API v2) on a free loopback port, for the whole session."""
    import urllib.request

    from tests.services._util import free_port, wait_until

    port = free_port()
    log = (airflow_env.home / f"api-server-{port}.log").open("w")
    proc = subprocess.Popen(
        [AIRFLOW_BIN, "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        env=airflow_env.env(), stdout=log, stderr=subprocess.STDOUT,
        # its own process group: the server forks workers, which must stop with it
        start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"airflow api-server exited with {proc.returncode}")
        with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=2) as response:
            return bool(response.status == 200)

    try:
        wait_until(healthy, timeout=240, what=f"airflow api-server on port {port}")
        yield AirflowApi(url, API_USER, API_PASSWORD)
    finally:
        _stop_group(proc)
        log.close()


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group ``proc`` leads (the server and its workers), SIGKILL after 30 s."""
    import signal

    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        try:  # the leader is gone; give its workers the same signal once more
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
