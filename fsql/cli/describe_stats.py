"""What ``fsql describe FEATURE`` shows of a feature's data: the last run's statistics and a
small text histogram.

The statistics (rows, null fraction, min/max/mean, approximate distinct count) are the ones
every materialization computes on the rows it commits — the value *changes* the offline store
keeps (docs/semantics.md) — and stores with its run record (:mod:`fsql.compute.runs`), so
describing costs one registry query. The histogram is computed on demand, only on a terminal
(or with ``--histogram``): every entity's value at the last run's last tick (the stored changes
up to it, expanded with :func:`fsql.compute.timelines.expand`), in equal-width bins.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from fsql.compute.materialize import timeline_schema
from fsql.compute.runs import RunLog, RunRecord
from fsql.compute.timelines import expand
from fsql.registry import Registry
from fsql.workspace import Workspace

BAR = "█"
BINS = 8
WIDTH = 30


def last_run(registry: Registry, feature: str, version: int) -> RunRecord | None:
    """The newest successful run of this feature version that computed something."""
    for run in RunLog(registry).runs(feature=feature, limit=50):
        if run.version == version and run.status == "success" and run.rows:
            return run
    return None


def run_json(run: RunRecord) -> dict[str, Any]:
    stats = {k: v for k, v in run.stats.items() if k != "checks"}
    return {
        "run_id": run.id, "status": run.status, "start": run.start.isoformat(),
        "end": run.end.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "rows": run.rows, "stats": stats,
    }  # fmt: skip


def stats_line(data: dict[str, Any]) -> str:
    """``13 rows written; 133 values (entity × tick): 0.8% NULL, min 1.5, max 980.2, mean
    51.3, ≈120 distinct``."""
    stats = data["stats"]
    parts = [f"{data['rows']} rows written; {stats.get('rows', 0)} values (entity × tick): "]
    if stats.get("null_fraction") is not None:
        parts.append(f"{stats['null_fraction'] * 100:.1f}% NULL")
    for key in ("min", "max", "mean"):
        if stats.get(key) is not None:
            parts.append(f"{key} {_number(stats[key])}")
    if stats.get("distinct_count") is not None:
        parts.append(f"≈{stats['distinct_count']} distinct")
    return parts[0] + ", ".join(parts[1:])


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def last_tick_values(workspace: Workspace, feature: str, version: int,
                     run: RunRecord) -> tuple[datetime, pa.Array] | None:  # fmt: skip
    """Every entity's value at the run's last tick (current version only: its timeline
    schema)."""
    analysis = workspace.registry.analysis()
    resolved = analysis.features.get(feature)
    if resolved is None or workspace.registry.current()[feature].version != version:
        return None
    every = resolved.definition.every
    last = max(run.start, run.end - every)  # a run's [start, end) is whole ticks
    changes = workspace.offline_store.read_timeline(
        feature, version, timeline_schema(resolved), None, last + every
    )
    if changes.num_rows == 0:
        return None
    dense = expand(changes, resolved.entity.key_names, feature, [last])
    return last, dense.column(feature).combine_chunks()


def histogram(values: pa.Array, bins: int = BINS, width: int = WIDTH) -> list[str]:
    """Equal-width bins of the numeric, non-NULL ``values`` as text bars; the most frequent
    values with their counts for text and booleans. Empty when there is nothing to draw."""
    present = values.drop_null()
    if len(present) == 0:
        return []
    kind = present.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        numbers = [float(v) for v in present.to_pylist() if not math.isnan(float(v))]
        if not numbers:
            return []
        low, high = min(numbers), max(numbers)
        if low == high:
            return [f"{_number(low):>12}  {BAR * width} {len(numbers)}"]
        step = (high - low) / bins
        counts = [0] * bins
        for n in numbers:
            counts[min(int((n - low) / step), bins - 1)] += 1
        peak = max(counts)
        return [
            f"{_number(low + i * step):>12} … {_number(low + (i + 1) * step):<12} "
            f"{BAR * round(width * c / peak):<{width}} {c}"
            for i, c in enumerate(counts)
        ]
    counted = pc.value_counts(present).to_pylist()
    counted.sort(key=lambda vc: (-vc["counts"], str(vc["values"])))
    top = counted[:bins]
    peak = top[0]["counts"]
    return [f"{str(vc['values'])[:24]:>24}  {BAR * round(width * vc['counts'] / peak):<{width}} "
            f"{vc['counts']}" for vc in top]  # fmt: skip
