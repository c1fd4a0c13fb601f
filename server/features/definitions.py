"""``CREATE ENTITY|SOURCE|FEATURE|FEATURE SET|CHECK`` and ``DROP ...`` on the wire.

Definitions are registered through the registry's plan/apply, like ``fsql apply``; users
without ``can_define`` get 42501. The SQL parser of the wire layer never sees them: they are
recognised by their first words (:func:`is_definition`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from fsql_server.features.services import Services
from fsql_server.pg import errors
from fsql_server.pg.backend import Column, Plan, Result
from fsql_server.pg.errors import PgError
from fsql_server.pg.router import first_words
from fsql_server.pg.session import Session

from fsql.language.analysis.locations import SourceRoots, analyze_within
from fsql.language.definitions import DropDef
from fsql.language.parser import parse

#: first word after CREATE/DROP [OR REPLACE] that makes a statement an fsql definition
_FSQL_KINDS = ("ENTITY", "SOURCE", "FEATURE", "CHECK")


def is_definition(words: list[str]) -> bool:
    """Whether a statement starting with ``words`` (upper case, at least 4) defines or drops
    an fsql object."""
    if not words or words[0] not in ("CREATE", "DROP"):
        return False
    rest = words[1:]
    if rest[:2] == ["OR", "REPLACE"]:
        rest = rest[2:]
    return bool(rest) and rest[0] in _FSQL_KINDS


class DefinitionPlan(Plan):
    """``CREATE ENTITY|SOURCE|FEATURE|FEATURE SET`` / ``DROP ...`` through plan/apply."""

    cacheable = False

    def __init__(self, sql: str, tag: str, services: Services):
        self.sql = sql
        self.command = tag
        self.services = services

    def describe(self, session: Session) -> list[Column] | None:
        return None

    async def run(self, session: Session, params: Sequence[Any]) -> Result:
        loop = asyncio.get_running_loop()
        notices = await loop.run_in_executor(None, self._apply, session)
        return Result(None, (), self.command, counted=False, notices=notices)

    def _apply(self, session: Session) -> list[PgError]:
        if not session.can_define:
            config = self.services.config.server
            hint = "An administrator sets can_define = true for the user in [[server.users]]."
            if config.auth == "trust" and not config.users:
                hint = ('Definitions over the wire are off under auth = "trust" with no '
                        "[[server.users]] (every local user would get them): set [server] "
                        "trust_can_define = true in fsql.toml on a single-user machine, or "
                        "configure users with can_define = true; fsql apply defines from "
                        "files meanwhile.")
            raise PgError(errors.INSUFFICIENT_PRIVILEGE,
                          f'permission denied: user "{session.user}" may not define or drop '
                          "entities, sources, features or feature sets", hint=hint)
        services = self.services
        try:
            statements = parse(self.sql, file="<wire>")
            registry = services.registry
            drops = [s for s in statements if isinstance(s, DropDef)]
            new = [s for s in statements if not isinstance(s, DropDef)]
            current = {n: r.definition for n, r in registry.current().items()}
            for definition in new:
                current[definition.name] = definition
            for drop in drops:
                current.pop(drop.name, None)
            desired = analyze_within(current.values(), SourceRoots.from_config(services.config),
                                     drops=drops, new=new)
            plan = registry.plan(desired, drops, declarative=False)
            written = registry.apply(plan, desired, actor=session.user)
        except Exception as exc:  # noqa: BLE001 - errors become SQLSTATEs in one place
            raise errors.to_pg_error(exc, self.sql) from None
        services.catalog.invalidate()
        notices = []
        for record in written:
            what = "retired" if record.retired else f"version {record.version}"
            notices.append(PgError("00000", f"{record.kind} {record.name}: {what}",
                                   severity="NOTICE"))
        if not written:
            notices.append(PgError("00000", "no change: the registry already has this "
                                   "definition", severity="NOTICE"))
        return notices


def plan_definition(session: Session, sql: str, services: Services) -> Plan:
    """The plan of a CREATE/DROP that :func:`is_definition` recognised."""
    words = first_words(sql, 3)
    kind = words[1] if len(words) > 1 else ""
    if kind == "FEATURE" and len(words) > 2 and words[2] == "SET":
        kind = "FEATURE SET"
    return DefinitionPlan(sql, f"{words[0]} {kind}", services)
