"""CI runs exactly the README's test command, and that command runs every test with a timeout
after installing what the tests need."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_dry_run(target: str) -> str:
    """The commands `make TARGET` would run (make -n), for a fresh checkout without .venv."""
    result = subprocess.run(["make", "-n", "-B", target, "VENV=/nonexistent/venv"], cwd=ROOT,
                            capture_output=True, text=True, check=True, timeout=60)
    return result.stdout


def test_ci_runs_make_test() -> None:
    script = ROOT / ".ci" / "run"
    assert os.access(script, os.X_OK), ".ci/run must be executable"
    commands = [line.strip() for line in script.read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    assert commands[-1] == "make test"
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make demo" in readme


def test_make_test_installs_services_and_runs_everything_with_a_timeout() -> None:
    commands = make_dry_run("test")
    assert "scripts/system-deps.sh" in commands
    assert "python3 -m venv /nonexistent/venv" in commands
    assert re.search(r"pip install .*-e '\.\[test\]'", commands)
    pytest_line = next(line for line in commands.splitlines() if "-m pytest" in line)
    assert "--timeout=" in pytest_line
    assert " -m " not in pytest_line.split("-m pytest", 1)[1]  # no marker filter: all tests


def test_make_demo_installs_and_runs_the_demo_script() -> None:
    commands = make_dry_run("demo")
    assert re.search(r"pip install .* \.$", commands, flags=re.M)
    assert "scripts/demo.sh" in commands


def test_system_deps_script_names_every_package() -> None:
    text = (ROOT / "scripts" / "system-deps.sh").read_text()
    for package in ("redis-server", "postgresql", "postgresql-client", "libpostgresql-jdbc-java"):
        assert f"missing+=({package})" in text, package
    assert "/usr/lib/postgresql/15/bin/initdb" in text
