"""Reading an embedder's `embedder_options`: typed values, clear errors, no unknown keys.

Options are parsed when the embedder is built (no I/O); files are checked in `load()`,
the start-up step, by `require_file` / `require_dir`, which name the missing path.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modelcache.errors import ConfigurationError

__all__ = ["Options", "require_dir", "require_file"]


class Options:
    """One embedder's options; every key must be read, or `finish()` rejects it."""

    def __init__(self, embedder: str, values: Mapping[str, Any]):
        self.embedder = embedder
        self._values = dict(values)
        self._read: set[str] = set()

    def _get(self, key: str) -> Any:
        self._read.add(key)
        return self._values.get(key)

    def _bad(self, key: str, value: Any, wanted: str) -> ConfigurationError:
        return ConfigurationError(f"{self.embedder} embedder: option {key!r} must be {wanted}, not {value!r}")

    def path(self, key: str) -> Path:
        """A required path option (existence is checked at load time)."""
        value = self._get(key)
        if value is None or value == "":
            raise ConfigurationError(f"{self.embedder} embedder: option {key!r} (a path) is required")
        if not isinstance(value, str | Path):
            raise self._bad(key, value, "a path")
        return Path(value).expanduser()

    def optional_path(self, key: str) -> Path | None:
        if self._values.get(key) in (None, ""):
            self._read.add(key)
            return None
        return self.path(key)

    def integer(self, key: str, default: int, *, minimum: int = 1) -> int:
        number = self.optional_integer(key, minimum=minimum)
        return default if number is None else number

    def optional_integer(self, key: str, *, minimum: int = 1) -> int | None:
        value = self._get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise self._bad(key, value, f"an integer >= {minimum}")
        try:
            number = int(value)
        except ValueError:
            raise self._bad(key, value, f"an integer >= {minimum}") from None
        if number < minimum:
            raise self._bad(key, value, f"an integer >= {minimum}")
        return number

    def number(self, key: str, default: float, *, low: float, high: float) -> float:
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise self._bad(key, value, f"a number in [{low}, {high}]")
        try:
            number = float(value)
        except ValueError:
            raise self._bad(key, value, f"a number in [{low}, {high}]") from None
        if not low <= number <= high:
            raise self._bad(key, value, f"a number in [{low}, {high}]")
        return number

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self._get(key)
        if value is None:
            return default
        if value not in choices:
            raise self._bad(key, value, f"one of {choices}")
        return str(value)

    def text(self, key: str, default: str | None) -> str | None:
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self._bad(key, value, "a string")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self._bad(key, value, "true or false")
        return value

    def finish(self) -> None:
        """Reject options this embedder does not know (typos would otherwise pass silently)."""
        unknown = sorted(set(self._values) - self._read)
        if unknown:
            known = ", ".join(sorted(self._read))
            raise ConfigurationError(f"{self.embedder} embedder: unknown option(s) {unknown}; known: {known}")


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise ConfigurationError(f"{what} not found: {path} is not a file")
    return path


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise ConfigurationError(f"{what} not found: {path} is not a directory")
    return path
