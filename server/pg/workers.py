"""The worker budget: how many heavy statements of a worker process run in DuckDB at once,
and in which order the others get their turn.

Statements run in threads (DuckDB releases the GIL). Without a bound, every session's query
runs at once with ``[compute] threads`` DuckDB threads each, so six sessions scanning
``range(1e12)`` put twelve busy threads on two cores and everything else crawls. The
:class:`WorkerBudget` is the event loop's default executor: work submitted on behalf of a
*heavy* statement runs on one of ``[server] statement_slots`` slot threads, or waits for one;
*light* work runs at once on the pool's other threads. Heavy work thus keeps at most
``statement_slots`` × ``[compute] threads`` DuckDB threads of the worker busy.

Heavy or light is decided on the plan (:func:`uses_slot`), never on SQL text:

- light: session statements (SET, SHOW, BEGIN, COMMIT, DEALLOCATE...), ``SELECT`` of
  constants and session functions (answered in Python), point lookups
  (:attr:`~fsql_server.pg.backend.Plan.fast_lookup`, which read the online store),
  ``EXPLAIN``, catalog queries (their DuckDB database runs one thread, and the statement
  timeout cuts a pathological one short), and DuckDB statements that read no relation: no
  table, table function or set-returning function anywhere in the parsed statement
  (:func:`reads_data`, e.g. ``SELECT 1 + 1``, ``SELECT now()``);
- heavy: every other plan (DuckDB statements reading tables or table functions, training
  sets, COPY loads, FETCH from a cursor, definitions).

Waiting work is served *fairly*: each session has its own queue, and sessions take turns
(round robin in the order they started waiting), one job per turn. A job is one call into
the engine: a statement's first chunk of rows, then each further chunk, so a session
streaming a large result gives its slot up between chunks and a session that just arrived
is served after at most one chunk of each session ahead of it. A job that holds its slot
(a ``count(*)`` over a huge range) keeps it until it ends, fails or is interrupted by its
statement timeout or a CancelRequest; DuckDB cannot pause a running query.

Protocol messages, authentication and the fast lane run on the event loop and never
touch this executor. Work submitted with no statement (closing a session's database,
``/metrics``) is light.

A statement's timeout counts from its start, so time spent waiting for a slot counts
(as in PostgreSQL). A statement cancelled or timed out while waiting leaves its queue at
once: the connection cancels the asyncio future, which cancels the queued job here.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import lru_cache, partial
from typing import Any

from sqlglot import exp

#: functions that make rows (a set) inside an expression: ``SELECT range(1e9)`` builds a list
#: of a billion values without a FROM. Matched on parsed function nodes, never on text.
SET_FUNCTIONS = frozenset(("range", "generate_series", "unnest", "generate_subscripts"))


@dataclass(frozen=True)
class Job:
    """The statement that work submitted from this context belongs to: its session (backend
    pid, the queue it waits in) and whether it takes a slot."""

    session: int
    heavy: bool


#: set by the connection for each statement (tasks it starts inherit it; see module docstring)
CURRENT_JOB: ContextVar[Job | None] = ContextVar("fsql_current_job", default=None)


def uses_slot(plan: Any) -> bool:
    """Whether running ``plan`` takes one of the worker's statement slots (see the module
    docstring): point lookups never do, other plans as they say (``Plan.heavy``)."""
    if plan.fast_lookup is not None:
        return False
    return bool(getattr(plan, "heavy", True))


def take_turns(session: int, plan: Any) -> None:
    """From now on, the current task's work in threads (and that of the tasks it starts)
    belongs to session ``session``'s statement ``plan``: it takes a slot when the plan is
    heavy, waiting the session's turn (``plan`` None: a statement not planned yet, light)."""
    CURRENT_JOB.set(_job(session, plan is not None and uses_slot(plan)))


@lru_cache(maxsize=4096)
def _job(session: int, heavy: bool) -> Job:
    return Job(session, heavy)  # one object per session and weight: none made per lookup


def reads_data(tree: exp.Expression) -> bool:
    """True when the parsed statement reads any relation: a table, a view, a table function
    (``range(...)``, ``read_parquet(...)``), ``UNNEST``, or a set-returning function anywhere.
    A statement that reads none computes one row of expressions: light."""
    for node in tree.walk():
        if isinstance(node, exp.Table | exp.Unnest | exp.Explode | exp.GenerateSeries):
            return True
        if isinstance(node, exp.Func) and (
                node.name if isinstance(node, exp.Anonymous) else node.sql_name()
        ).lower() in SET_FUNCTIONS:
            return True
    return False


def default_slots(processes: int) -> int:
    """The default ``statement_slots`` of one worker process: the cores this process may
    use, shared by the worker processes (at least one). Each slot's statement runs on
    ``[compute] threads`` DuckDB threads (2 by default), so the cores stay busy while one
    statement waits on reading Parquet or the online store, and no more than about twice
    as many DuckDB threads as cores are runnable."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, processes))


@dataclass(eq=False)
class _Queued:
    future: Future[Any]
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    session: int


@dataclass
class BudgetStats:
    """What the budget does now (tests read it; not on /metrics yet)."""

    running: int = 0
    queued: int = 0
    #: heavy jobs started since the worker began
    started: int = 0
    waiting_sessions: list[int] = field(default_factory=list)


class WorkerBudget(ThreadPoolExecutor):
    """The event loop's default executor: light work straight to a pooled thread, heavy
    work through ``slots`` slot threads, each taking the next job from the sessions' queues
    in turn. (A thread pool itself: asyncio takes nothing else as the default executor.)

    A slot is a long-lived thread of its own: a session's chunks keep running on the same
    few threads, so the memory a chunk's rows took is reused by the next chunk instead of
    piling up in one allocator arena per pool thread the work wandered through."""

    def __init__(self, slots: int, threads: int):
        if slots < 1:
            raise ValueError("a worker budget needs at least one slot")
        super().__init__(max_workers=threads, thread_name_prefix="fsql-statement")
        self.slots = slots
        self._turn = threading.Condition()
        #: session → its waiting jobs, oldest first
        self._queues: dict[int, deque[_Queued]] = {}
        #: sessions with waiting jobs, in the order they take their turns
        self._turns: deque[int] = deque()
        self._running = 0
        self._started = 0
        self._closing = False
        self._slot_threads: list[threading.Thread] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        if kwargs:
            return self.submit(lambda: fn(*args, **kwargs))
        job = CURRENT_JOB.get()
        if job is None or not job.heavy:
            return super().submit(fn, *args)
        future: Future[Any] = Future()
        item = _Queued(future, fn, args, job.session)
        with self._turn:
            if self._closing:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if not self._slot_threads:
                self._start_slots()
            queue = self._queues.get(job.session)
            if queue is None:
                queue = self._queues[job.session] = deque()
                self._turns.append(job.session)
            queue.append(item)
            self._turn.notify()
        # cancelled while waiting (CancelRequest, statement timeout): out of the queue now.
        # The callback must not hold the job (the job holds the future: a cycle would keep
        # every chunk of rows alive until the cyclic collector runs)
        future.add_done_callback(partial(self._forget, job.session))
        return future

    def stats(self) -> BudgetStats:
        with self._turn:
            return BudgetStats(self._running, sum(len(q) for q in self._queues.values()),
                               self._started, list(self._turns))

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._turn:
            self._closing = True
            waiting = [item for queue in self._queues.values() for item in queue]
            self._queues.clear()
            self._turns.clear()
            self._turn.notify_all()
        for item in waiting:
            item.future.cancel()
        if wait:
            for thread in self._slot_threads:
                thread.join()
        super().shutdown(wait=wait, cancel_futures=cancel_futures)

    def _start_slots(self) -> None:
        for n in range(self.slots):
            thread = threading.Thread(target=self._serve_slot, name=f"fsql-slot-{n}",
                                      daemon=True)
            self._slot_threads.append(thread)
            thread.start()

    def _forget(self, session: int, future: Future[Any]) -> None:
        if not future.cancelled():
            return
        with self._turn:
            queue = self._queues.get(session)
            item = next((i for i in queue if i.future is future), None) if queue else None
            if queue is None or item is None:
                return
            queue.remove(item)
            if not queue:
                del self._queues[session]
                self._turns.remove(session)

    def _next(self) -> _Queued | None:
        """The next job to run (call with the lock held): the session whose turn it is gives
        its oldest; jobs cancelled meanwhile are dropped."""
        while self._turns:
            session = self._turns.popleft()
            queue = self._queues[session]
            item = queue.popleft()
            if queue:
                self._turns.append(session)  # its next job waits for its next turn
            else:
                del self._queues[session]
            if item.future.set_running_or_notify_cancel():
                return item
        return None

    def _serve_slot(self) -> None:
        while True:
            with self._turn:
                item = self._next()
                while item is None:
                    if self._closing:
                        return
                    self._turn.wait()
                    item = self._next()
                self._running += 1
                self._started += 1
            result = None
            try:
                result = item.fn(*item.args)
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting statement
                self._release()
                item.future.set_exception(exc)
            else:
                self._release()
                item.future.set_result(result)
            del item, result  # the job's rows are the statement's now, not this thread's

    def _release(self) -> None:
        with self._turn:
            self._running -= 1
