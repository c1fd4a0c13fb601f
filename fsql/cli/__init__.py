"""The ``fsql`` command line."""

from __future__ import annotations


def main() -> None:  # replaced by the CLI implementation
    raise SystemExit("fsql CLI not built yet")
