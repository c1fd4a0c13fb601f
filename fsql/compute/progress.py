"""Progress of long work (materialize: one unit per feature interval), told to whoever watches.

The compute functions call a :class:`Progress`; the front end picks how it is shown: on a
terminal the CLI draws a bar with counts and ETA (:class:`fsql.cli.progress.BarProgress`),
elsewhere — a log, CI, Airflow — :class:`LogProgress` writes one line per step with the count,
the elapsed time and an ETA from the pace so far. A plain ``Callable[[str], None]`` (the older
form) is wrapped in a :class:`LogProgress`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol


class Progress(Protocol):
    """What long work reports: how many units there are, each one as it starts and ends, and
    notes (a clamped end, a retry) in between."""

    def begin(self, total: int, what: str) -> None: ...

    def start(self, label: str) -> None: ...

    def finish(self, label: str, detail: str) -> None: ...

    def note(self, message: str) -> None: ...


class QuietProgress:
    """Reports nothing (the Python API's default)."""

    def begin(self, total: int, what: str) -> None:
        pass

    def start(self, label: str) -> None:
        pass

    def finish(self, label: str, detail: str) -> None:
        pass

    def note(self, message: str) -> None:
        pass


class LogProgress:
    """One line per step: ``[2/6] spend_2d v1 [2024-01-02, 2024-01-03): 812 rows (0.3s);
    1.1s so far, about 2.2s left``."""

    def __init__(self, write: Callable[[str], None], clock: Callable[[], float] = time.monotonic):
        self.write = write
        self.clock = clock
        self.total = 0
        self.done = 0
        self.started = clock()
        self._lock = threading.Lock()  # independent features run in parallel threads

    def begin(self, total: int, what: str) -> None:
        self.total, self.done, self.started = total, 0, self.clock()
        if total:
            self.write(f"{what}: {total} to compute")

    def start(self, label: str) -> None:
        self.write(f"[{self.done + 1}/{self.total}] {label}: computing")

    def finish(self, label: str, detail: str) -> None:
        with self._lock:
            self.done += 1
            done = self.done
        elapsed = self.clock() - self.started
        left = elapsed / done * (self.total - done)
        eta = f", about {left:.1f}s left" if done < self.total else ""
        self.write(f"[{done}/{self.total}] {label}: {detail}; {elapsed:.1f}s so far{eta}")

    def note(self, message: str) -> None:
        self.write(message)


def as_progress(progress: Progress | Callable[[str], None] | None) -> Progress:
    """``progress`` as a :class:`Progress` (a callable becomes a :class:`LogProgress`)."""
    if progress is None:
        return QuietProgress()
    if callable(progress) and not hasattr(progress, "begin"):
        return LogProgress(progress)
    return progress  # type: ignore[return-value]


__all__ = ["LogProgress", "Progress", "QuietProgress", "as_progress"]
