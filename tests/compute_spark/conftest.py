"""Fixtures for the Spark tests: an fsql Spark engine on the shared local session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fsql.config import ComputeConfig, Config
from fsql.engines import open_engine
from fsql.engines.spark import SparkEngine


@pytest.fixture()
def engine(spark_session: Any, tmp_path: Path) -> Iterator[SparkEngine]:
    """The Spark engine as fsql opens it from a config, bound to the shared session."""
    config = Config(repo=tmp_path, compute=ComputeConfig(engine="spark", spark_master="local[2]"))
    with open_engine(config) as eng:
        assert isinstance(eng, SparkEngine)
        assert eng.session is spark_session  # the shared session is reused, not restarted
        yield eng
    # closing the engine does not stop a session it did not start
    assert spark_session.sql("SELECT 1 AS one").collect()[0]["one"] == 1
