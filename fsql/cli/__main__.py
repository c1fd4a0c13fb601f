"""``python -m fsql.cli ...`` runs the command line (same as the ``fsql`` script)."""

from __future__ import annotations

from fsql.cli import main

main()
