"""Registry.writer_lock: one holder at a time across processes and threads, on both backends;
a killed holder releases it (what serialises commits to an S3 offline store)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from fsql.errors import RegistryError
from fsql.registry import Registry, open_registry_url

HOLD = """
import sys, time
from fsql.registry import open_registry_url
registry = open_registry_url(sys.argv[1])
with registry.writer_lock(sys.argv[2], timeout=float(sys.argv[3])):
    print("held", flush=True)
    time.sleep(float(sys.argv[4]))
"""


def try_in_child(url: str, name: str) -> subprocess.CompletedProcess[str]:
    """Another process trying the lock for half a second."""
    return subprocess.run([sys.executable, "-c", HOLD, url, name, "0.5", "0"], text=True,
                          capture_output=True, timeout=120, cwd=os.getcwd(), check=False)  # fmt: skip


def test_a_lock_held_by_another_process_waits_and_dies_with_it(
    registry: Registry, registry_url: str
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, registry_url, "f v1", "60", "600"],
        stdout=subprocess.PIPE, cwd=os.getcwd(),
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
        with pytest.raises(RegistryError, match=r"waited 0.3 s for the lock on f v1"):
            with registry.writer_lock("f v1", timeout=0.3):
                pass
        with registry.writer_lock("f v2", timeout=0.3):  # another name is another lock
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the kernel (SQLite) or the server (PostgreSQL) released the dead holder's lock
    with registry.writer_lock("f v1", timeout=30):
        pass


def test_threads_and_registries_of_one_process_exclude_each_other(
    registry: Registry, registry_url: str
) -> None:
    other = open_registry_url(registry_url)  # a second Registry object in the same process
    inside: list[int] = []
    overlaps: list[int] = []

    def work(reg: Registry, n: int) -> None:
        for _ in range(n):
            with reg.writer_lock("shared"):
                inside.append(1)
                if len(inside) > 1:
                    overlaps.append(len(inside))
                time.sleep(0.002)
                inside.pop()

    threads = [threading.Thread(target=work, args=(r, 20)) for r in (registry, other, registry)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert overlaps == [] and len(inside) == 0
    # closing one Registry does not drop a lock another Registry of the process holds
    with registry.writer_lock("after-close"):
        other.close()
        refused = try_in_child(registry_url, "after-close")
        assert refused.returncode != 0 and "waited 0.5 s for the lock" in refused.stderr
    assert try_in_child(registry_url, "after-close").stdout.strip() == "held"
