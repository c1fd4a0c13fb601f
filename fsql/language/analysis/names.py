"""Names of definitions are plain identifiers.

A name becomes a folder of the offline store, a key prefix of the online store and a column
of SQL that fsql writes (training sets, compiled features). So it is checked once, here, at
definition time: letters, digits and underscores, starting with a letter or an underscore, at
most :data:`MAX_NAME_LENGTH` characters (PostgreSQL's limit). Nothing else, so no path
separator, no ``..`` and nothing that SQL would read as more than a name.
"""

from __future__ import annotations

import re
from dataclasses import replace

from fsql.errors import Location
from fsql.language.analysis.state import AnalysisState
from fsql.language.definitions import AnyDefinition

#: PostgreSQL's NAMEDATALEN - 1: a longer name would be cut by clients
MAX_NAME_LENGTH = 63
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def valid_name(name: str) -> bool:
    """True for a name fsql accepts (see the module docstring)."""
    return len(name) <= MAX_NAME_LENGTH and NAME.fullmatch(name) is not None


def check_names(state: AnalysisState) -> None:
    """Every definition's name is a plain identifier (problems at the name)."""
    for definition in state.definitions:
        name = definition.name
        if valid_name(name):
            continue
        what = definition.kind.replace("_", " ")
        reason = (f"is {len(name)} characters long, more than {MAX_NAME_LENGTH}"
                  if NAME.fullmatch(name) else "has characters other than letters, digits and "
                  "underscores, or starts with a digit")
        state.problem(
            f"{what} name {name!r} {reason}; names must match [A-Za-z_][A-Za-z0-9_]* and be at "
            f"most {MAX_NAME_LENGTH} characters, because they become file paths and SQL "
            "identifiers (docs/language.md, Names)",
            _name_location(definition),
            "invalid-name",
        )


def _name_location(definition: AnyDefinition) -> Location | None:
    """Where the name is written in the definition's text (the definition's location when it
    cannot be found)."""
    location, text = definition.location, definition.source_text
    if location is None or not text:
        return location
    quoted = '"' + definition.name.replace('"', '""') + '"'
    for written in (quoted, definition.name):
        start = text.find(written)
        if start >= 0:
            before = text[:start]
            line = location.line + before.count("\n")
            col = start - before.rfind("\n") if "\n" in before else location.col + start
            return replace(location, line=line, col=col, highlight=written.split("\n")[0])
    return location
