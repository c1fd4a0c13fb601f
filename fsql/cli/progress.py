"""How the CLI shows long work: a bar with counts and ETA on a terminal, log lines elsewhere.

:func:`progress_for` picks one for the command's stderr console: on a terminal a rich
progress bar (``3/6 feature intervals ━━━━━╸━━━ 0:00:02 • 0:00:03 left``, the interval being
computed under it); off a terminal (pipes, CI, Airflow logs) a
:class:`fsql.compute.progress.LogProgress` line per step.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress

from fsql.compute.progress import LogProgress, Progress


class BarProgress:
    """:class:`fsql.compute.progress.Progress` as a rich bar (thread-safe, like rich's)."""

    def __init__(self, console: Console):
        self.bar = RichProgress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("•"), TimeRemainingColumn(), TextColumn("left"),
            TextColumn("{task.fields[current]}", style="dim"),
            console=console, transient=False,
        )  # fmt: skip
        self.task = self.bar.add_task("", total=0, current="", visible=False)

    def begin(self, total: int, what: str) -> None:
        self.bar.update(self.task, total=total, completed=0, description=what, visible=total > 0)

    def start(self, label: str) -> None:
        self.bar.update(self.task, current=label)

    def finish(self, label: str, detail: str) -> None:
        self.bar.console.print(f"{label}: {detail}", markup=False, highlight=False)
        self.bar.advance(self.task)

    def note(self, message: str) -> None:
        self.bar.console.print(message, markup=False, highlight=False)


@contextmanager
def progress_for(console: Console) -> Iterator[Progress]:
    """The progress display for ``console`` for the length of a command."""
    if not console.is_terminal:
        yield LogProgress(lambda line: console.print(line, markup=False, highlight=False))
        return
    shown = BarProgress(console)
    with shown.bar:
        yield shown


__all__ = ["BarProgress", "progress_for"]
