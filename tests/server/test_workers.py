"""The worker budget on its own (fsql_server.pg.workers): real threads, no server.

- Sessions take turns: one session with many jobs waiting does not hold back a session
  whose job arrived after them; each session's own jobs keep their order.
- A job cancelled while waiting leaves its queue at once and never runs.
- Light work (no statement, or a light one) runs while every slot is busy.
- Heavy or light on parsed statements: a statement reading any relation is heavy.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import os
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import pytest
import sqlglot
from fsql_server.pg.server import ServerConfigError, check_config
from fsql_server.pg.workers import CURRENT_JOB, Job, WorkerBudget, default_slots, reads_data

from fsql.config import ServerConfig


def submit_as(budget: WorkerBudget, job: Job | None, fn: Callable[[], Any]) -> Future[Any]:
    """Submit ``fn`` the way a statement's task does: with ``job`` as its current job."""
    context = contextvars.copy_context()

    def submit() -> Future[Any]:
        CURRENT_JOB.set(job)
        return budget.submit(fn)

    return context.run(submit)


@pytest.fixture
def budget() -> Any:
    made = WorkerBudget(slots=1, threads=8)
    yield made
    made.shutdown(wait=True, cancel_futures=True)


def hold_slot(budget: WorkerBudget) -> tuple[threading.Event, Future[Any]]:
    release = threading.Event()
    started = threading.Event()

    def hold() -> None:
        started.set()
        release.wait(10)

    holder = submit_as(budget, Job(1, heavy=True), hold)
    assert started.wait(10)
    return release, holder


def test_sessions_take_turns(budget: WorkerBudget) -> None:
    release, holder = hold_slot(budget)
    order: list[str] = []
    futures = [submit_as(budget, Job(session, heavy=True), lambda n=name: order.append(n))
               for session, name in ((2, "A1"), (2, "A2"), (2, "A3"), (3, "B1"), (4, "C1"),
                                     (3, "B2"))]
    assert budget.stats().queued == 6
    assert budget.stats().waiting_sessions == [2, 3, 4]
    release.set()
    for future in (holder, *futures):
        future.result(10)
    assert order == ["A1", "B1", "C1", "A2", "B2", "A3"]
    assert budget.stats().running == 0 and budget.stats().queued == 0


def test_cancelled_job_leaves_the_queue_at_once(budget: WorkerBudget) -> None:
    release, holder = hold_slot(budget)
    ran: list[str] = []
    waiting = submit_as(budget, Job(2, heavy=True), lambda: ran.append("cancelled one"))
    after = submit_as(budget, Job(3, heavy=True), lambda: ran.append("next one"))
    assert budget.stats().queued == 2
    assert waiting.cancel()
    assert budget.stats().queued == 1 and budget.stats().waiting_sessions == [3]
    release.set()
    holder.result(10)
    after.result(10)
    assert ran == ["next one"]


def test_light_work_never_waits(budget: WorkerBudget) -> None:
    release, holder = hold_slot(budget)
    queued = submit_as(budget, Job(2, heavy=True), lambda: "heavy")
    assert submit_as(budget, Job(3, heavy=False), lambda: "light").result(10) == "light"
    assert submit_as(budget, None, lambda: "no statement").result(10) == "no statement"
    assert not queued.done() and budget.stats().running == 1
    release.set()
    holder.result(10)
    assert queued.result(10) == "heavy"


def test_asyncio_takes_it_as_the_default_executor() -> None:
    """asyncio's own loop (the server's without uvloop) takes only thread pools."""
    budget = WorkerBudget(slots=1, threads=2)

    async def main() -> str:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(budget)
        CURRENT_JOB.set(Job(2, heavy=True))
        return await loop.run_in_executor(None, lambda: "ran")

    assert asyncio.run(main()) == "ran"
    assert budget.stats().started == 1


def test_a_result_is_freed_when_its_reader_drops_it(budget: WorkerBudget) -> None:
    """No reference cycle keeps a chunk of rows alive until the cyclic collector runs (the
    server freezes its startup objects and collects rarely)."""

    class Rows(list[int]):
        pass

    gc.disable()
    try:
        future = submit_as(budget, Job(2, heavy=True), lambda: Rows([1, 2, 3]))
        rows = weakref.ref(future.result(10))
        del future
        deadline = time.monotonic() + 10
        while rows() is not None and time.monotonic() < deadline:
            time.sleep(0.01)  # the slot thread lets go of it after handing it over
        assert rows() is None
    finally:
        gc.enable()


def test_a_failing_job_gives_its_slot_back(budget: WorkerBudget) -> None:
    def fail() -> None:
        raise ValueError("boom")

    failing = submit_as(budget, Job(2, heavy=True), fail)
    with pytest.raises(ValueError, match="boom"):
        failing.result(10)
    assert submit_as(budget, Job(3, heavy=True), lambda: 7).result(10) == 7


@pytest.mark.parametrize(("sql", "heavy"), [
    ("SELECT 1 + 1", False),
    ("SELECT upper('a'), now()", False),
    ("SELECT CASE WHEN $1 > 0 THEN 'x' END", False),
    ("SELECT * FROM t", True),
    ("SELECT count(*) FROM range(1000)", True),
    ("SELECT * FROM generate_series(1, 10)", True),
    ("SELECT range(1000000000)", True),
    ("SELECT unnest(ARRAY[1, 2])", True),
    ("SELECT (SELECT max(x) FROM t)", True),
    ("WITH a AS (SELECT 1 AS x) SELECT x FROM a", True),
    ("INSERT INTO t VALUES (1)", True),
    ("VALUES (1), (2)", False),
])
def test_reads_data(sql: str, heavy: bool) -> None:
    assert reads_data(sqlglot.parse_one(sql, read="postgres")) is heavy


def test_slots_setting() -> None:
    with pytest.raises(ServerConfigError, match=r"\[server\] statement_slots must be 0"):
        check_config(ServerConfig(statement_slots=-1))
    check_config(ServerConfig(statement_slots=3))
    cores = len(os.sched_getaffinity(0))
    assert default_slots(1) == cores
    assert default_slots(cores * 4) == 1  # more worker processes than cores: one slot each
    with pytest.raises(ValueError, match="at least one slot"):
        WorkerBudget(slots=0, threads=2)
