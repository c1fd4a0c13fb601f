"""Registry commands: ``init``, ``plan``, ``apply``, ``ls``, ``describe``.

``plan`` and ``apply`` read every ``.sql`` file of the repo, validate the whole set (all problems
are reported, nothing is written when there is one), and diff it against the registry. ``apply``
writes exactly the plan it showed, in one transaction; if the registry moved in between, the
registry refuses and nothing is written.

JSON shapes (``--json``) are documented in docs/cli.md and kept stable: fields may be added,
never renamed or removed.
"""

from __future__ import annotations

import shutil
import sys
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table
from rich.text import Text

from fsql.cli import (
    CliContext,
    _format_problem,
    data_row,
    echo_json,
    pass_cli,
    print_table,
    sorted_problems,
    styled,
)
from fsql.cli.context import open_registry, open_workspace
from fsql.cli.describe_stats import histogram as histogram_lines
from fsql.cli.describe_stats import last_run, last_tick_values, run_json, stats_line
from fsql.errors import DefinitionError, FsqlError, Problem, RegistryNotFound
from fsql.examples import DEFAULT_ROWS, generate_example_data, today_end
from fsql.intervals import format_interval
from fsql.language.analysis import Removed, analyze
from fsql.language.analysis.locations import (
    SourceRoots,
    analyze_within,
    missing_source_paths,
)
from fsql.language.definitions import (
    KINDS,
    CheckDef,
    EntityDef,
    FeatureDef,
    FeatureSetDef,
    SourceDef,
)
from fsql.language.project import analyze_repo

if TYPE_CHECKING:
    from rich.console import Console

    from fsql.language.analysis import Analysis
    from fsql.language.definitions import AnyDefinition, DropDef
    from fsql.registry import Registry
    from fsql.registry.plan import Change, Plan

ACTION_STYLE = {"add": ("+", "green"), "change": ("~", "yellow"), "drop": ("-", "red")}
KIND_WORD = {"entity": "entity", "source": "source", "feature": "feature",
             "feature_set": "feature set", "check": "check"}


# ----------------------------------------------------------------------------------- helpers


def _load_desired(cli: CliContext) -> tuple[Analysis, list[DropDef]]:
    """Parse and analyse every definition of the repo (raises DefinitionError with all
    problems)."""

    roots = SourceRoots.from_config(cli.config)  # fsql.toml first: a bad config fails early
    seen: list[DropDef] = []

    def analyze_state(definitions: list[AnyDefinition], drops: list[DropDef]) -> Analysis:
        seen[:] = drops
        try:
            return analyze_within(definitions, roots, drops=drops)
        except DefinitionError as exc:
            if not any(p.code.startswith("unknown-") for p in exc.problems):
                raise
            # an unknown name may be one the repo no longer declares: ask the registry
            removed = _removed(cli, definitions, drops)
            if not removed:
                raise
            return analyze_within(definitions, roots, drops=drops, removed=removed)

    # files that parse are analysed even while another has a syntax error: all problems at once
    return analyze_repo(cli.repo, analyze_state), seen


def _removed(
    cli: CliContext, definitions: list[AnyDefinition], drops: list[DropDef]
) -> dict[str, Removed]:
    """The registry's current definitions that the repo no longer declares (nor DROPs), as
    plain data for the analysis; empty when there is no registry or it cannot be read (the
    problems are then reported as "unknown", as without this)."""
    try:
        current = open_registry(cli, create=False).current()
    except FsqlError:
        return {}
    declared = {d.name for d in definitions} | {d.name for d in drops}
    return {
        name: Removed(record.kind, record.version, record.file)
        for name, record in current.items()
        if name not in declared
    }


def _plan_repo(
    cli: CliContext, as_json: bool, prune_foreign: bool = False
) -> tuple[Registry, Analysis, Plan]:
    """Parse and analyse the repo and plan it against the registry: (registry, the desired
    state, the plan). With ``as_json``, definition errors are printed as JSON before raising."""
    try:
        with cli.err.status("Reading definitions…"):
            desired, drops = _load_desired(cli)
            registry = open_registry(cli)
            return registry, desired, registry.plan(
                desired, drops=drops, prune_foreign=prune_foreign
            )
    except DefinitionError as exc:
        if as_json:
            echo_json({"ok": False, "repo": str(cli.repo), "errors": _errors_json(exc)})
        raise


def _warnings(cli: CliContext, desired: Analysis, as_json: bool) -> list[Problem]:
    """Problems that do not block apply (a source whose local path does not exist yet),
    printed on stderr as ``Warning: file:line:col: ...`` unless ``as_json``."""
    warnings = sorted_problems(missing_source_paths(desired.definitions.values(), cli.repo))
    if not as_json:
        for warning in warnings:
            cli.err.print(
                "Warning: " + _format_problem(warning, cli.repo), style="yellow", markup=False
            )
    return warnings


def _record_json(record: Any) -> dict[str, Any]:
    """The registry's stable JSON form of a VersionRecord (used by apply, ls and describe)."""
    data: dict[str, Any] = record.to_json()
    return data


def _options(definition: AnyDefinition) -> dict[str, Any]:
    """The clauses of a definition as plain JSON values (intervals as '30 days')."""

    def interval(value: Any) -> str | None:
        return format_interval(value) if value is not None else None

    if isinstance(definition, EntityDef):
        return {"keys": [{"name": c.name, "type": c.type} for c in definition.keys]}
    if isinstance(definition, SourceDef):
        return {
            "columns": [{"name": c.name, "type": c.type} for c in definition.columns],
            "path": definition.path,
            "format": definition.format,
            "event_time": definition.event_time,
            "created_time": definition.created_time,
        }
    if isinstance(definition, FeatureDef):
        return {
            "entity": definition.entity,
            "type": definition.type,
            "window": interval(definition.window),
            "every": interval(definition.every),
            "ttl": interval(definition.ttl),
            "online": definition.online,
            # inline data checks, as written after EXPECT (None when there are none)
            "expect": ", ".join(
                e + (" WARN" if severity == "warn" else "") for e, severity in definition.expect
            ) or None,
            "query": definition.query,
        }  # fmt: skip
    if isinstance(definition, FeatureSetDef):
        return {"features": list(definition.features)}
    if isinstance(definition, CheckDef):
        return {
            "feature": definition.feature,
            "expression": definition.expression,
            "severity": definition.severity,
        }
    return {}  # pragma: no cover - every kind is handled above


def _summary(changes: tuple[Change, ...] | list[Change]) -> str:
    counts = {"add": 0, "change": 0, "drop": 0}
    for c in changes:
        counts[c.action] += 1
    return f"{counts['add']} to add, {counts['change']} to change, {counts['drop']} to drop."


def _print_plan(console: Console, plan: Plan, repo: Path) -> None:

    _print_foreign(console, plan)
    if plan.empty:
        console.print(
            f"No changes: the registry matches {repo} (revision {plan.base_revision}).",
            markup=False,
        )
        return
    table = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
    for column in ("", "KIND", "NAME", "VERSION", "REASON"):
        table.add_column(column)
    for c in plan.changes:
        symbol, style = ACTION_STYLE[c.action]
        if c.action == "add":
            version = f"v{c.new_version}"
        elif c.action == "change":
            version = f"v{c.old_version} → v{c.new_version}"
        else:
            version = f"v{c.old_version}"
        data_row(table, styled(symbol, style), KIND_WORD.get(c.kind, c.kind), c.name, version,
                 c.reason)  # fmt: skip
    console.print(f"Plan for {repo} against registry revision {plan.base_revision}:", markup=False)
    print_table(console, table)
    console.print(_summary(plan.changes))


def _print_foreign(console: Console, plan: Plan) -> None:
    """The definitions made outside the repo that the plan keeps (see docs/language.md)."""
    if not plan.foreign:
        return
    console.print(
        f"Kept: {len(plan.foreign)} definition{'s' if len(plan.foreign) != 1 else ''} defined "
        "elsewhere (not in this repo; --prune-foreign drops them):", markup=False,
    )  # fmt: skip
    table = Table(box=None, show_header=False, pad_edge=False)
    for column in ("", "KIND", "NAME", "VERSION", "ORIGIN"):
        table.add_column(column)
    for f in plan.foreign:
        where = {"api": "the Python API", "sql": "SQL over the wire"}.get(f.origin, f.origin)
        data_row(table, "=", KIND_WORD.get(f.kind, f.kind), f.name, f"v{f.version}",
                 f"defined elsewhere ({f.origin}: {where})")  # fmt: skip
    print_table(console, table)


def _errors_json(exc: DefinitionError) -> list[dict[str, Any]]:
    return [p.to_dict() for p in sorted_problems(exc.problems)]


# ----------------------------------------------------------------------------------- commands


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True,
              help="Scaffold into a non-empty folder (files with the same names are replaced).")
@click.option("--rows", type=click.IntRange(min=1), default=None,
              help="Purchases to generate for the example data (default 3000).")
@click.option("--no-data", is_flag=True, help="Do not generate the example data set.")
@pass_cli
def init(cli: CliContext, directory: Path, force: bool, rows: int | None, no_data: bool) -> None:
    """Create a new feature repo in DIRECTORY: fsql.toml, example .sql files and data."""

    target = directory.resolve()
    if target.exists() and any(target.iterdir()) and not force:
        raise FsqlError(
            f"{directory} is not empty; choose a new folder, or pass --force to add the example "
            "files to it (files with the same names are replaced)"
        )
    template = resources.files("fsql") / "templates" / "repo"
    written = _copy_tree(template, target)
    cli.err.print(f"Created {len(written)} files in {target}", markup=False)
    if not no_data:
        with cli.err.status("Generating example data…"):
            counts = generate_example_data(target / "data", rows=rows or DEFAULT_ROWS,
                                           end=today_end())
        summary = ", ".join(f"{name} {count:,}" for name, count in counts.items())
        cli.err.print(f"Generated data/ ({summary} rows)")
    for path in written:
        cli.out.print(f"  {path.relative_to(target)}", markup=False)
    cli.out.print(f"\nNext: cd {directory} && fsql plan && fsql apply", markup=False)


def _copy_tree(source: Any, target: Path) -> list[Path]:
    """Copy a package resource folder; ``gitignore`` becomes ``.gitignore`` (setuptools does
    not package dotfiles)."""
    written: list[Path] = []
    target.mkdir(parents=True, exist_ok=True)
    for entry in sorted(source.iterdir(), key=lambda e: e.name):
        name = ".gitignore" if entry.name == "gitignore" else entry.name
        if entry.is_dir():
            if name == "__pycache__":
                continue
            written += _copy_tree(entry, target / name)
        else:
            with resources.as_file(entry) as src:
                shutil.copyfile(src, target / name)
            written.append(target / name)
    return written


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON (see docs/cli.md).")
@click.option("--prune-foreign", is_flag=True,
              help="Also drop definitions made by the Python API or SQL over the wire that "
              "the repo does not declare (kept otherwise).")
@pass_cli
def plan(cli: CliContext, as_json: bool, prune_foreign: bool) -> None:
    """Show what `fsql apply` would change: added, changed and dropped definitions."""
    registry, desired, the_plan = _plan_repo(cli, as_json, prune_foreign)
    warnings = [w.to_dict() for w in _warnings(cli, desired, as_json)]
    if as_json:
        echo_json({"ok": True, "repo": str(cli.repo), **the_plan.to_json(), "errors": [],
                   "warnings": warnings})
        return
    _print_plan(cli.out, the_plan, cli.repo)


@click.command()
@click.option("--json", "as_json", is_flag=True,
              help="Print the plan and the versions written as JSON (see docs/cli.md).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation on a terminal.")
@click.option("--prune-foreign", is_flag=True,
              help="Also drop definitions made by the Python API or SQL over the wire that "
              "the repo does not declare (kept otherwise).")
@pass_cli
def apply(cli: CliContext, as_json: bool, yes: bool, prune_foreign: bool) -> None:
    """Validate the repo and apply its plan to the registry, atomically.

    On a terminal, asks before writing unless --yes; elsewhere (scripts, CI) it applies.
    Definitions made by the Python API or over the wire are kept unless --prune-foreign.
    """
    registry, desired, the_plan = _plan_repo(cli, as_json, prune_foreign)
    warnings = [w.to_dict() for w in _warnings(cli, desired, as_json)]
    if not as_json:
        _print_plan(cli.out, the_plan, cli.repo)
    if the_plan.empty:
        if as_json:
            echo_json({"ok": True, "repo": str(cli.repo), "plan": the_plan.to_json(),
                       "applied": [], "errors": [], "warnings": warnings})
        return
    if not yes and not as_json and sys.stdin.isatty():
        click.confirm("Apply these changes?", abort=True)
    with cli.err.status("Applying…"):
        records = registry.apply(the_plan, desired)  # created_by: the OS user
    if as_json:
        echo_json({"ok": True, "repo": str(cli.repo), "plan": the_plan.to_json(),
                   "applied": [_record_json(r) for r in records], "errors": [],
                   "warnings": warnings})
        return
    cli.out.print(f"Applied {len(records)} change{'s' if len(records) != 1 else ''}: "
                  f"registry revision {registry.revision()}.")


@click.command(name="ls")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON (see docs/cli.md).")
@click.option("--kind", "kinds", multiple=True, type=click.Choice(KINDS),
              help="Only this kind (repeatable): entity, source, feature, feature_set, check.")
@pass_cli
def ls(cli: CliContext, as_json: bool, kinds: tuple[str, ...]) -> None:
    """List the registry's current entities, sources, features, feature sets and checks."""


    try:
        registry = open_registry(cli, create=False)
    except RegistryNotFound as exc:
        if as_json:
            echo_json({"revision": 0, "objects": []})
        else:
            cli.out.print(f"The registry is empty: {exc}.", markup=False)
        return
    rank: dict[str, int] = {k: i for i, k in enumerate(KINDS)}
    records = sorted(
        (r for r in registry.current().values() if not kinds or r.kind in kinds),
        key=lambda r: (rank.get(r.kind, len(rank)), r.name),
    )
    types = _value_types(registry)
    if as_json:
        echo_json({"revision": registry.revision(),
                   "objects": [{**_record_json(r), **_ls_details(r, types)} for r in records]})
        return
    if not records:
        cli.out.print("The registry is empty: run `fsql plan` and `fsql apply` first.")
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("KIND", "NAME", "VERSION", "ENTITY", "TYPE", "WINDOW", "ONLINE", "UPDATED"):
        table.add_column(column, no_wrap=True)
    for r in records:
        details = _ls_details(r, types)
        online = details.get("online")
        data_row(
            table, KIND_WORD.get(r.kind, r.kind), r.name, f"v{r.version}", details.get("entity") or "",
            details.get("type") or "", details.get("window") or "",
            "" if online is None else ("yes" if online else "no"),
            r.created_at.strftime("%Y-%m-%d %H:%M") if r.created_at else "",
        )
    print_table(cli.out, table)


def _value_types(registry: Registry) -> dict[str, str]:
    """Each current feature's value type (declared or inferred), by name."""
    return {name: f.value_type for name, f in registry.analysis().features.items()}


def _ls_details(record: Any, types: dict[str, str]) -> dict[str, Any]:
    """Kind-specific columns for ``ls``: a feature's entity, value type, window and online
    flag; a check's feature, expression and severity."""

    d = record.definition
    if isinstance(d, FeatureDef):
        return {"entity": d.entity, "type": types.get(d.name, d.type),
                "window": format_interval(d.window) if d.window else None, "online": d.online}
    if isinstance(d, CheckDef):
        return {"feature": d.feature, "expression": d.expression, "severity": d.severity}
    return {}


@click.command()
@click.argument("name")
@click.option("--version", "version", type=click.IntRange(min=1), default=None,
              help="Show this version (default: the current one).")
@click.option("--json", "as_json", is_flag=True, help="Print the description as JSON.")
@click.option("--histogram/--no-histogram", default=None,
              help="Draw the last tick's values as a text histogram (default: on a terminal).")
@pass_cli
def describe(cli: CliContext, name: str, version: int | None, as_json: bool,
             histogram: bool | None) -> None:  # fmt: skip
    """Show one definition: its SQL, type, options, dependencies, dependents and history; for
    a feature, its last run's statistics (and a histogram of its values on a terminal)."""
    registry = open_registry(cli, create=False)
    record = registry.get(name, version)
    history = registry.history(name)
    depends_on, dependents = _lineage_of(registry, record)
    data: dict[str, Any] = {
        **_record_json(record),
        "description": record.definition.description,
        "type": _value_type(registry, record),
        "options": _options(record.definition),
        "definition": record.definition.canonical_sql(),
        "source_text": record.source_text,
        "depends_on": depends_on,
        "dependents": dependents,
        "history": [_record_json(h) for h in history],
    }
    run = last_run(registry, name, record.version) if record.kind == "feature" else None
    if record.kind == "feature":
        data["last_run"] = run_json(run) if run is not None else None
    if as_json:
        echo_json(data)
        return
    _print_description(cli.out, data)
    if record.kind != "feature":
        return
    cli.out.print("\n[bold]Last run[/]")
    if run is None:
        cli.out.print(f"  (none: `fsql materialize {name} --start -7d --end now` computes it)",
                      markup=False)  # fmt: skip
        return
    last = data["last_run"]
    cli.out.print(f"  run {run.id}, [{last['start'][:16]}, {last['end'][:16]}): "
                  f"{stats_line(last)}", markup=False)  # fmt: skip
    if histogram is None:
        histogram = cli.out.is_terminal
    if histogram:
        found = last_tick_values(open_workspace(cli, create_registry=False), name,
                                 record.version, run)  # fmt: skip
        if found is not None:
            tick, values = found
            cli.out.print(f"\n[bold]Values at {tick.isoformat()[:16]}[/] ({len(values)} rows)")
            for line in histogram_lines(values):
                cli.out.print("  " + line, markup=False)


def _value_type(registry: Registry, record: Any) -> str | None:
    """A feature version's value type: re-analyse it with the versions of its inputs it was
    built against (so old versions get their own inferred type, not today's)."""

    if not isinstance(record.definition, FeatureDef):
        return None
    closure: dict[str, Any] = {record.name: record.definition}
    pending = list(record.dependencies)
    while pending:
        name, version = pending.pop()
        if name in closure:
            continue
        upstream = registry.get(name, version)
        closure[name] = upstream.definition
        pending.extend(upstream.dependencies)
    resolved = analyze(closure.values()).features.get(record.name)
    return resolved.value_type if resolved else record.definition.type


def _lineage_of(
    registry: Registry, record: Any
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """What ``record`` depends on (with the versions it was built against and, for the current
    version, the source columns it reads) and the current definitions that depend on it."""
    current = registry.current()
    is_current = record.name in current and current[record.name].version == record.version
    columns: dict[str, set[str]] = {}
    if is_current:
        for edge in registry.lineage():
            # an edge says: (from_kind, from_name) depends on (to_kind, to_name)[.column]
            from_kind, from_name, to_kind, to_name, column = _edge(edge)
            if from_name == record.name:
                found = columns.setdefault(to_name, set())
                if column:
                    found.add(column)
    rank: dict[str, int] = {k: i for i, k in enumerate(KINDS)}
    depends_on = []
    for dep, version in record.dependencies:
        kind = current[dep].kind if dep in current else registry.get(dep, version).kind
        depends_on.append({
            "kind": kind,
            "name": dep,
            "version": version,
            "columns": sorted(columns.get(dep, ())) if is_current else None,
        })
    depends_on.sort(key=lambda d: (rank.get(d["kind"], len(rank)), d["name"]))
    dependents = []
    for other in sorted(current.values(), key=lambda r: (rank.get(r.kind, len(rank)), r.name)):
        pins = dict(other.dependencies)
        if record.name in pins:
            dependents.append({"kind": other.kind, "name": other.name, "version": other.version,
                               "uses_version": pins[record.name]})
    return depends_on, dependents


def _edge(edge: Any) -> tuple[str, str, str, str, str | None]:
    if isinstance(edge, tuple):
        return edge  # type: ignore[return-value]
    return edge.from_kind, edge.from_name, edge.to_kind, edge.to_name, edge.column


def _print_description(console: Console, data: dict[str, Any]) -> None:

    status = " (retired)" if data["retired"] else ""
    title = f"{KIND_WORD.get(data['kind'], data['kind'])} {data['name']}"
    console.print(Text.assemble(styled(title, "bold"), f" v{data['version']}{status}"))
    if data["description"]:
        console.print(data["description"], markup=False)
    facts = Table(box=None, show_header=False, pad_edge=False)
    facts.add_column(style="bold")
    facts.add_column()
    if data["type"]:
        data_row(facts, "type", data["type"])
    for key, value in data["options"].items():
        if key in ("query", "type") or value is None:
            continue
        data_row(facts, key, _show(value))
    data_row(facts, "fingerprint", data["fingerprint"])
    data_row(facts, "file", data["file"] or "")
    created = (data["created_at"] or "")[:19].replace("T", " ")
    data_row(facts, "created", f"{created} UTC by {data['created_by'] or '?'}")
    print_table(console, facts)
    where = f" ({data['file']}:{data['line']})" if data.get("file") and data.get("line") else ""
    console.print(Text.assemble("\n", styled("Definition", "bold"), where))
    console.print((data["source_text"] or data["definition"]).strip(), markup=False)
    console.print("\n[bold]Depends on[/]")
    if not data["depends_on"]:
        console.print("  (nothing)")
    for d in data["depends_on"]:
        cols = f" ({', '.join(d['columns'])})" if d.get("columns") else ""
        console.print(f"  {KIND_WORD.get(d['kind'], d['kind'])} {d['name']} v{d['version']}{cols}",
                      markup=False)
    console.print("\n[bold]Used by[/]")
    if not data["dependents"]:
        console.print("  (nothing)")
    for d in data["dependents"]:
        uses = f" (built on v{d['uses_version']})" if d["uses_version"] != data["version"] else ""
        console.print(f"  {KIND_WORD.get(d['kind'], d['kind'])} {d['name']} v{d['version']}{uses}",
                      markup=False)
    console.print("\n[bold]History[/]")
    history = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("VERSION", "CREATED (UTC)", "BY", "CHANGE", "FINGERPRINT"):
        history.add_column(column)
    for h in data["history"]:
        version = f"v{h['version']}" + (" retired" if h["retired"] else "")
        data_row(history, version, (h["created_at"] or "")[:19].replace("T", " "),
                 h["created_by"] or "", h["reason"] or h["change"] or "", h["fingerprint"])
    print_table(console, history)


def _show(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(
            f"{v['name']} {v['type']}" if isinstance(v, dict) else str(v) for v in value
        )
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def register(group: click.Group) -> None:
    """Add the registry commands to the ``fsql`` group."""
    for command in (init, plan, apply, ls, describe):
        group.add_command(command)
