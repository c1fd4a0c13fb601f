"""The distribution installs every package, under namespaced import names only."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def setuptools_config() -> dict:
    with (ROOT / "pyproject.toml").open("rb") as fh:
        return tomllib.load(fh)["tool"]["setuptools"]


def packages_under(folder: Path, import_name: str) -> set[str]:
    """Dotted names of every folder with an ``__init__.py`` below ``folder`` (inclusive)."""
    found = set()
    for init in folder.rglob("__init__.py"):
        if "__pycache__" in init.parts:
            continue
        rel = init.parent.relative_to(folder)
        found.add(".".join((import_name, *rel.parts)))
    return found


def test_every_fsql_package_is_listed_in_pyproject() -> None:
    listed = set(setuptools_config()["packages"])
    missing = sorted(packages_under(ROOT / "fsql", "fsql") - listed)
    assert not missing, f"add {missing} to [tool.setuptools] packages in pyproject.toml"


def test_server_folder_is_installed_as_fsql_server() -> None:
    config = setuptools_config()
    assert config["package-dir"] == {"fsql_server": "server"}
    listed = set(config["packages"])
    missing = sorted(packages_under(ROOT / "server", "fsql_server") - listed)
    assert not missing, f"add {missing} to [tool.setuptools] packages in pyproject.toml"


def test_no_generic_top_level_import_name() -> None:
    tops = {name.split(".")[0] for name in setuptools_config()["packages"]}
    assert tops == {"fsql", "fsql_server"}


def test_listed_packages_exist() -> None:
    config = setuptools_config()
    for name in config["packages"]:
        top, *rest = name.split(".")
        folder = ROOT / config["package-dir"].get(top, top) / Path(*rest)
        assert (folder / "__init__.py").is_file(), f"{name} is listed but {folder} is no package"


@pytest.mark.slow
def test_wheel_contains_packages_templates_and_no_server_top_level(tmp_path: Path) -> None:
    """Build the real wheel (pip, isolated build) and look inside."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path),
         str(ROOT)],
        check=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("fsql-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"fsql", "fsql_server", next(t for t in tops if t.endswith(".dist-info"))}
    templates = ROOT / "fsql" / "templates"
    expected = {
        p.relative_to(ROOT).as_posix()
        for p in templates.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert expected and expected <= set(names)
    assert "fsql/cli/__init__.py" in names and "fsql_server/__init__.py" in names
    assert "fsql/py.typed" in names
    dist_info = next(t for t in tops if t.endswith(".dist-info"))
    entry_points = zipfile.ZipFile(wheel).read(f"{dist_info}/entry_points.txt").decode()
    assert "fsql = fsql.cli:main" in entry_points
