"""The relations the catalog describes, built from the registry: a rebuild (after every
registry change) reads the registry's current definitions, not the run history, the
materialization ledger or every feature's versions (the fsql.* tables' columns do not depend
on their rows), and still shows a feature applied since the last build."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path
from typing import Any

from tests.catalog.conftest import make_repo


def counting(counter: Counter, name: str, method: Any) -> Any:
    """``method``, counting its calls under ``name`` (the real method still runs)."""
    def call(*args: Any, **kwargs: Any) -> Any:
        counter[name] += 1
        return method(*args, **kwargs)
    return call


def test_rebuild_reads_no_history(tmp_path: Path) -> None:
    from fsql_server.features.catalog import build_relations
    from fsql_server.features.services import Services

    from fsql import SyncFeatureStore
    from fsql.config import load_config

    repo = make_repo(tmp_path / "repo")
    store = SyncFeatureStore(repo)
    try:
        store.materialize(dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 8), ["spend_7d"],
                          online=False)
    finally:
        store.close()
    services = Services(load_config(repo))
    reads: Counter = Counter()
    registry = services.registry
    for name in ("ledger_entries", "history"):
        setattr(registry, name, counting(reads, name, getattr(registry, name)))
    services.monitoring = counting(reads, "monitoring", services.monitoring)  # type: ignore

    first = build_relations(services)
    assert reads["ledger_entries"] == 1 and reads["monitoring"] == 3 and reads["history"] > 0
    materializations = next(r for r in first if (r.schema, r.name) == ("fsql", "materializations"))
    assert [c.type.name for c in materializations.columns][:3] == ["int8", "text", "int4"]

    reads.clear()
    store = SyncFeatureStore(repo)
    try:
        store.register("CREATE FEATURE max_spend_1d ENTITY \"user\" WINDOW '1 day' "
                       "AS SELECT user_id, MAX(amount) FROM tx")
    finally:
        store.close()
    services.catalog.invalidate()  # the server's catalog notices within refresh_seconds
    second = build_relations(services)
    assert not reads, reads
    names = {(r.schema, r.name) for r in second} - {(r.schema, r.name) for r in first}
    assert names == {("offline", "max_spend_1d")}
    user = next(r for r in second if (r.schema, r.name) == ("features", "user"))
    assert "max_spend_1d" in [c.name for c in user.columns]
