"""Shared test setup. Real services (PostgreSQL, Redis, S3, Spark, Airflow) are started by
session fixtures in tests/services/, one module per service, loaded here automatically."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

# Tests read fsql's CLI tables, which wrap at $COLUMNS when it is set (200 columns otherwise,
# off a terminal). A width inherited from whoever runs the tests must not change them: GNU
# readline in pytest-xdist's controller exports COLUMNS=80 and LINES=24, which every worker
# then inherits, and a narrow terminal would do the same to a plain run.
for _name in ("COLUMNS", "LINES"):
    os.environ.pop(_name, None)

pytest_plugins = sorted(
    f"tests.services.{p.stem}"
    for p in (Path(__file__).parent / "services").glob("*.py")
    if not p.stem.startswith("_")
)


#: Work that must stay on one pytest-xdist worker (``make test`` runs ``-n 2 --dist loadgroup``):
#: the benchmark smoke tests share bench/.venv-feast and bench/.data and would only slow each
#: other down; tests/compute_spark/ shares one local Spark session per worker (Spark takes
#: 6-15 s to start and ~1 GB) and module fixtures. Every other test file is a group of its own,
#: so its module- and session-scoped fixtures are set up once, on one worker. (A Spark test in
#: another file starts a second session if it lands on the other worker: slower, still correct.)
HEAVY_GROUPS = {"tests/bench/": "bench", "tests/compute_spark/": "spark"}


def xdist_group(nodeid: str) -> str:
    """The pytest-xdist work unit of the test ``nodeid``: a heavy group or its file. Only the
    nodeid is known where xdist schedules (the controller does not collect), so it decides."""
    path = nodeid.split("::", 1)[0]
    for prefix, group in HEAVY_GROUPS.items():
        if path.startswith(prefix):
            return group
    return path


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadgroup`` with the groups of :func:`xdist_group`. (xdist's own loadgroup reads
    ``@pytest.mark.xdist_group`` by renaming ``item._nodeid``, which pytest 9.2 no longer
    reads, so its marks would be ignored; this scheduler does not depend on them.)"""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class FileAndHeavyGroupScheduling(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            if nodeid.rfind("@") > nodeid.rfind("]"):  # an explicit xdist_group mark
                return super()._split_scope(nodeid)
            return xdist_group(nodeid)

    return FileAndHeavyGroupScheduling(config, log)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On an xdist worker under ``loadgroup``, put the longest work first: the heavy groups,
    then files with ``slow`` tests, then the rest, each in file order. xdist hands out work units
    in this order (``--no-loadscope-reorder``), so the two workers start on the long groups and
    the many short files fill in around them. A plain ``pytest`` run keeps the file order."""
    # on a worker, xdist has already turned "--dist loadgroup" into the option "loadgroup"
    if not hasattr(config, "workerinput") or not config.getoption("loadgroup", False):
        return
    heavy = list(HEAVY_GROUPS.values())
    slow = {xdist_group(item.nodeid) for item in items if item.get_closest_marker("slow")}

    def rank(item: pytest.Item) -> int:
        group = xdist_group(item.nodeid)
        if group in heavy:
            return heavy.index(group)
        return len(heavy) + (0 if group in slow else 1)

    items.sort(key=rank)  # stable: file order within a rank
