"""Operating a registry: ``fsql registry export`` / ``fsql registry import`` (moving a registry,
e.g. from the embedded SQLite file to PostgreSQL) and ``fsql gc`` (deleting the offline data of
feature versions nothing uses any more). Documented in docs/production.md.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from fsql.cli import CliContext, echo_json, pass_cli
from fsql.cli.context import open_workspace
from fsql.compute.runs import _SCHEMA as RUN_TABLES
from fsql.compute.runs import deployed_pipelines, ensure_tables
from fsql.errors import FsqlError
from fsql.registry.transfer import dumps, export_registry, import_registry


@click.group("registry")
def registry_group() -> None:
    """Move a registry between databases: export it to JSON, import it into an empty one."""


@registry_group.command("export")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the export to this file (default: standard output).")  # fmt: skip
@pass_cli
def export_command(cli: CliContext, out: Path | None) -> None:
    """Write every row of the repo's registry (definitions and their history, lineage, the
    ledgers, runs, deployed pipelines) as one JSON document."""
    registry = open_workspace(cli, create_registry=False).registry
    ensure_tables(registry)
    document = export_registry(registry, RUN_TABLES)
    text = dumps(document)
    if out is None:
        sys.stdout.write(text)
        return
    out.write_text(text, encoding="utf-8")
    counts = ", ".join(f"{name} {len(t['rows'])}" for name, t in document["tables"].items())
    cli.err.print(f"Exported {registry.url} to {out} ({counts} rows)", markup=False)


@registry_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_cli
def import_command(cli: CliContext, file: Path) -> None:
    """Load FILE (made by `fsql registry export`) into the repo's registry, which must be empty
    (e.g. a new PostgreSQL database named by FSQL_REGISTRY_URL)."""
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise FsqlError(f"{file} is not JSON ({exc}); make it with `fsql registry export`") from None
    registry = open_workspace(cli).registry
    ensure_tables(registry)
    counts = import_registry(registry, document, RUN_TABLES)
    summary = ", ".join(f"{name} {count}" for name, count in counts.items())
    cli.out.print(
        f"Imported {file} into {registry.url}: registry revision {registry.revision()} "
        f"({summary} rows)", markup=False,
    )  # fmt: skip


@click.command("gc")
@click.option("--dry-run", is_flag=True, help="Only list what would be deleted.")
@click.option("--json", "as_json", is_flag=True, help="Print what was (or would be) deleted as JSON.")
@pass_cli
def gc_command(cli: CliContext, dry_run: bool, as_json: bool) -> None:
    """Delete the offline data of feature versions nothing uses: not the registry's current
    version, not pinned by a deployed pipeline, not served by the online store. Their ledger
    entries go first, so no reader is told data exists that is being deleted; the versions
    themselves (definitions, history, runs) stay in the registry."""
    workspace = open_workspace(cli, create_registry=False)
    registry = workspace.registry
    store = workspace.offline_store
    current = {name: record.version for name, record in registry.current().items()}
    pinned: dict[str, set[int]] = {}
    for pipeline in deployed_pipelines(registry):
        for task in pipeline.plan.get("tasks", []):
            pinned.setdefault(task["feature"], set()).add(int(task["version"]))
    names = sorted(registry.feature_versions())
    active = workspace.online_store.active_versions(names) if names else {}
    deleted = []
    for name in names:
        keep = {current.get(name), *pinned.get(name, ()),
                int(active[name]) if str(active.get(name, "")).isdigit() else None}  # fmt: skip
        for version in store.versions(name):
            if version in keep:
                continue
            deleted.append({"feature": name, "version": version,
                            "location": store.location(name, version)})  # fmt: skip
            if not dry_run:
                registry.ledger_forget(name, version)
                store.drop_version(name, version)
    if as_json:
        echo_json({"dry_run": dry_run, "deleted": deleted})
        return
    verb = "Would delete" if dry_run else "Deleted"
    for item in deleted:
        cli.out.print(f"{verb} {item['feature']} v{item['version']}: {item['location']}",
                      markup=False)  # fmt: skip
    if not deleted:
        cli.out.print("Nothing to delete: every stored version is current, pinned by a "
                      "pipeline or served online.", markup=False)  # fmt: skip


def register(group: click.Group) -> None:
    group.add_command(registry_group)
    group.add_command(gc_command)
