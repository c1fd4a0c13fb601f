"""The core install has no pandas: the API's table-returning calls work with ``as_arrow=True``
and say ``pip install 'fsql[pandas]'`` otherwise (a subprocess where importing pandas fails)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.api.test_silent_nulls import SQL, write_purchases

SCRIPT = textwrap.dedent(
    """
    import importlib.abc, json, sys

    class NoPandas(importlib.abc.MetaPathFinder):  # `import pandas` fails, as without the extra
        def find_spec(self, name, path=None, target=None):
            if name == "pandas" or name.startswith("pandas."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NoPandas())
    from fsql import SyncFeatureStore
    from fsql.errors import MissingExtraError

    out = {}
    with SyncFeatureStore(sys.argv[1]) as store:
        store.register(sys.argv[2])
        store.register_feature(
            "CREATE FEATURE user_purchase_30d ENTITY user WINDOW '30 days' "
            "AS SELECT user_id, SUM(purchase_amount) FROM purchases"
        )
        table = store.compute_features(["user_purchase_30d"], ["user_123"], as_arrow=True)
        out["computed"] = table.column("user_purchase_30d").to_pylist()
        batch = store.get_batch_features(["user_purchase_30d"], ["user_123"], as_arrow=True)
        out["batch"] = batch.column_names
        for call in ("compute_features", "get_batch_features"):
            try:
                getattr(store, call)(["user_purchase_30d"], ["user_123"])
            except MissingExtraError as exc:
                out[call] = str(exc)
    out["pandas_loaded"] = "pandas" in sys.modules
    print(json.dumps(out))
    """
)


def test_table_calls_without_pandas(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "fsql.toml").write_text("")
    write_purchases(repo)
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", SCRIPT, str(repo), SQL],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["computed"] == [960.65]
    assert out["batch"] == ["user_id", "user_purchase_30d"]
    for call in ("compute_features", "get_batch_features"):
        assert out[call] == (
            "pandas is not installed: pip install 'fsql[pandas]'; or pass as_arrow=True for a "
            "pyarrow Table (no pandas needed)"
        )
    assert out["pandas_loaded"] is False
