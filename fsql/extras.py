"""Optional dependencies (the ``fsql[...]`` extras), imported only where they are used.

Everything else is imported at the top of its module. An extra stays lazy so that ``import
fsql`` and the CLI start fast and work without it; :func:`require` imports one and turns its
absence into :class:`~fsql.errors.MissingExtraError` naming the extra to install.

>>> require("json", "core").dumps([1])
'[1]'
"""

from __future__ import annotations

import importlib
from types import ModuleType

from fsql.errors import MissingExtraError


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` (e.g. ``"pyspark.sql"``) from the extra ``extra`` (e.g. ``"spark"``)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if exc.name is not None and module.split(".")[0] != exc.name.split(".")[0]:
            raise  # the extra is there but broken: the real error says more than "install it"
        raise MissingExtraError(module.split(".")[0], extra) from None


__all__ = ["require"]
