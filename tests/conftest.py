"""Test-wide fixtures: every module in tests/backends is a pytest plugin."""

from __future__ import annotations

import pkgutil
from pathlib import Path

pytest_plugins = [
    f"tests.backends.{module.name}"
    for module in pkgutil.iter_modules([str(Path(__file__).parent / "backends")])
]
