"""Real backend servers for the tests, one module per backend.

Each module defines a session-scoped fixture `<backend>_url` that yields the URL to put in
`Settings.row_store` or `Settings.vector_index`. It uses a server the machine already runs
or starts one from pip packages (bound to 127.0.0.1) and stops what it started.
If the server cannot be had, `unavailable()` fails the test in CI and skips it elsewhere.
"""

from __future__ import annotations

import os
import socket

import pytest

__all__ = ["ServerHandle", "free_port", "unavailable"]


def unavailable(reason: str) -> None:
    """Fail when CI is set (a backend must never silently skip there), else skip."""
    if os.environ.get("CI"):
        pytest.fail(f"backend unavailable in CI: {reason}")
    pytest.skip(f"backend unavailable: {reason}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerHandle:
    """What a backend fixture yields: the URL, and stop/start for fault tests.

    Backends whose server the machine runs (MariaDB, PostgreSQL 15) may leave stop/start
    unimplemented; servers the fixture starts itself implement both, keeping port and data.
    """

    url: str

    def stop(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError
