"""The psycopg 3 connection pool shared by the PostgreSQL row store and the pgvector index.

A server that cannot be reached gives `BackendUnavailable` within a few seconds (connect
timeout 3 s, pool wait 2 s). Before a pooled connection is reused it is checked if it sat
idle or the server has sent it something (a shutdown or kill notice); broken ones are
replaced, so both backends recover by themselves when the server comes back.
"""

from __future__ import annotations

import select
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from modelcache.errors import BackendUnavailable, ConfigurationError, MissingDependency

if TYPE_CHECKING:
    from psycopg import Connection
    from psycopg.abc import AdaptContext
    from psycopg_pool import ConnectionPool

__all__ = ["PostgresPool", "libpq_url"]

T = TypeVar("T")


def libpq_url(url: str) -> str:
    """`postgres://`, `postgresql+psycopg://`, `pgvector://` ... as a libpq `postgresql://` URI."""
    if "://" not in url:
        raise ConfigurationError("a PostgreSQL URL looks like postgresql://user:password@host:port/db")
    return "postgresql://" + url.split("://", 1)[1]


def _load_driver() -> tuple[Any, Any]:
    """(psycopg, psycopg_pool.ConnectionPool), or MissingDependency."""
    try:
        import psycopg
        from psycopg_pool import ConnectionPool
    except ImportError as exc:
        raise MissingDependency("psycopg", "postgres") from exc
    return psycopg, ConnectionPool


class PostgresPool:
    """A psycopg pool whose failures to reach the server become `BackendUnavailable`.

    Connections are in autocommit mode: one statement is one transaction, and work that
    runs several uses `conn.transaction()`. A connection idle for `ping_after_idle_s` or
    more is pinged before it is handed out; a broken one is dropped and the pool opens a
    new one, so users recover by themselves when the server comes back.
    """

    def __init__(
        self,
        backend: str,
        url: str,
        *,
        max_size: int = 10,
        connect_timeout_s: int = 3,
        pool_timeout_s: float = 2.0,
        reconnect_timeout_s: float = 2.0,
        ping_after_idle_s: float = 1.0,
    ):
        self.backend = backend
        self.url = url
        self.max_size = max_size
        self.connect_timeout_s = connect_timeout_s
        self.pool_timeout_s = pool_timeout_s
        self.reconnect_timeout_s = reconnect_timeout_s
        self.ping_after_idle_s = ping_after_idle_s
        self._pool: ConnectionPool[Connection[Any]] | None = None
        self._unreachable: tuple[type[Exception], ...] = ()
        self._ended_by_server: tuple[type[Exception], ...] = ()
        self._last_used: weakref.WeakKeyDictionary[Connection[Any], float] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def start(self, setup: Callable[[Connection[Any]], None], adapters: AdaptContext | None = None) -> None:
        """Run `setup` on a first connection (schema, extensions), then open the pool.

        `adapters`: extra psycopg type adapters for every connection.
        """
        psycopg, pool_class = _load_driver()
        self._unreachable = (psycopg.OperationalError,)
        # SQLSTATE 57P01 (admin_shutdown): the server killed the session, rolling back its work.
        self._ended_by_server = (psycopg.errors.AdminShutdown,)
        params = self._params(psycopg)
        if adapters is not None:
            params["context"] = adapters
        try:
            with psycopg.Connection.connect(**params) as conn:
                setup(conn)
        except psycopg.OperationalError as exc:
            raise BackendUnavailable(self.backend, _describe(exc)) from exc
        pool = pool_class(
            kwargs=params,
            min_size=1,
            max_size=self.max_size,
            open=False,
            configure=self._mark_used,
            timeout=self.pool_timeout_s,
            reconnect_timeout=self.reconnect_timeout_s,
            name=f"modelcache-{self.backend}",
        )
        pool.open(wait=False)
        previous, self._pool = self._pool, pool
        if previous is not None:
            previous.close()

    def _params(self, psycopg: Any) -> dict[str, Any]:
        try:
            params: dict[str, Any] = psycopg.conninfo.conninfo_to_dict(libpq_url(self.url))
        except psycopg.ProgrammingError as exc:
            raise ConfigurationError(f"bad {self.backend} URL: {exc}") from None
        params.setdefault("connect_timeout", self.connect_timeout_s)
        params.setdefault("application_name", "modelcache")
        # Drop a connection whose sent data goes unacknowledged (a lost host) after 10 s.
        params.setdefault("tcp_user_timeout", 10_000)
        params["client_encoding"] = "UTF8"
        params["autocommit"] = True
        return params

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def ping(self) -> None:
        self.run(lambda conn: conn.execute("SELECT 1"))

    def run(self, work: Callable[[Connection[Any]], T]) -> T:
        """`work(connection)` on a pooled connection; unreachable server -> BackendUnavailable."""
        pool = self._pool
        if pool is None:
            raise BackendUnavailable(self.backend, "the store is not started")
        try:
            try:
                return self._run_once(pool, work)
            except self._ended_by_server:
                # The server ended this connection (pg_terminate_backend, a restart) after it
                # passed the check: it rolled back whatever ran on it, so one retry on a
                # fresh connection is safe for reads and writes alike.
                return self._run_once(pool, work)
        except self._unreachable as exc:
            raise BackendUnavailable(self.backend, _describe(exc)) from exc

    def _run_once(self, pool: ConnectionPool[Connection[Any]], work: Callable[[Connection[Any]], T]) -> T:
        conn = self._checkout(pool)
        try:
            return work(conn)
        finally:
            self._mark_used(conn)
            pool.putconn(conn)

    def _checkout(self, pool: ConnectionPool[Connection[Any]]) -> Connection[Any]:
        """A pooled connection that works, skipping (and so replacing) broken ones."""
        for _ in range(self.max_size + 1):
            conn = pool.getconn()
            try:
                usable = self._usable(conn)
            except BaseException:
                pool.putconn(conn)
                raise
            if usable:
                return conn
            pool.putconn(conn)
        raise BackendUnavailable(self.backend, "every pooled connection is broken")

    def _usable(self, conn: Connection[Any]) -> bool:
        """Ping the connection if it sat idle a while or the server has sent it something."""
        if conn.broken:
            return False
        with self._lock:
            last_used = self._last_used.get(conn, 0.0)
        try:
            if time.monotonic() - last_used < self.ping_after_idle_s and not _has_input(conn):
                return True
            conn.execute("")
        except self._unreachable:
            return False
        return True

    def _mark_used(self, conn: Connection[Any]) -> None:
        with self._lock:
            self._last_used[conn] = time.monotonic()


def _has_input(conn: Connection[Any]) -> bool:
    """Whether an idle connection has data waiting: the server said goodbye (shutdown, kill)."""
    try:
        readable, _, _ = select.select([conn.pgconn.socket], [], [], 0)
    except (OSError, ValueError):  # ValueError: a descriptor select() cannot watch
        return True
    return bool(readable)


def _describe(exc: Exception) -> str:
    return str(exc).strip() or type(exc).__name__
