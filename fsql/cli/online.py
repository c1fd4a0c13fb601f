"""Online-store commands: ``fsql get`` reads current feature values for entity keys.

``fsql get user_purchase_sum_30d user_country --key u00001 --key u00002`` prints one row per
key; ``--json`` prints a list of objects (key columns, then one field per feature). Values
are what the Python API's ``get_online_features`` serves: the online store's active version,
TTL applied; ``ONLINE FALSE`` features go through the compute cache.
"""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from fsql.api.sync import SyncFeatureStore
from fsql.cli import CliContext, echo_json, pass_cli, print_table


def parse_key(text: str) -> Any:
    """``u1`` → ``'u1'``; ``a,7`` → ``('a', '7')`` (composite, in key order);
    ``user_id=a,item_id=7`` → ``{'user_id': 'a', 'item_id': '7'}``."""
    parts = text.split(",")
    if all("=" in p for p in parts) and len(parts) >= 1 and "=" in text:
        return {k.strip(): v for k, _, v in (p.partition("=") for p in parts)}
    return parts[0] if len(parts) == 1 else tuple(parts)


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
        parsed = [parse_key(k) for k in keys]
        rows = store.get_online_features_batch(list(features), parsed)
        key_names = metas[0].entity.key_names if metas else ("key",)
    records = []
    for text, row in zip(keys, rows, strict=True):
        parsed_key = parse_key(text)
        if isinstance(parsed_key, dict):
            key_values = [parsed_key.get(n) for n in key_names]
        elif isinstance(parsed_key, tuple):
            key_values = list(parsed_key)
        else:
            key_values = [parsed_key]
        records.append({**dict(zip(key_names, key_values, strict=False)), **row})
    if as_json:
        echo_json(records)
        return

    table = Table(box=None, pad_edge=False, header_style="bold")
    columns = list(records[0]) if records else []
    for column in columns:
        table.add_column(column)
    for record in records:
        table.add_row(*("NULL" if record[c] is None else str(record[c]) for c in columns))
    print_table(cli.out, table)


def register(group: click.Group) -> None:
    """Add the online-store commands to the ``fsql`` group."""
    group.add_command(get)
