"""One configuration model for fsql, whatever it is read from.

Sources, lowest precedence first: built-in embedded defaults (everything under the repo's
``.fsql/``), the repo's ``fsql.toml``, ``FSQL_*`` environment variables, and explicit
overrides. The original design's config dict (``metadata_config``, ``online_store_config``,
``offline_store_config``, ``compute_config``) maps onto the same model via
:func:`config_from_design_dict`. Unknown keys are errors, never silently ignored.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fsql.errors import ConfigError

CONFIG_FILE = "fsql.toml"
STATE_DIR = ".fsql"


@dataclass(frozen=True)
class RegistryConfig:
    #: ``sqlite:///path`` (relative paths are relative to the repo) or ``postgresql://...``
    url: str = f"sqlite:///{STATE_DIR}/registry.db"


@dataclass(frozen=True)
class OfflineStoreConfig:
    #: a directory (relative to the repo) or ``s3://bucket/prefix``
    uri: str = f"{STATE_DIR}/offline"
    s3_endpoint_url: str | None = None
    region: str | None = None


@dataclass(frozen=True)
class OnlineStoreConfig:
    #: ``sqlite:///path`` or ``redis://host:port/db``
    url: str = f"sqlite:///{STATE_DIR}/online.db"
    #: seconds a read or write may wait for the store before failing
    timeout: float = 1.0
    #: rows per write batch when materializing
    batch_size: int = 10_000


@dataclass(frozen=True)
class ComputeConfig:
    engine: Literal["duckdb", "spark"] = "duckdb"
    spark_master: str = "local[2]"
    executor_memory: str | None = None
    #: DuckDB memory limit, e.g. "4GB" (None = DuckDB's default)
    memory_limit: str | None = None
    threads: int | None = None


@dataclass(frozen=True)
class ServerUser:
    name: str
    #: a SCRAM-SHA-256 verifier or an md5 hash ("md5" + md5(password + user)); never plain text
    password_hash: str | None = None
    #: may run CREATE/DROP over the wire
    can_define: bool = False


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 5433
    #: trust (no password; only allowed on loopback unless forced), cleartext, md5, scram-sha-256
    auth: Literal["trust", "cleartext", "md5", "scram-sha-256"] = "trust"
    users: tuple[ServerUser, ...] = ()
    tls_cert: str | None = None
    tls_key: str | None = None
    max_connections: int = 100
    #: seconds; 0 disables
    idle_timeout: float = 0
    statement_timeout: float = 300
    workers: int = 1
    metrics_port: int | None = None


@dataclass(frozen=True)
class SchedulerConfig:
    dags_folder: str | None = None
    airflow_url: str | None = None
    airflow_username: str | None = None
    airflow_password_env: str | None = None


@dataclass(frozen=True)
class Config:
    """The whole configuration. ``repo`` is the feature repo's root directory."""

    repo: Path = field(default_factory=Path.cwd)
    registry: RegistryConfig = field(default_factory=RegistryConfig)
    offline_store: OfflineStoreConfig = field(default_factory=OfflineStoreConfig)
    online_store: OnlineStoreConfig = field(default_factory=OnlineStoreConfig)
    compute: ComputeConfig = field(default_factory=ComputeConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)

    @property
    def state_dir(self) -> Path:
        return self.repo / STATE_DIR

    def resolve_path(self, path: str) -> str:
        """A path from the config or a definition, made absolute against the repo root
        (URIs such as ``s3://`` are returned unchanged)."""
        if "://" in path or os.path.isabs(path):
            return path
        return str((self.repo / path).resolve())

    def resolve_url(self, url: str) -> str:
        """``sqlite:///relative`` → ``sqlite:///absolute`` against the repo; others unchanged."""
        if url.startswith("sqlite:///"):
            return "sqlite:///" + self.resolve_path(url[len("sqlite:///") :])
        return url

    def replace(self, **sections: Any) -> Config:
        return dataclasses.replace(self, **sections)


_SECTIONS = {
    "registry": RegistryConfig,
    "offline_store": OfflineStoreConfig,
    "online_store": OnlineStoreConfig,
    "compute": ComputeConfig,
    "server": ServerConfig,
    "scheduler": SchedulerConfig,
}

#: environment variable → (section, key)
ENV_VARS = {
    "FSQL_REGISTRY_URL": ("registry", "url"),
    "FSQL_OFFLINE_URI": ("offline_store", "uri"),
    "FSQL_S3_ENDPOINT_URL": ("offline_store", "s3_endpoint_url"),
    "FSQL_S3_REGION": ("offline_store", "region"),
    "FSQL_ONLINE_URL": ("online_store", "url"),
    "FSQL_ONLINE_TIMEOUT": ("online_store", "timeout"),
    "FSQL_ENGINE": ("compute", "engine"),
    "FSQL_SPARK_MASTER": ("compute", "spark_master"),
    "FSQL_SERVER_HOST": ("server", "host"),
    "FSQL_SERVER_PORT": ("server", "port"),
    "FSQL_DAGS_FOLDER": ("scheduler", "dags_folder"),
    "FSQL_AIRFLOW_URL": ("scheduler", "airflow_url"),
}


def _build_section(name: str, cls: type, values: Mapping[str, Any], origin: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(
            f"{origin}: unknown key(s) {', '.join(unknown)} in [{name}]; "
            f"known keys are: {', '.join(fields)}"
        )
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        default = getattr(cls(), key)
        if key == "users":
            if not isinstance(value, list):
                raise ConfigError(f"{origin}: [server] users must be a list of tables")
            users = []
            for u in value:
                users.append(_build_section("server.users", ServerUser, u, origin))
                if "password" in u:  # pragma: no cover - rejected by _build_section already
                    raise ConfigError("plain passwords are not allowed")
            value = tuple(users)
        elif isinstance(default, bool):
            value = _coerce_bool(value, f"{origin}: [{name}] {key}")
        elif isinstance(default, int) and not isinstance(value, bool):
            value = _coerce(int, value, f"{origin}: [{name}] {key}")
        elif isinstance(default, float):
            value = _coerce(float, value, f"{origin}: [{name}] {key}")
        kwargs[key] = value
    section = cls(**kwargs)
    if name == "compute" and section.engine not in ("duckdb", "spark"):
        raise ConfigError(f"{origin}: [compute] engine must be 'duckdb' or 'spark', not {section.engine!r}")
    return section


def _coerce(kind: type, value: Any, where: str) -> Any:
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where} must be a {kind.__name__}, not {value!r}") from None


def _coerce_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("1", "true", "yes", "on"):
        return True
    if str(value).lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{where} must be true or false, not {value!r}")


def config_from_mapping(
    data: Mapping[str, Any], repo: Path | str | None = None, origin: str = "config"
) -> Config:
    """Build a :class:`Config` from ``fsql.toml``-shaped data (sections of keys)."""
    unknown = sorted(set(data) - set(_SECTIONS))
    if unknown:
        raise ConfigError(
            f"{origin}: unknown section(s) {', '.join(unknown)}; "
            f"known sections are: {', '.join(_SECTIONS)}"
        )
    sections = {
        name: _build_section(name, cls, data.get(name, {}), origin)
        for name, cls in _SECTIONS.items()
    }
    return Config(repo=Path(repo or Path.cwd()).resolve(), **sections)


def _merge(base: dict[str, dict[str, Any]], extra: Mapping[str, Mapping[str, Any]]) -> None:
    for section, values in extra.items():
        base.setdefault(section, {}).update(values)


def load_config(
    repo: Path | str | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    env: Mapping[str, str] | None = None,
) -> Config:
    """Read ``fsql.toml`` from ``repo`` (if present), apply ``FSQL_*`` variables, then
    ``overrides`` (``{"section": {"key": value}}``)."""
    repo_path = Path(repo or os.environ.get("FSQL_REPO") or Path.cwd()).resolve()
    data: dict[str, dict[str, Any]] = {}
    path = repo_path / CONFIG_FILE
    if path.exists():
        try:
            with path.open("rb") as fh:
                _merge(data, tomllib.load(fh))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        origin = str(path)
    else:
        origin = "defaults"
    env = os.environ if env is None else env
    for var, (section, key) in ENV_VARS.items():
        if env.get(var):
            data.setdefault(section, {})[key] = env[var]
    if overrides:
        _merge(data, overrides)
    return config_from_mapping(data, repo_path, origin)


def config_from_design_dict(design: Mapping[str, Any], repo: Path | str | None = None) -> Config:
    """Map the original design document's config dict onto :class:`Config`.

    ``metadata_config.database_url`` → registry URL; ``online_store_config.host/port[/db]`` →
    Redis; ``offline_store_config.bucket/region[/prefix/endpoint_url]`` → S3;
    ``compute_config.spark_master/executor_memory`` → the Spark engine.
    """
    known = {"metadata_config", "online_store_config", "offline_store_config", "compute_config"}
    fsql_sections = set(_SECTIONS)
    unknown = sorted(set(design) - known - fsql_sections)
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {', '.join(unknown)}; expected {', '.join(sorted(known))}"
        )
    data: dict[str, dict[str, Any]] = {k: dict(v) for k, v in design.items() if k in fsql_sections}
    meta = design.get("metadata_config") or {}
    if "database_url" in meta:
        data.setdefault("registry", {})["url"] = meta["database_url"]
    online = design.get("online_store_config") or {}
    if online:
        if "url" in online:
            url = online["url"]
        else:
            url = f"redis://{online.get('host', 'localhost')}:{online.get('port', 6379)}/{online.get('db', 0)}"
        data.setdefault("online_store", {})["url"] = url
        if "timeout" in online:
            data["online_store"]["timeout"] = online["timeout"]
    offline = design.get("offline_store_config") or {}
    if offline:
        if "bucket" in offline:
            prefix = str(offline.get("prefix", "")).strip("/")
            uri = f"s3://{offline['bucket']}" + (f"/{prefix}" if prefix else "")
        else:
            uri = offline.get("uri") or offline.get("path") or OfflineStoreConfig.uri
        sec = data.setdefault("offline_store", {})
        sec["uri"] = uri
        if offline.get("region"):
            sec["region"] = offline["region"]
        if offline.get("endpoint_url"):
            sec["s3_endpoint_url"] = offline["endpoint_url"]
    compute = design.get("compute_config") or {}
    if compute:
        sec = data.setdefault("compute", {})
        if "spark_master" in compute:
            sec["engine"] = compute.get("engine", "spark")
            sec["spark_master"] = compute["spark_master"]
        if "executor_memory" in compute:
            sec["executor_memory"] = compute["executor_memory"]
        if "engine" in compute:
            sec["engine"] = compute["engine"]
    repo_path = Path(repo or os.environ.get("FSQL_REPO") or Path.cwd())
    return config_from_mapping(data, repo_path, origin="config dict")
