"""Reading backend URLs (`mysql://`, `milvus://`, `redis://`): port, credentials, query options.

One set of rules and messages for every backend: a bad port, an unknown option or a value an
option cannot take is a ConfigurationError that names the backend and the option. Messages
never repeat the URL, which may hold a password.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import SplitResult, parse_qsl, unquote

from modelcache.errors import ConfigurationError

__all__ = ["OptionReader", "credentials", "port_or", "positive_integer", "positive_number", "query_options"]

#: Reads one option's text; raises ValueError (its message says what was expected) if it cannot.
OptionReader = Callable[[str], Any]


def port_or(parts: SplitResult, default: int, backend: str) -> int:
    """The URL's port, or `default` when it names none."""
    try:
        return parts.port or default
    except ValueError as exc:
        raise ConfigurationError(f"{backend} URL has a bad port: {exc}") from None


def credentials(parts: SplitResult) -> tuple[str, str]:
    """User and password, URL-decoded ("" where the URL has none)."""
    return unquote(parts.username or ""), unquote(parts.password or "")


def query_options(
    query: str, backend: str, readers: Mapping[str, OptionReader], *, unique: bool = False
) -> dict[str, Any]:
    """`key=value` options, each read by `readers[key]`; a repeated key keeps its last value,
    or is an error when `unique`."""
    options: dict[str, Any] = {}
    for key, text in parse_qsl(query, keep_blank_values=True):
        reader = readers.get(key)
        if reader is None:
            raise ConfigurationError(f"unknown {backend} URL option {key!r}; known: {', '.join(readers)}")
        if unique and key in options:
            raise ConfigurationError(f"{backend} URL option {key} is given more than once")
        try:
            options[key] = reader(text)
        except ValueError as exc:
            raise ConfigurationError(f"{backend} URL option {key}: {exc}") from None
    return options


def positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"must be a positive number, not {text!r}")
    return value


def positive_integer(text: str) -> int:
    value = positive_number(text)
    if not value.is_integer():
        raise ValueError(f"must be a whole number, not {text!r}")
    return int(value)
