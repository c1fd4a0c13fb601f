"""pgcli (pip ``pgcli``, in the test extra) driven in tmux as a person would: it connects,
refreshes its completions in the background (schemata, tables, columns, functions, types:
the queries in corpus/pgcli.yaml), and the test types a table name prefix and a column name
prefix followed by TAB, then ``\\dt features.*`` and ``\\d features.user``. The screens against
fsql and against a real PostgreSQL 15 holding the same tables must be equal (pgcli's timing
lines aside). Known failures are strict xfails naming issue #14."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.server._differential import Pair, pair  # noqa: F401 - fixture

pytestmark = [pytest.mark.server, pytest.mark.postgres]

PGCLI = str(Path(sys.executable).with_name("pgcli"))

PGCLIRC = """\
[main]
smart_completion = True
multi_line = False
enable_pager = False
less_chatty = True
auto_expand = False
table_format = psql
log_file = {log}
history_file = {history}
keyword_casing = upper
"""

#: name → (keys typed, what the screen shows once pgcli has done it: the completion menu's
#: entry, or a line of the output)
STEPS = {
    "d_table": (["\\d features.user", "Enter"], "user_purchase_30d"),
}

KNOWN_FAILING: dict[str, str] = {}  # none left


CURSOR_REPORT = re.compile(r"(\^\[|\x1b)\[\d+;\d+R")


class Tmux:
    """One tmux session running pgcli on a 160x50 terminal, on a tmux server of its own (``-L``:
    a shared default server that is exiting after another test's last session closed makes
    ``new-session`` fail with "server exited unexpectedly")."""

    def __init__(self, command: list[str]) -> None:
        self.name = f"pgcli-{uuid.uuid4().hex[:8]}"
        self.tmux = ["tmux", "-L", self.name]
        subprocess.run([*self.tmux, "new-session", "-d", "-s", self.name, "-x", "160", "-y", "50",
                        *command], check=True, timeout=30)

    def send(self, *keys: str) -> None:
        for key in keys:
            literal = key not in ("Tab", "Enter", "C-c", "C-d", "C-l", "Escape")
            subprocess.run([*self.tmux, "send-keys", "-t", self.name, *(["-l"] if literal else []),
                            key], check=True, timeout=30)

    def raw(self) -> str:
        return subprocess.run([*self.tmux, "capture-pane", "-p", "-t", self.name],
                              capture_output=True, text=True, check=True, timeout=30).stdout

    def screen(self) -> str:
        """The screen's text without pgcli's timing lines, its toolbar and blank lines, and
        without the cursor position reports a busy terminal may echo (ESC[row;colR)."""
        out = CURSOR_REPORT.sub("", self.raw())
        return "\n".join(line.rstrip() for line in out.splitlines()
                         if line.strip() and not line.startswith("Time: ")
                         and "[F2] Smart Completion" not in line)

    def wait_for(self, text: str, limit: float = 20, gone: bool = False) -> bool:
        """Until ``text`` is on the screen (or, with ``gone``, no longer is), at most
        ``limit`` seconds."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if (text in self.raw()) != gone:
                return True
            time.sleep(0.2)
        return False

    def wait_refreshed(self, limit: float) -> None:
        """Until the toolbar no longer says "Refreshing completions" (pgcli refreshes in a
        background thread after connecting; the toolbar is redrawn on input, so C-l, which
        only redraws the screen, is sent while waiting), at most ``limit`` seconds."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            self.send("C-l")
            time.sleep(0.3)
            if "Refreshing completions" not in self.raw():
                return

    def close(self) -> None:
        subprocess.run([*self.tmux, "kill-server"], capture_output=True, timeout=30)


def drive(port: int, database: str, folder: Path, patience: float,
          known: frozenset[str] = frozenset()) -> dict[str, str]:
    """Run every step in one pgcli session; the screen after each (pgcli's input line and
    output), or what it showed when the expected text did not come within ``patience``
    seconds (5 for the ``known`` failing steps, which are not expected to show it)."""
    folder.mkdir(parents=True, exist_ok=True)
    rc = folder / "pgclirc"
    rc.write_text(PGCLIRC.format(log=folder / "log", history=folder / "history"))
    session = Tmux([PGCLI, "--pgclirc", str(rc), "--prompt", "> ", "-h", "127.0.0.1",
                    "-p", str(port), "-U", "tester", "-w", "-d", database])
    screens = {}
    try:
        assert session.wait_for("Smart Completion"), session.raw()
        # pgcli refreshes its completions in a background thread after connecting
        session.wait_refreshed(limit=10 if known else patience)
        for name, (keys, expected) in STEPS.items():
            session.send("C-c", "C-l")
            session.send(*keys)
            session.wait_for(expected, limit=5 if name in known else patience)
            screens[name] = session.screen()
        return screens
    finally:
        session.send("C-c", "C-d")
        session.close()


@pytest.fixture(scope="module")
def screens(pair: Pair, tmp_path_factory: pytest.TempPathFactory  # noqa: F811
            ) -> dict[str, dict[str, str]]:
    assert shutil.which("tmux"), "tmux is not installed (apt-get install tmux)"
    assert Path(PGCLI).exists(), "pgcli is not installed (pip install -e '.[test]')"
    folder = tmp_path_factory.mktemp("pgcli")
    return {"postgres": drive(pair.pg_port, pair.pg_db, folder / "postgres", 30),
            "fsql": drive(pair.fsql.port, "fsql", folder / "fsql", 30, frozenset(KNOWN_FAILING))}


@pytest.mark.parametrize("step", [
    pytest.param(step, marks=[pytest.mark.xfail(strict=True, reason=KNOWN_FAILING[step])]
                 if step in KNOWN_FAILING else [])
    for step in STEPS
])
def test_pgcli_equals_postgres(screens: dict[str, dict[str, str]], step: str) -> None:
    theirs = screens["postgres"][step]
    assert STEPS[step][1] in theirs, theirs  # the reference did it
    assert screens["fsql"][step] == theirs
