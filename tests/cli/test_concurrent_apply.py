"""Two `fsql apply` processes at once on one repo: one applies, the other either finds nothing
to do or is refused; never both, never a half-applied registry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from fsql.language.project import load_project
from tests.cli.test_registry_commands import registry_state


def test_concurrent_applies_serialise(example_repo: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FSQL_")}
    command = [sys.executable, "-m", "fsql.cli", "--repo", str(example_repo), "apply", "--json"]
    processes = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [(p.wait(timeout=120), *p.communicate()) for p in processes]

    definitions = load_project(example_repo).definitions
    appliers = []
    for code, out, err in results:
        if code == 0:
            data = json.loads(out)
            if data["applied"]:
                appliers.append(data)
            else:
                assert data["plan"]["empty"] is True
        else:
            assert code == 1 and "registry changed since the plan was made" in err, err
    assert len(appliers) == 1
    assert {r["name"] for r in appliers[0]["applied"]} == set(definitions)
    revision, current = registry_state(example_repo)
    assert revision == 1
    assert set(current) == set(definitions)
    assert {version for version, _ in current.values()} == {1}
