"""Optional dependencies (the extras of ``pip install 'fsql[...]'``), imported where used.

Modules that need an extra import it through :func:`require` at the point of use, so
``import fsql`` never pays for it and a missing one fails with
:class:`~fsql.errors.MissingExtraError`, naming the extra to install.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from fsql.errors import MissingExtraError

__all__ = ["require"]


def require(module_name: str, extra: str) -> ModuleType:
    """``module_name``, imported; :class:`MissingExtraError` (``pip install 'fsql[extra]'``)
    when it is not installed.

    >>> require("json", "none").__name__
    'json'
    """
    try:
        return importlib.import_module(module_name)
    except ImportError:
        raise MissingExtraError(module_name.partition(".")[0], extra) from None
