"""Airflow's REST API (v2, Airflow 3), for the state of a pipeline's latest DAG runs.

Used when ``[scheduler] airflow_url`` is configured (``FSQL_AIRFLOW_URL``); otherwise
:mod:`fsql.pipelines.manager` reads fsql's own run records. Authentication follows Airflow 3:
``POST /auth/token`` with ``airflow_username`` and the password from the environment variable
named by ``airflow_password_env`` gives a JWT sent as a bearer token. Only the standard library
is used (``urllib``), so fsql needs no HTTP dependency for this.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any

from fsql.errors import AirflowApiError, ConfigError

if TYPE_CHECKING:
    from fsql.config import Config


class AirflowClient:
    """A small client for the endpoints fsql needs (DAG runs and their task instances)."""

    def __init__(
        self,
        url: str,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
    ):
        self.url = url.rstrip("/")
        self.username = username
        self.password = password
        self.timeout = timeout
        self._token: str | None = None

    @classmethod
    def from_config(cls, config: Config) -> AirflowClient | None:
        """A client for ``config.scheduler.airflow_url``, or None when it is not set."""
        scheduler = config.scheduler
        if not scheduler.airflow_url:
            return None
        password = None
        if scheduler.airflow_password_env:
            password = os.environ.get(scheduler.airflow_password_env)
            if password is None:
                raise ConfigError(
                    f"[scheduler] airflow_password_env names {scheduler.airflow_password_env}, "
                    "which is not set in the environment"
                )
        return cls(scheduler.airflow_url, scheduler.airflow_username, password)

    def _request(self, method: str, path: str, body: Any = None, auth: bool = True) -> Any:
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if auth:
            headers["Authorization"] = f"Bearer {self.token()}"
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise AirflowApiError(
                f"Airflow API {method} {self.url}{path} answered {exc.code}: {detail}"
            ) from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise AirflowApiError(
                f"cannot reach Airflow's API at {self.url} ({exc}); check [scheduler] "
                "airflow_url, or unset it to report fsql's own run records"
            ) from None

    def token(self) -> str:
        """A JWT from ``/auth/token`` (fetched once per client)."""
        if self._token is None:
            body = {"username": self.username, "password": self.password} if self.username else {}
            answer = self._request("POST", "/auth/token", body, auth=False)
            self._token = str(answer["access_token"])
        return self._token

    def dag_runs(self, dag_id: str, limit: int = 5) -> list[dict[str, Any]]:
        """The most recently started DAG runs of ``dag_id`` (newest first) with their task
        instances' states."""
        quoted = urllib.parse.quote(dag_id, safe="")
        query = urllib.parse.urlencode({"limit": limit, "order_by": "-start_date"})
        answer = self._request("GET", f"/api/v2/dags/{quoted}/dagRuns?{query}")
        runs = []
        for run in answer.get("dag_runs", []):
            run_id = urllib.parse.quote(run["dag_run_id"], safe="")
            tis = self._request("GET", f"/api/v2/dags/{quoted}/dagRuns/{run_id}/taskInstances")
            runs.append({
                "run_id": run["dag_run_id"],
                "state": run.get("state"),
                "run_type": run.get("run_type"),
                "data_interval_start": run.get("data_interval_start"),
                "data_interval_end": run.get("data_interval_end"),
                "started_at": run.get("start_date"),
                "ended_at": run.get("end_date"),
                "tasks": {
                    ti["task_id"]: {"state": ti.get("state"), "try_number": ti.get("try_number")}
                    for ti in tis.get("task_instances", [])
                },
            })  # fmt: skip
        return runs
