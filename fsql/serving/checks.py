"""Checks that turn a silent NULL into a word: shared by the CLI (``fsql get``, ``fsql
training-set``) and the Python API (``get_online_features``, ``get_batch_features``, training
sets), so both front ends say the same thing for the same request.

Two kinds of outcome:

* **Errors** (:class:`EntityKeyError`) where the request cannot mean anything: features of two
  entities read with one key that names only one of them, a key that does not convert to its
  column's type (``'abc'`` for a ``BIGINT`` key), a composite key given as one value.
* **Notices** (:class:`Notice`) where the answer is NULL for a reason the semantics do not
  give: a feature applied but never materialized, materialized offline but never pushed online,
  spine rows before the feature's first materialized tick. The CLI prints them on stderr (and in
  ``--json`` where the output is a document), the API raises them as Python warnings of the
  classes below and puts them in the returned table's metadata.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fsql.errors import FsqlError
from fsql.registry.catalog import FeatureMeta

if TYPE_CHECKING:  # pragma: no cover
    from fsql.language.definitions import EntityDef
    from fsql.registry.base import Registry
    from fsql.stores.online import OnlineStore
    from fsql.workspace import Workspace

#: key column types whose values are integers
INTEGER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "INT", "BIGINT", "HUGEINT", "UTINYINT",
                 "USMALLINT", "UINTEGER", "UBIGINT")  # fmt: skip


class FsqlDataWarning(UserWarning):
    """A value served as NULL (or missing) for a reason other than the semantics: the base
    class of fsql's data warnings (``warnings.simplefilter('error', FsqlDataWarning)`` turns
    them all into exceptions)."""


class NeverMaterializedWarning(FsqlDataWarning):
    """The feature version was applied but never materialized: every value read is NULL."""


class NotOnlineWarning(FsqlDataWarning):
    """The feature version is materialized offline but was never pushed to the online store."""


class BeforeFirstTickWarning(FsqlDataWarning):
    """Spine rows are earlier than the feature's first materialized tick: their values are NULL
    because nothing was computed there, not because the data says so."""


class EntityKeyError(FsqlError, ValueError):
    """A key that cannot name an entity of the requested features."""


@dataclass(frozen=True)
class Notice:
    """One reason a value is NULL that the semantics do not give."""

    feature: str
    category: type[FsqlDataWarning]
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"feature": self.feature, "kind": self.category.__name__, "message": self.message}


def emit(notices: Sequence[Notice], stacklevel: int = 3) -> None:
    """Raise ``notices`` as Python warnings (the API's way of saying them)."""
    for notice in notices:
        warnings.warn(notice.message, notice.category, stacklevel=stacklevel)


def notices_metadata(notices: Sequence[Notice]) -> list[dict[str, str]]:
    return [n.to_dict() for n in notices]


# --- entities and keys ---------------------------------------------------------------------------


def one_entity(metas: Sequence[FeatureMeta], how: str = "one fsql get") -> EntityDef:
    """The entity every requested feature describes; features of two entities cannot share
    one key (an error naming both)."""
    first = metas[0]
    for meta in metas[1:]:
        if meta.entity.name != first.entity.name:
            raise EntityKeyError(
                f"{first.name} describes entity {first.entity.name} (key "
                f"{', '.join(first.entity.key_names)}) and {meta.name} describes entity "
                f"{meta.entity.name} (key {', '.join(meta.entity.key_names)}): {how} reads the "
                "features of one entity; make one call per entity"
                + ("" if how.startswith("one fsql") else
                   ", or pass each key as a dict naming every key column")  # fmt: skip
            )
    return first.entity


def check_key_entities(metas: Sequence[FeatureMeta], keys: Sequence[Any]) -> None:
    """Features of several entities may be read together only with dict keys that name every
    key column of each (``{'user_id': 'u1', 'merchant_id': 'm1'}``); anything else would
    silently read one entity's key as the other's."""
    entities = {m.entity.name for m in metas}
    if len(entities) > 1 and not all(isinstance(k, dict) for k in keys):
        one_entity(metas, "a call with a scalar or tuple key")


def convert_key_value(entity: EntityDef, column: str, type_: str, value: Any, shown: Any) -> Any:
    """``value`` for key column ``column`` of type ``type_``: integers stay, strings holding an
    integer become one, anything else is an :class:`EntityKeyError` (it could never match)."""
    if type_.upper() not in INTEGER_TYPES or (type(value) is int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    elif isinstance(value, float) and value.is_integer():
        return int(value)
    raise EntityKeyError(
        f"key {shown!r}: the key column {column} of entity {entity.name} is {type_}, and "
        f"{value!r} is not an integer"
    )


def typed_entity_key(entity: EntityDef, key: Any) -> Any:
    """A key given to the API, its values converted where an integer column needs one (see
    :func:`convert_key_value`); the key keeps its shape (scalar, tuple or dict)."""
    columns = entity.keys
    if not any(c.type.upper() in INTEGER_TYPES for c in columns):
        return key
    if isinstance(key, dict):
        return {
            n: (convert_key_value(entity, n, c.type, key[n], key) if (c := _col(entity, n)) else
                key[n])  # fmt: skip
            for n in key
        }
    if isinstance(key, tuple | list):
        if len(key) != len(columns):
            return key  # entity_key_tuple says what is wrong
        return tuple(
            convert_key_value(entity, c.name, c.type, v, key)
            for c, v in zip(columns, key, strict=True)
        )
    if len(columns) == 1:
        return convert_key_value(entity, columns[0].name, columns[0].type, key, key)
    return key


def _col(entity: EntityDef, name: str) -> Any:
    for column in entity.keys:
        if column.name == name:
            return column
    return None


# --- never materialized, never pushed ------------------------------------------------------------


def not_online_notice(registry: Registry, meta: FeatureMeta) -> Notice:
    """Why the online store has nothing of ``meta``'s version, and the command that fixes it."""
    fix = f"`fsql materialize {meta.name} --start <first day to compute, e.g. -7d> --end now`"
    if registry.ledger_intervals(meta.name, meta.version):
        what = (
            f"{meta.name} v{meta.version} is materialized offline but was never pushed to "
            "the online store (materialized with --no-online, or the push failed)"
        )
        category: type[FsqlDataWarning] = NotOnlineWarning
    else:
        what = f"{meta.name} v{meta.version} was applied but never materialized"
        category = NeverMaterializedWarning
    return Notice(
        meta.name, category,
        f"{what}, so its values here were computed on demand by the compute cache (at the "
        f"current tick; slower than an online read); run {fix} to serve it from the online "
        "store",
    )  # fmt: skip


def never_served(
    registry: Registry, online_store: OnlineStore, metas: Sequence[FeatureMeta]
) -> list[Notice]:
    """Notices for ONLINE TRUE features the online store has nothing of (applied but never
    materialized, or materialized with --no-online): reads serve them through the compute
    cache (:meth:`fsql.api.SyncFeatureStore.get_online_features`), and ``fsql get`` says so."""
    online = [m for m in metas if m.definition.online and m.pinned is None]
    if not online:
        return []
    active = online_store.active_versions([m.name for m in online])
    return [not_online_notice(registry, m) for m in online if active.get(m.name) is None]


# --- offline reads ---------------------------------------------------------------------------


def training_notices(
    workspace: Workspace, spine_times_us: Any, feature_ids: Sequence[str]
) -> list[Notice]:
    """Why some of a training set's values are NULL beyond the semantics: features never
    materialized, spine rows before a feature's first materialized tick (:func:`offline_notices`;
    ``spine_times_us``: :func:`fsql.compute.training.valid_times` of the spine). The CLI's
    ``training-set`` and the API's ``get_batch_features`` say the same."""
    metas = workspace.catalog.features(feature_ids)
    return offline_notices(
        workspace.registry,
        [(m.name, m.pinned or m.version, m.definition.every) for m in metas],
        spine_times_us,
    )


def offline_notices(
    registry: Registry,
    features: Sequence[tuple[str, int, Any]],
    spine_times_us: Any | None = None,
) -> list[Notice]:
    """Notices for an offline read (a training set, or a batch lookup at now) of ``features``
    — (name, version, EVERY as a timedelta) — at spine times ``spine_times_us`` (a numpy array
    of microseconds since the epoch of the valid spine times; None: no spine)."""
    notices = []
    for name, version, every in features:
        intervals = registry.ledger_intervals(name, version)
        if not intervals:
            notices.append(
                Notice(
                    name, NeverMaterializedWarning,
                    f"{name} v{version} was applied but never materialized, so its values here "
                    f"are NULL; run `fsql materialize {name} --start <first day the spine "
                    "needs> --end now`",
                )
            )  # fmt: skip
            continue
        if spine_times_us is None or len(spine_times_us) == 0:
            continue
        first_tick = _first_tick(intervals[0][0], every)
        first_us = int(first_tick.timestamp() * 1_000_000)
        early = int((spine_times_us < first_us).sum())
        if early:
            earliest = datetime.fromtimestamp(int(spine_times_us.min()) / 1e6, UTC)
            notices.append(
                Notice(
                    name, BeforeFirstTickWarning,
                    f"{early} of {len(spine_times_us)} spine row(s) are before the first "
                    f"materialized tick of {name} v{version} ({first_tick.isoformat()}), so "
                    f"their {name} is NULL; run `fsql materialize {name} --start "
                    f"{earliest.date().isoformat()} --end {first_tick.date().isoformat()}` to "
                    "compute the earlier ticks",
                )
            )  # fmt: skip
    return notices


def _first_tick(start: datetime, every: Any) -> datetime:
    """The first tick (a whole multiple of EVERY since the epoch) at or after ``start``."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    steps = -((epoch - start) // every)  # ceiling division
    return epoch + steps * every
