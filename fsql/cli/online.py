"""Online-store commands: ``fsql get`` reads current feature values for entity keys.

``fsql get user_purchase_sum_30d user_country --key u00001 --key u00002`` prints one row per
key; ``--json`` prints a list of objects (key columns, then one field per feature). Values
are what the Python API's ``get_online_features`` serves: the online store's active version,
TTL applied; ``ONLINE FALSE`` features, and features the online store has nothing of (applied
but never materialized, or never pushed online), go through the compute cache.

NULL is printed only where the semantics say the value is NULL (no value for the key at now,
or its TTL ran out). A feature served by the compute cache because it was never pushed online
gets a note on stderr with the command that fixes it; features of different entities in one call, a key of the wrong type or
with the wrong number of columns are errors naming the entity, the key column and its type.
"""

from __future__ import annotations

import json
import math
from typing import Any

import click
from rich.table import Table

from fsql.api.sync import SyncFeatureStore
from fsql.cli import CliContext, data_row, echo_json, pass_cli, print_table
from fsql.errors import FsqlError
from fsql.language.definitions import EntityDef
from fsql.serving.checks import INTEGER_TYPES as _INTEGER_TYPES
from fsql.serving.checks import never_served, one_entity


def parse_key(text: str) -> Any:
    """``u1`` → ``'u1'``; ``a,7`` → ``('a', '7')`` (composite, in key order);
    ``user_id=a,item_id=7`` → ``{'user_id': 'a', 'item_id': '7'}``."""
    parts = text.split(",")
    if all("=" in p for p in parts) and len(parts) >= 1 and "=" in text:
        return {k.strip(): v for k, _, v in (p.partition("=") for p in parts)}
    return parts[0] if len(parts) == 1 else tuple(parts)


def display_value(value: Any) -> str:
    """A value as the table view shows it: NULL for None and doubles rounded for reading —
    at most 6 decimals, without the binary noise (``3471.5299999999997`` → ``3471.53``), small
    ones to 6 significant digits (``1.234567e-07`` → ``1.23457e-07``). ``--json`` prints the
    exact value (the shortest text that reads back as the same double)."""
    if value is None:
        return "NULL"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        if value != 0 and abs(value) < 1e-4:
            return f"{value:.6g}"
        return f"{round(value, 6):.15g}"
    return str(value)


def typed_key(entity: EntityDef, text: str) -> Any:
    """The key ``--key text`` names, checked against ``entity``'s key columns: the right number
    of values, integers where the column is an integer type. A scalar for a one-column key,
    else a tuple in key order."""
    parsed = parse_key(text)
    names = entity.key_names
    if isinstance(parsed, dict):
        unknown = [n for n in parsed if n not in names]
        missing = [n for n in names if n not in parsed]
        if unknown or missing:
            problem = (
                f"{', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not a key column"
                if unknown else f"{', '.join(missing)} missing"
            )  # fmt: skip
            raise FsqlError(
                f"--key {text}: {problem}; entity {entity.name} has key column(s) "
                f"{', '.join(names)}: {_key_example(entity)}"
            )
        values = [parsed[n] for n in names]
    else:
        values = [parsed] if isinstance(parsed, str) else list(parsed)
        if len(values) != len(names):
            raise FsqlError(
                f"--key {text}: entity {entity.name} has {len(names)} key column(s) "
                f"({', '.join(names)}) and the key gives {len(values)} value(s): "
                f"{_key_example(entity)}"
            )
    typed: list[Any] = []
    for column, value in zip(entity.keys, values, strict=True):
        value = value.strip()
        if column.type.upper() in _INTEGER_TYPES:
            try:
                typed.append(int(value))
            except ValueError:
                raise FsqlError(
                    f"--key {text}: the key column {column.name} of entity {entity.name} is "
                    f"{column.type}, and {value!r} is not an integer"
                ) from None
        else:
            typed.append(value)
    return typed[0] if len(typed) == 1 else tuple(typed)


def _key_example(entity: EntityDef) -> str:
    """How to spell a key of ``entity`` on the command line, e.g. ``--key a,7 or --key
    user_id=a,item_id=7``."""
    samples = ["7" if c.type.upper() in _INTEGER_TYPES else "a" for c in entity.keys]
    if len(samples) == 1:
        return f"pass one value per key, e.g. --key {samples[0]}"
    ordered = ",".join(samples)
    named = ",".join(f"{c.name}={v}" for c, v in zip(entity.keys, samples, strict=True))
    return f"pass --key {ordered} (values in key order) or --key {named}"


@click.command("get")
@click.argument("features", nargs=-1, required=True)
@click.option(
    "--key",
    "keys",
    multiple=True,
    required=True,
    help="An entity key; repeat for several keys. Composite keys: values in key order "
    "separated by commas (a,7) or column=value pairs (user_id=a,item_id=7).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON: a list of objects, one per key.")
@pass_cli
def get(cli: CliContext, features: tuple[str, ...], keys: tuple[str, ...], as_json: bool) -> None:
    """Read current values of FEATURE... (names, name@version or feature sets) for --key."""

    with SyncFeatureStore(cli.config) as store:
        metas = store.catalog.features(features)
        entity = one_entity(metas)
        typed = [typed_key(entity, k) for k in keys]
        notes = never_served(store.registry, store.online_store, metas)
        rows = store.get_online_features_batch(list(features), typed)
    key_names = entity.key_names
    records = []
    for key, row in zip(typed, rows, strict=True):
        key_values = list(key) if isinstance(key, tuple) else [key]
        records.append({**dict(zip(key_names, key_values, strict=True)), **row})
    if as_json:
        # stdout keeps its shape (a list of objects); each notice is one JSON object on stderr
        for note in notes:
            cli.err.print(json.dumps({"notice": note.to_dict()}), markup=False, soft_wrap=True)
        echo_json(records)
        return
    for note in notes:
        cli.err.print(f"Note: {note.message}", style="yellow", markup=False)

    table = Table(box=None, pad_edge=False, header_style="bold")
    columns = list(records[0]) if records else []
    for column in columns:
        table.add_column(column)
    for record in records:
        data_row(table, *(display_value(record[c]) for c in columns))
    print_table(cli.out, table)


def register(group: click.Group) -> None:
    """Add the online-store commands to the ``fsql`` group."""
    group.add_command(get)
