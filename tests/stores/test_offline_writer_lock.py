"""Concurrent commits to one feature version of an S3 offline store are serialised by the
registry's writer lock; every locked commit removes files a killed run left behind."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from fsql.registry import open_registry_url
from fsql.stores.offline import OfflineStore
from tests.stores.test_offline_store import SCHEMA, read, stage, t


def commit_days_at_once(
    store: OfflineStore, monkeypatch: pytest.MonkeyPatch, *, both_read_first: bool = False
) -> None:
    """Two threads commit June 1 and June 2 at the same moment; each waits between reading the
    manifest and writing the new one, so unserialised commits lose one of the two days.

    ``both_read_first`` makes that interleaving certain rather than likely (on a loaded machine
    one thread could otherwise finish before the other starts): each thread waits before its
    manifest write until both have read the manifest. Only for unserialised commits: under the
    writer lock the second thread cannot get there while the first holds the lock."""
    real = OfflineStore._write_manifest
    both_read = threading.Barrier(2)

    def slow_write(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if both_read_first:
            both_read.wait(timeout=60)
        else:
            time.sleep(0.3)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(OfflineStore, "_write_manifest", slow_write)
    staged = {day: stage(store, [("a", t(day), float(day))]) for day in (1, 2)}
    threads = [
        threading.Thread(
            target=store.commit, args=("f", 1, staged[day], t(day), t(day + 1), SCHEMA)
        )
        for day in (1, 2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)


@pytest.mark.s3
def test_unserialised_s3_commits_lose_a_day(s3_endpoint, monkeypatch) -> None:  # type: ignore
    """Why the lock exists: S3 has no lock of its own, the last manifest written wins."""
    store = OfflineStore.open(s3_endpoint.uri, s3_endpoint.filesystem())
    commit_days_at_once(store, monkeypatch, both_read_first=True)
    assert len(read(store)) == 1


@pytest.mark.s3
def test_s3_commits_serialised_by_the_registry_keep_both_days(
    s3_endpoint, monkeypatch, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    store = OfflineStore.open(s3_endpoint.uri, s3_endpoint.filesystem())
    with open_registry_url(f"sqlite:///{tmp_path}/registry.db") as registry:
        store.writer_lock = registry.writer_lock
        commit_days_at_once(store, monkeypatch)
    assert read(store) == [("a", t(1), 1.0), ("a", t(2), 2.0)]


def test_a_locked_commit_removes_what_a_killed_run_left(tmp_path: Path) -> None:
    store = OfflineStore.open(str(tmp_path / "offline"))
    first = store.commit("f", 1, stage(store, [("a", t(1), 1.0)]), t(1), t(2), SCHEMA)
    stray = tmp_path / "offline/feature=f/version=1/date=2024-06-03/part-killed-0.parquet"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"left by a run killed before its manifest swap")
    again = store.commit("f", 1, stage(store, [("a", t(1), 5.0)]), t(1), t(2), SCHEMA)
    assert not stray.exists()
    # the replaced file is still there until the caller's ledger commit, then deleted by it
    (old,) = first.files
    assert again.obsolete == (old,) and (tmp_path / "offline/feature=f/version=1" / old).exists()
    store.delete_files("f", 1, again.obsolete)
    assert read(store) == [("a", t(1), 5.0)]
    assert store.vacuum("f", 1) == []
