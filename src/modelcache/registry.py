"""Plug-ins by name: a dict from name (or URL scheme) to "module:attribute".

Modules are imported only when a plug-in is used, so optional dependencies stay optional.
A new backend is one module plus one line in the table that lists its kind.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from modelcache.errors import ConfigurationError

__all__ = ["resolve", "url_scheme"]


def url_scheme(url: str) -> str:
    """`mysql+pymysql://...` -> `mysql`; a bare name is its own scheme."""
    scheme = url.split("://", 1)[0] if "://" in url else url
    return scheme.split("+", 1)[0].lower()


def resolve(table: Mapping[str, str], name: str, kind: str) -> Any:
    """The object registered under `name` in `table`, imported on demand."""
    try:
        target = table[name]
    except KeyError:
        known = ", ".join(sorted(table))
        raise ConfigurationError(f"unknown {kind} {name!r}; known: {known}") from None
    module_name, _, attribute = target.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attribute)
