"""fsql.config: one model, read from defaults, fsql.toml, FSQL_* variables, overrides, or the
original design's config dict."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from fsql.config import (
    ENV_VARS,
    Config,
    ServerUser,
    config_from_design_dict,
    config_from_mapping,
    load_config,
)
from fsql.errors import ConfigError


def write_toml(repo: Path, text: str) -> Path:
    (repo / "fsql.toml").write_text(text)
    return repo


def test_no_config_means_embedded_defaults_under_dot_fsql(tmp_path: Path) -> None:
    config = load_config(tmp_path, env={})
    assert config.repo == tmp_path.resolve()
    assert config.resolve_url(config.registry.url) == f"sqlite:///{tmp_path.resolve()}/.fsql/registry.db"
    assert config.resolve_url(config.online_store.url) == f"sqlite:///{tmp_path.resolve()}/.fsql/online.db"
    assert config.resolve_path(config.offline_store.uri) == str(tmp_path.resolve() / ".fsql" / "offline")
    assert config.compute.engine == "duckdb"
    assert config.server.host == "127.0.0.1"
    assert config.state_dir == tmp_path.resolve() / ".fsql"


def test_toml_values_are_read_and_typed(tmp_path: Path) -> None:
    write_toml(tmp_path, """
[registry]
url = "postgresql://fsql@db:5432/features"
[offline_store]
uri = "s3://bucket/prefix"
s3_endpoint_url = "http://127.0.0.1:9000"
[online_store]
url = "redis://localhost:6379/2"
timeout = 2
[compute]
engine = "spark"
spark_master = "spark://127.0.0.1:7077"
[server]
port = 6543
idle_timeout = 30
[[server.users]]
name = "ann"
password_hash = "md5abc"
can_define = true
""")
    config = load_config(tmp_path, env={})
    assert config.registry.url == "postgresql://fsql@db:5432/features"
    assert config.offline_store.uri == "s3://bucket/prefix"
    assert config.resolve_path(config.offline_store.uri) == "s3://bucket/prefix"
    assert config.online_store.timeout == 2.0 and isinstance(config.online_store.timeout, float)
    assert config.compute.engine == "spark"
    assert config.server.port == 6543
    assert config.server.users == (ServerUser("ann", "md5abc", True),)


def test_env_overrides_toml_and_overrides_override_env(tmp_path: Path) -> None:
    write_toml(tmp_path, '[compute]\nengine = "duckdb"\n[server]\nport = 7000\n')
    env = {"FSQL_ENGINE": "spark", "FSQL_SERVER_PORT": "7001", "FSQL_ONLINE_TIMEOUT": "0.5"}
    config = load_config(tmp_path, env=env)
    assert config.compute.engine == "spark"
    assert config.server.port == 7001
    assert config.online_store.timeout == 0.5
    config = load_config(tmp_path, env=env, overrides={"server": {"port": 7002}})
    assert config.server.port == 7002


def test_every_env_var_reaches_its_key(tmp_path: Path) -> None:
    samples = {"port": "7777", "timeout": "3.5", "engine": "spark", "fast_lane": "false"}
    for var, (section, key) in ENV_VARS.items():
        value = samples.get(key, f"value-of-{var}")
        config = load_config(tmp_path, env={var: value})
        got = getattr(getattr(config, section), key)
        assert str(got).lower() == value if isinstance(got, bool) else str(got) == value, var


def test_empty_env_var_counts_as_unset(tmp_path: Path) -> None:
    assert load_config(tmp_path, env={"FSQL_ENGINE": ""}).compute.engine == "duckdb"


def test_repo_from_fsql_repo_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_toml(tmp_path, "[server]\nport = 6000\n")
    monkeypatch.setenv("FSQL_REPO", str(tmp_path))
    config = load_config(env={})
    assert config.repo == tmp_path.resolve() and config.server.port == 6000


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[registy]\nurl = 'x'\n", "unknown section(s) registy; known sections are: registry"),
        ("[registry]\nuri = 'x'\n", "unknown key(s) uri in [registry]; known keys are: url"),
        ("[compute]\nengine = 'pandas'\n", "[compute] engine must be one of 'duckdb', 'spark'"),
        ("[server]\nport = 'high'\n", "[server] port must be an integer, not 'high'"),
        ("[server]\nport = 1.5\n", "[server] port must be an integer, not 1.5"),
        ("[server]\nauth = 'password'\n", "[server] auth must be one of 'trust', 'cleartext'"),
        ("[online_store]\ntimeout = 'soon'\n", "[online_store] timeout must be a number"),
        ("[registry]\nurl = 5\n", "[registry] url must be a string, not 5"),
        ("registry = 'sqlite:///x'\n", "[registry] must be a table of keys"),
        ("[[server.users]]\nname = 'ann'\npassword = 'secret'\n", "plain passwords are not allowed"),
        ("[[server.users]]\ncan_define = true\n", "[server.users] needs name"),
        ("[server]\nusers = 'ann'\n", "[server] users must be a list of tables"),
        ("[server\n", "fsql.toml: "),
    ],
)
def test_bad_toml_is_rejected_with_where_and_what(tmp_path: Path, toml: str, expected: str) -> None:
    write_toml(tmp_path, toml)
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, env={})
    assert expected in str(info.value)
    assert str(tmp_path / "fsql.toml") in str(info.value)


def test_bad_env_value_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^\$FSQL_SERVER_PORT: \[server\] port must be an integer"):
        load_config(tmp_path, env={"FSQL_SERVER_PORT": "x"})
    with pytest.raises(ConfigError, match=r"^\$FSQL_ENGINE: \[compute\] engine must be one of"):
        load_config(tmp_path, env={"FSQL_ENGINE": "flink"})


def test_config_is_immutable_and_replaceable(tmp_path: Path) -> None:
    config = load_config(tmp_path, env={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.compute = config.compute  # type: ignore[misc]
    other = config.replace(compute=dataclasses.replace(config.compute, engine="spark"))
    assert other.compute.engine == "spark" and config.compute.engine == "duckdb"


def test_absolute_sqlite_url_is_kept(tmp_path: Path) -> None:
    config = config_from_mapping({"registry": {"url": "sqlite:////var/lib/fsql/r.db"}}, tmp_path)
    assert config.resolve_url(config.registry.url) == "sqlite:////var/lib/fsql/r.db"


def test_design_dict_maps_onto_the_same_model(tmp_path: Path) -> None:
    """The example config dict of the original design document, verbatim."""
    design = {
        "metadata_config": {"database_url": "postgresql://localhost:5432/feature_store"},
        "online_store_config": {"host": "localhost", "port": 6379},
        "offline_store_config": {"bucket": "feature-store", "region": "us-west-2"},
        "compute_config": {"spark_master": "spark://localhost:7077", "executor_memory": "4g"},
    }
    config = config_from_design_dict(design, repo=tmp_path)
    assert isinstance(config, Config)
    assert config.registry.url == "postgresql://localhost:5432/feature_store"
    assert config.online_store.url == "redis://localhost:6379/0"
    assert config.offline_store.uri == "s3://feature-store"
    assert config.offline_store.region == "us-west-2"
    assert config.compute.engine == "spark"
    assert config.compute.spark_master == "spark://localhost:7077"
    assert config.compute.executor_memory == "4g"
    assert config.repo == tmp_path.resolve()


def test_design_dict_optional_keys_and_fsql_sections(tmp_path: Path) -> None:
    design = {
        "online_store_config": {"host": "cache", "port": 6380, "db": 3, "timeout": 0.25},
        "offline_store_config": {"bucket": "fs", "prefix": "/team/a/", "endpoint_url": "http://s3"},
        "server": {"port": 6000},
    }
    config = config_from_design_dict(design, repo=tmp_path)
    assert config.online_store.url == "redis://cache:6380/3"
    assert config.online_store.timeout == 0.25
    assert config.offline_store.uri == "s3://fs/team/a"
    assert config.offline_store.s3_endpoint_url == "http://s3"
    assert config.server.port == 6000
    assert config.compute.engine == "duckdb"


def test_design_dict_unknown_key_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown config key.*metadata_cfg"):
        config_from_design_dict({"metadata_cfg": {}}, repo=tmp_path)


def test_example_repo_config_is_valid_and_all_defaults() -> None:
    """sql_features/fsql.toml documents keys in comments only: it must equal the defaults."""
    repo = Path(__file__).resolve().parents[1] / "sql_features"
    assert load_config(repo, env={}) == config_from_mapping({}, repo)


def test_design_dict_spark_and_airflow_configs(tmp_path: Path) -> None:
    """The design's FeatureComputer / FeaturePipelineManager configs map onto the same model."""
    design = {
        "spark_config": {"spark_master": "spark://spark:7077", "executor_memory": "2g"},
        "airflow_config": {"dags_folder": "/opt/dags", "base_url": "http://airflow:8080",
                           "username": "fsql", "password_env": "AIRFLOW_PASSWORD"},
    }
    config = config_from_design_dict(design, repo=tmp_path)
    assert (config.compute.engine, config.compute.spark_master) == ("spark", "spark://spark:7077")
    assert config.compute.executor_memory == "2g"
    assert config.scheduler.dags_folder == "/opt/dags"
    assert config.scheduler.airflow_url == "http://airflow:8080"
    assert config.scheduler.airflow_username == "fsql"
    assert config.scheduler.airflow_password_env == "AIRFLOW_PASSWORD"
    with pytest.raises(ConfigError, match="unknown airflow_config key.*password;"):
        config_from_design_dict({"airflow_config": {"password": "secret"}}, repo=tmp_path)
    with pytest.raises(ConfigError, match="not both"):
        config_from_design_dict({"spark_config": {}, "compute_config": {}}, repo=tmp_path)


@pytest.mark.parametrize(
    ("key", "where"),
    [("validation_rules", "CREATE CHECK"), ("cache_config", "online_store_config"),
     ("routing_config", "ONLINE TRUE"), ("schedule_config", "EVERY"),
     ("monitoring_config", "/metrics")],
)
def test_design_dict_keys_handled_elsewhere_say_where(tmp_path: Path, key: str, where: str) -> None:
    with pytest.raises(ConfigError, match=f"{key}: .*{where}.*remove this key"):
        config_from_design_dict({key: {}, "compute_config": {}}, repo=tmp_path)
