"""Real backend servers for the tests, one module per backend.

Each module defines a session-scoped fixture `<backend>_server` that yields a ServerHandle
whose `url` goes in `Settings.row_store` or `Settings.vector_index`. It uses a server the machine already runs
or starts one from pip packages (bound to 127.0.0.1) and stops what it started.
If the server cannot be had, `unavailable()` fails the test in CI and skips it elsewhere.
"""

from __future__ import annotations

import os
import socket

import pytest

__all__ = [
    "COMBINATIONS",
    "SHARED_COMBINATIONS",
    "ServerHandle",
    "combination_id",
    "free_port",
    "handle",
    "storage_urls",
    "unavailable",
]


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


#: backend name -> (fixture yielding a ServerHandle, attribute holding the URL).
ROW_FIXTURES = {
    "mysql": ("mysql_server", "url"),
    "postgres": ("postgres_server", "url"),
    "pg18": ("pgvector_server", "row_url"),
}
VECTOR_FIXTURES = {
    "milvus": ("milvus_server", "url"),
    "milvus_lite": ("milvus_lite_server", "url"),
    "redis": ("redis_server", "url"),
    "pgvector": ("pgvector_server", "url"),
}

#: (row store, vector index) combinations that make sense together; sqlite/faiss are embedded.
COMBINATIONS = [
    ("sqlite", "faiss"),
    ("mysql", "milvus"),
    ("mysql", "redis"),
    ("pg18", "pgvector"),
    ("postgres", "faiss"),
    ("sqlite", "milvus_lite"),
]
#: The combinations several replicas can share (no in-process part).
SHARED_COMBINATIONS = [c for c in COMBINATIONS if "sqlite" not in c and "faiss" not in c]


def combination_id(combination: tuple[str, str]) -> str:
    return f"{combination[0]}+{combination[1]}"


def handle(request: pytest.FixtureRequest, backend: str) -> ServerHandle:
    fixture, _ = {**ROW_FIXTURES, **VECTOR_FIXTURES}[backend]
    server: ServerHandle = request.getfixturevalue(fixture)
    return server


def storage_urls(request: pytest.FixtureRequest, combination: tuple[str, str]) -> tuple[str, str]:
    """(row_store, vector_index) URLs for Settings; '' means the embedded default."""
    row, vector = combination
    row_url = "" if row == "sqlite" else getattr(handle(request, row), ROW_FIXTURES[row][1])
    vector_url = "" if vector == "faiss" else getattr(handle(request, vector), VECTOR_FIXTURES[vector][1])
    return row_url, vector_url
