"""Every error fsql raises on purpose derives from :class:`FsqlError`.

The tree::

    FsqlError
    ├── ConfigError            bad fsql.toml, environment variable or config dict
    ├── DefinitionError        one or more problems in definitions (syntax or meaning);
    │                          carries a list of :class:`Problem` with file/line/col
    ├── RegistryError          the registry cannot be read or written
    │   └── NotFoundError      no such entity/source/feature/set (or version)
    │   └── RegistryNotFound   a read-only command found no registry (nothing applied yet)
    ├── ComputeError           a compile or engine failure while materializing or joining
    │   ├── SourceSchemaError  a source file does not match its declared schema
    │   └── RejectedData       computed rows refused before commit (kept in quarantine)
    │       └── CheckFailed    an ``error`` check failed on a run's computed rows
    ├── StaleVersionError      a pipeline was built for another version than the registry's
    ├── StoreError             the offline or online store failed
    │   └── OnlineStoreUnavailable  the online store could not be reached in time
    ├── MissingExtraError      an optional dependency is not installed ("pip install fsql[x]")
    ├── NotSupportedError      a valid request fsql does not implement (yet)
    ├── AirflowApiError        Airflow's REST API refused a request or could not be reached
    ├── RespError              a Redis server answered a command with an error reply
    ├── IntervalSyntaxError    a duration fsql does not accept (also a ValueError, so that
    │                          option parsers can catch it)
    └── InstantSyntaxError     an instant fsql does not accept (``2024-01-31``, ``now``,
                               ``today``, ``-7d``; also a ValueError)

Errors a user can cause carry where (file:line:col and the offending text) and what would be
right, in the style of sqlglot's ``ParseError.errors``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Location:
    """A place in a definition file: 1-based line and column, plus the text found there."""

    file: str | None
    line: int
    col: int
    highlight: str = field(default="", compare=False)

    def __str__(self) -> str:
        return f"{self.file or '<input>'}:{self.line}:{self.col}"


@dataclass(frozen=True)
class Problem:
    """One user-facing problem: what is wrong and what would be right, and where."""

    message: str
    location: Location | None = None
    #: a short machine-readable code, e.g. "syntax", "unknown-column", "cycle"
    code: str = "invalid"

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        text = f"{where}{self.message}"
        if self.location and self.location.highlight:
            text += f"\n    {self.location.highlight}"
        return text

    def to_dict(self) -> dict[str, Any]:
        loc = self.location
        return {
            "code": self.code,
            "message": self.message,
            "file": loc.file if loc else None,
            "line": loc.line if loc else None,
            "col": loc.col if loc else None,
            "highlight": loc.highlight if loc else None,
        }


class FsqlError(Exception):
    """Root of every error fsql raises on purpose."""


class ConfigError(FsqlError):
    """fsql.toml, an FSQL_* environment variable or a config dict is invalid."""


class DefinitionError(FsqlError):
    """One or more definitions are invalid. ``problems`` lists all of them, not just the first."""

    def __init__(self, problems: list[Problem] | Problem | str):
        if isinstance(problems, str):
            problems = [Problem(problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class RegistryError(FsqlError):
    """The registry could not be read or written."""


class RegistryNotFound(RegistryError):
    """A read-only command found no registry to read (nothing applied yet)."""


class NotFoundError(RegistryError):
    """The named object (or version) is not in the registry."""


class ComputeError(FsqlError):
    """Compiling or running a feature computation failed."""


class SourceSchemaError(ComputeError):
    """A source's files do not match its declared schema (names the file and the column)."""


class RejectedData(ComputeError):
    """Computed rows were refused before being committed (a failed check): nothing of the
    interval reached the offline store, the ledger or the online store. ``quarantine`` is where
    the refused rows were kept for inspection (set by the offline store)."""

    quarantine: str | None = None

    def __str__(self) -> str:
        text = super().__str__()
        if self.quarantine:
            text += f" (the refused rows are kept in {self.quarantine})"
        return text


class StoreError(FsqlError):
    """The offline or online store failed."""


class OnlineStoreUnavailable(StoreError):
    """The online store could not be reached within its timeout."""


class MissingExtraError(FsqlError):
    """An optional dependency is missing; the message names the extra to install."""

    def __init__(self, module: str, extra: str):
        self.module, self.extra = module, extra
        super().__init__(f"{module} is not installed: pip install 'fsql[{extra}]'")


class NotSupportedError(FsqlError):
    """A valid request that fsql does not implement."""


class CheckFailed(RejectedData):
    """An ``error``-severity check failed on a run's computed rows: nothing of the interval was
    committed, the run is recorded as failed, and ``quarantine`` says where the rows are kept.
    ``results`` are the failed :class:`fsql.language.checks.CheckResult` values."""

    def __init__(self, results: Sequence[Any]):
        self.results = list(results)
        super().__init__("; ".join(r.summary() for r in self.results))


class StaleVersionError(FsqlError):
    """The registry's current version of a feature is not the one the pipeline was built for."""


class AirflowApiError(FsqlError):
    """Airflow's REST API could not be reached or refused a request."""


class RespError(FsqlError):
    """An error reply from Redis (``-ERR ...``); its text is the message."""


class IntervalSyntaxError(FsqlError, ValueError):
    """The text is not a duration fsql accepts."""


class InstantSyntaxError(FsqlError, ValueError):
    """The text is not an instant fsql accepts."""
