"""A small thread-safe pool of DB-API connections for the MySQL row store.

At most `size` connections are open; idle ones are reused newest first and pinged before
reuse when they sat idle for `ping_after_idle_s`; connections the driver has seen break are
closed instead of returned, so the pool recovers by itself when the server comes back.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from modelcache.errors import BackendUnavailable

__all__ = ["Connection", "ConnectionPool", "Cursor", "close_quietly"]

_BACKEND = "mysql"


class Cursor(Protocol):
    rowcount: int
    lastrowid: int | None

    def __enter__(self) -> Cursor: ...

    def __exit__(self, *exc_info: object) -> None: ...

    def execute(self, query: str, args: Sequence[Any] | None = None) -> int: ...

    def executemany(self, query: str, args: Sequence[Sequence[Any]]) -> int | None: ...

    def fetchall(self) -> Sequence[tuple[Any, ...]]: ...


class Connection(Protocol):
    @property
    def open(self) -> bool: ...

    def cursor(self) -> Cursor: ...

    def begin(self) -> None: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def ping(self) -> None: ...

    def close(self) -> None: ...


def close_quietly(conn: Connection, driver_error: type[BaseException]) -> None:
    with contextlib.suppress(driver_error):
        conn.close()


class ConnectionPool:
    """At most `size` open connections; idle ones are reused newest first, pinged after a pause."""

    def __init__(
        self,
        connect: Callable[[], Connection],
        driver_error: type[BaseException],
        *,
        size: int,
        wait_s: float,
        ping_after_idle_s: float,
    ):
        self._connect = connect
        self._driver_error = driver_error
        self._size = size
        self._wait_s = wait_s
        self._ping_after_idle_s = ping_after_idle_s
        self._slots = threading.BoundedSemaphore(size)
        self._idle: list[tuple[Connection, float]] = []
        self._lock = threading.Lock()
        self._closed = False

    def acquire(self) -> Connection:
        if not self._slots.acquire(timeout=self._wait_s):
            raise BackendUnavailable(_BACKEND, f"all {self._size} pooled connections are busy")
        try:
            return self._idle_or_new()
        except BaseException:
            self._slots.release()
            raise

    def release(self, conn: Connection) -> None:
        """Return a connection for reuse; one the driver has seen break is closed instead."""
        with self._lock:
            keep = conn.open and not self._closed
            if keep:
                self._idle.append((conn, time.monotonic()))
        if not keep:
            close_quietly(conn, self._driver_error)
        self._slots.release()

    def discard(self, conn: Connection) -> None:
        close_quietly(conn, self._driver_error)
        self._slots.release()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn, _ in idle:
            close_quietly(conn, self._driver_error)

    def _idle_or_new(self) -> Connection:
        while (idle := self._pop_idle()) is not None:
            conn, since = idle
            if time.monotonic() - since < self._ping_after_idle_s or self._alive(conn):
                return conn
            close_quietly(conn, self._driver_error)
        return self._connect()

    def _pop_idle(self) -> tuple[Connection, float] | None:
        with self._lock:
            if self._closed:
                raise BackendUnavailable(_BACKEND, "the store is closed")
            return self._idle.pop() if self._idle else None

    def _alive(self, conn: Connection) -> bool:
        try:
            conn.ping()
        except self._driver_error:
            return False
        return True
