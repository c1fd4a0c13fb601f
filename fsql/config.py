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
import types
import typing
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
    #: seconds a Spark job may run none of its tasks (no executor took them: workers down, a
    #: cluster without resources) before it is cancelled with a clear error
    spark_idle_timeout: float = 120.0
    #: seconds any one Spark job may take before it is cancelled (None: no limit)
    spark_job_timeout: float | None = None
    #: how Spark reads Parquet on S3: "pyarrow" (tasks read through pyarrow's S3 filesystem;
    #: no jars) or "s3a" (Spark's own reader on s3a:// paths; needs hadoop-aws on the cluster)
    spark_s3: Literal["pyarrow", "s3a"] = "pyarrow"
    #: how many independent features (of one topological level) Spark computes at once, each
    #: submitting its jobs from its own thread (1: one after another)
    spark_parallel_features: int = 4
    #: `fsql training-set` joins a spine of more rows than this batch by batch, writing the
    #: output as the join streams (memory bounded by ``memory_limit``); a smaller spine is
    #: joined in one piece and written at once (faster: a scatter into spine order instead
    #: of an ordered join)
    stream_training_rows: int = 5_000_000

    def __post_init__(self) -> None:
        if self.stream_training_rows < 0:
            raise ConfigError(
                "[compute] stream_training_rows must be 0 or more (0: always stream), not "
                f"{self.stream_training_rows}"
            )
        if self.spark_parallel_features < 1:
            raise ConfigError(
                "[compute] spark_parallel_features must be at least 1 (1: one feature at a "
                f"time), not {self.spark_parallel_features}"
            )


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
    #: under auth = "trust" with no [[server.users]]: whether every client may run CREATE/DROP
    #: of definitions over the wire (off: trust must not hand DDL to every local user)
    trust_can_define: bool = False
    tls_cert: str | None = None
    tls_key: str | None = None
    #: refuse a client that does not negotiate TLS (needs tls_cert/tls_key)
    require_tls: bool = False
    max_connections: int = 100
    #: seconds a client may take from connecting to finishing startup and authentication
    authentication_timeout: float = 60
    #: connections still in startup/authentication (per worker) beyond which new ones are
    #: closed at once
    max_pending_startups: int = 64
    #: seconds; 0 disables
    idle_timeout: float = 0
    statement_timeout: float = 300
    #: bytes; a longer statement is refused with 54000 before it is scanned (0 disables)
    max_statement_bytes: int = 1024 * 1024
    workers: int = 1
    #: heavy statements that run in DuckDB at once per worker process; the others wait their
    #: turn, one queue per session served round robin (0: the cores per worker process;
    #: fsql_server.pg.workers)
    statement_slots: int = 0
    metrics_port: int | None = None
    #: answer cached point lookups from the socket callback (fsql_server.features.fast_lane); off only
    #: to rule it out when looking into a problem
    fast_lane: bool = True


@dataclass(frozen=True)
class SchedulerConfig:
    dags_folder: str | None = None
    airflow_url: str | None = None
    airflow_username: str | None = None
    airflow_password_env: str | None = None


@dataclass(frozen=True)
class SourcesConfig:
    #: where sources may read besides the repo: folders (relative to the repo or absolute) and
    #: ``s3://bucket[/prefix]`` locations; a source elsewhere is refused when it is defined
    roots: tuple[str, ...] = ()


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
    sources: SourcesConfig = field(default_factory=SourcesConfig)

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
    "sources": SourcesConfig,
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
    "FSQL_SERVER_FAST_LANE": ("server", "fast_lane"),
    "FSQL_DAGS_FOLDER": ("scheduler", "dags_folder"),
    "FSQL_AIRFLOW_URL": ("scheduler", "airflow_url"),
}


def _build_section(
    name: str,
    cls: type,
    values: Any,
    origin: str,
    origins: Mapping[str, str] | None = None,
) -> Any:
    """Build one section dataclass, checking keys and coercing values by the field's type.

    ``origins`` maps a key to where its value came from (e.g. ``$FSQL_SERVER_PORT``) so a bad
    value is reported at its source; other keys are reported at ``origin``.
    """
    if not isinstance(values, Mapping):
        raise ConfigError(f"{origin}: [{name}] must be a table of keys, not {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        hint = ""
        if name == "server.users" and "password" in unknown:
            hint = (" (plain passwords are not allowed: set password_hash to a SCRAM-SHA-256 "
                    "verifier or an md5 hash)")
        raise ConfigError(
            f"{origin}: unknown key(s) {', '.join(unknown)} in [{name}]{hint}; "
            f"known keys are: {', '.join(fields)}"
        )
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        where = f"{(origins or {}).get(key, origin)}: [{name}] {key}"
        if key == "users":
            if not isinstance(value, list | tuple):
                raise ConfigError(f"{where} must be a list of tables ([[server.users]])")
            kwargs[key] = tuple(
                u if isinstance(u, ServerUser) else _build_section("server.users", ServerUser, u, origin)
                for u in value
            )
        else:
            kwargs[key] = _coerce_to(hints[key], value, where)
    missing = [
        f.name for f in fields.values()
        if f.name not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{origin}: [{name}] needs {', '.join(missing)}")
    return cls(**kwargs)


def _coerce_to(hint: Any, value: Any, where: str) -> Any:
    """``value`` as the type ``hint`` says (strings from the environment included)."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        if value is None:
            return None
        options = [a for a in args if a is not type(None)]
        return _coerce_to(options[0], value, where) if len(options) == 1 else value
    if typing.get_origin(hint) is Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise ConfigError(f"{where} must be one of {choices}, not {value!r}")
        return value
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where} must be a list of strings, not {value!r}")
        return tuple(value)
    if hint is bool:
        return _coerce_bool(value, where)
    if hint is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ConfigError(f"{where} must be an integer, not {value!r}")
        return _coerce(int, value, where)
    if hint is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where} must be a number, not {value!r}")
        return _coerce(float, value, where)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, not {value!r}")
        return value
    return value


def _coerce(kind: type, value: Any, where: str) -> Any:
    try:
        return kind(value)
    except (TypeError, ValueError):
        noun = "an integer" if kind is int else "a number"
        raise ConfigError(f"{where} must be {noun}, not {value!r}") from None


def _coerce_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("1", "true", "yes", "on"):
        return True
    if str(value).lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{where} must be true or false, not {value!r}")


def config_from_mapping(
    data: Mapping[str, Any],
    repo: Path | str | None = None,
    origin: str = "config",
    origins: Mapping[str, Mapping[str, str]] | None = None,
) -> Config:
    """Build a :class:`Config` from ``fsql.toml``-shaped data (sections of keys).

    ``origins`` (``{"section": {"key": "where"}}``) names the source of individual values for
    error messages, e.g. the environment variable that set them.
    """
    unknown = sorted(set(data) - set(_SECTIONS))
    if unknown:
        raise ConfigError(
            f"{origin}: unknown section(s) {', '.join(unknown)}; "
            f"known sections are: {', '.join(_SECTIONS)}"
        )
    sections = {
        name: _build_section(name, cls, data.get(name, {}), origin, (origins or {}).get(name))
        for name, cls in _SECTIONS.items()
    }
    return Config(repo=Path(repo or Path.cwd()).resolve(), **sections)


def _merge(base: dict[str, dict[str, Any]], extra: Mapping[str, Any], origin: str) -> None:
    for section, values in extra.items():
        if not isinstance(values, Mapping):
            raise ConfigError(f"{origin}: [{section}] must be a table of keys, not {values!r}")
        base.setdefault(section, {}).update(values)


def load_config(
    repo: Path | str | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    env: Mapping[str, str] | None = None,
) -> Config:
    """Read ``fsql.toml`` from ``repo`` (if present), apply ``FSQL_*`` variables, then
    ``overrides`` (``{"section": {"key": value}}``). Empty variables count as unset."""
    repo_path = Path(repo or os.environ.get("FSQL_REPO") or Path.cwd()).resolve()
    data: dict[str, dict[str, Any]] = {}
    origins: dict[str, dict[str, str]] = {}
    path = repo_path / CONFIG_FILE
    if path.exists():
        try:
            with path.open("rb") as fh:
                _merge(data, tomllib.load(fh), str(path))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        origin = str(path)
    else:
        origin = "defaults"
    env = os.environ if env is None else env
    for var, (section, key) in ENV_VARS.items():
        if env.get(var):
            data.setdefault(section, {})[key] = env[var]
            origins.setdefault(section, {})[key] = f"${var}"
    if overrides:
        _merge(data, overrides, "overrides")
        for section, values in overrides.items():
            for key in values:
                origins.setdefault(section, {})[key] = "overrides"
    return config_from_mapping(data, repo_path, origin, origins)


#: The top-level keys of the original design's config dicts (how a dict is told from a mapping
#: of fsql's own sections).
DESIGN_KEYS = frozenset({
    "metadata_config", "online_store_config", "offline_store_config", "compute_config",
    "spark_config", "airflow_config", "validation_rules", "cache_config", "routing_config",
    "schedule_config", "monitoring_config",
})


def config_from_design_dict(design: Mapping[str, Any], repo: Path | str | None = None) -> Config:
    """Map the original design document's config dict onto :class:`Config`.

    ``metadata_config.database_url`` → registry URL; ``online_store_config.host/port[/db]`` →
    Redis; ``offline_store_config.bucket/region[/prefix/endpoint_url]`` → S3;
    ``compute_config.spark_master/executor_memory`` → the Spark engine.
    """
    known = DESIGN_KEYS
    fsql_sections = set(_SECTIONS)
    elsewhere = sorted(set(design) & set(_DESIGN_KEYS_ELSEWHERE))
    if elsewhere:
        raise ConfigError("; ".join(f"{k}: {_DESIGN_KEYS_ELSEWHERE[k]}" for k in elsewhere))
    unknown = sorted(set(design) - known - fsql_sections)
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {', '.join(unknown)}; expected {', '.join(sorted(known))}"
        )
    if "spark_config" in design and "compute_config" in design:
        raise ConfigError("give the Spark settings in compute_config or in spark_config, not both")
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
    compute = design.get("compute_config") or design.get("spark_config") or {}
    if compute:
        sec = data.setdefault("compute", {})
        if "spark_master" in compute:
            sec["engine"] = compute.get("engine", "spark")
            sec["spark_master"] = compute["spark_master"]
        if "executor_memory" in compute:
            sec["executor_memory"] = compute["executor_memory"]
        if "engine" in compute:
            sec["engine"] = compute["engine"]
    airflow = dict(design.get("airflow_config") or {})
    if airflow:
        sec = data.setdefault("scheduler", {})
        for key, target in (("dags_folder", "dags_folder"), ("base_url", "airflow_url"),
                            ("url", "airflow_url"), ("airflow_url", "airflow_url"),
                            ("username", "airflow_username"),
                            ("password_env", "airflow_password_env")):
            if key in airflow:
                sec[target] = airflow.pop(key)
        if airflow:
            raise ConfigError(
                f"unknown airflow_config key(s) {', '.join(sorted(airflow))}; expected "
                "dags_folder, base_url, username, password_env (the password itself is read "
                "from the environment variable password_env names, never from the config)"
            )
    repo_path = Path(repo or os.environ.get("FSQL_REPO") or Path.cwd())
    return config_from_mapping(data, repo_path, origin="config dict")


#: Keys of the original design's component configs that fsql takes from elsewhere, and where.
_DESIGN_KEYS_ELSEWHERE = {
    "validation_rules": "validation rules are declared in SQL next to the features, as "
    "CREATE CHECK or an inline EXPECT clause (docs/language.md, \"Data checks\"), so they are "
    "versioned with the definitions they guard; remove this key",
    "cache_config": "the compute cache is the online store: configure online_store_config "
    "(values computed on demand are written back with their feature's TTL); remove this key",
    "routing_config": "the router needs no configuration: features with ONLINE TRUE are read "
    "from the online store, the rest computed on demand (docs/architecture.md, \"Online "
    "store\"); remove this key",
    "schedule_config": "schedules are declared per feature with EVERY and turned into Airflow "
    "DAGs by `fsql pipeline` (docs/pipelines.md); remove this key",
    "monitoring_config": "monitoring needs no configuration: run history, freshness and check "
    "results are tables (fsql.runs, fsql.freshness, fsql.checks) and the server exports "
    "/metrics with [server] metrics_port (docs/pipelines.md, \"Dashboards and alerts\"); "
    "remove this key",
}
