"""PostgreSQL row store, and the connection pool it shares with the pgvector index.

Same semantics as the SQLite store, over a psycopg 3 connection pool. The schema is the
shipped file `schema/postgres.sql`, run on start-up (DBAs may run it by hand). Every
statement is parameterised; table names are constants. A server that cannot be reached
gives `BackendUnavailable` within a few seconds (connect timeout 3 s, pool wait 2 s), and
the store recovers by itself when the server comes back.

URL: `postgresql://user:password@host:port/database` (also `postgres://`); query options
are libpq connection parameters, for example `?sslmode=require&connect_timeout=5`.
PostgreSQL text cannot hold the NUL character: entries containing one are refused
(`InvalidRequest`), and in the query log it is replaced by U+FFFD.
"""

from __future__ import annotations

import json
import select
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from modelcache.errors import BackendUnavailable, ConfigurationError, InvalidRequest, MissingDependency
from modelcache.settings import Settings
from modelcache.storage.base import Entry, NewEntry, QueryLogRecord
from modelcache.storage.sql import ENTRY_COLUMNS, chunked, entry_from_row, vector_from_bytes, vector_to_bytes

if TYPE_CHECKING:
    from psycopg import Connection
    from psycopg.abc import AdaptContext
    from psycopg_pool import ConnectionPool

__all__ = ["PostgresPool", "PostgresRowStore", "libpq_url"]

T = TypeVar("T")

_CHUNK = 1000
#: Key of the advisory lock that serialises schema creation between replicas.
_SCHEMA_LOCK = 0x6D635F736368656D  # "mc_schem"

_SELECT_BY_IDS = f"SELECT {ENTRY_COLUMNS} FROM mc_entries WHERE tenant = %s AND id = ANY(%s::bigint[])"
_NEWEST_BY_KEY = (
    f"SELECT DISTINCT ON (key_hash) {ENTRY_COLUMNS} FROM mc_entries"
    " WHERE tenant = %s AND key_hash = ANY(%s::text[]) ORDER BY key_hash, id DESC"
)
_INSERT_ENTRY = (
    "INSERT INTO mc_entries (tenant, question, answer, context, context_hash, key_hash, embedding,"
    " created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id"
)
_DELETE_ENTRIES = "DELETE FROM mc_entries WHERE tenant = %s AND id = ANY(%s::bigint[]) RETURNING id"
_VECTOR_BATCH = "SELECT id, embedding FROM mc_entries WHERE tenant = %s AND id > %s ORDER BY id LIMIT %s"
_INSERT_QUERY_LOG = (
    "INSERT INTO mc_query_log (tenant, question, context_hash, hit, entry_id, score, latency_ms,"
    " created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
)


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
        self._last_used: weakref.WeakKeyDictionary[Connection[Any], float] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def start(self, setup: Callable[[Connection[Any]], None], adapters: AdaptContext | None = None) -> None:
        """Run `setup` on a first connection (schema, extensions), then open the pool.

        `adapters`: extra psycopg type adapters for every connection.
        """
        psycopg, pool_class = _load_driver()
        self._unreachable = (psycopg.OperationalError,)
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
            conn = self._checkout(pool)
            try:
                return work(conn)
            finally:
                self._mark_used(conn)
                pool.putconn(conn)
        except self._unreachable as exc:
            raise BackendUnavailable(self.backend, _describe(exc)) from exc

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


def _reject_nul(entry_texts: Sequence[str]) -> None:
    if any("\x00" in text for text in entry_texts):
        raise InvalidRequest("PostgreSQL cannot store the NUL character (\\u0000) in text", code=301)


def _setup_schema(conn: Connection[Any]) -> None:
    script = resources.files("modelcache.storage").joinpath("schema/postgres.sql").read_bytes()
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        conn.execute(script)


def _entry_params(e: NewEntry, now: float) -> tuple[Any, ...]:
    embedding = vector_to_bytes(e.embedding)
    return (e.tenant, e.question, e.answer, e.context, e.context_hash, e.key_hash, embedding, now)


def _insert_rows(conn: Connection[Any], rows: Sequence[tuple[Any, ...]]) -> list[int]:
    if not rows:
        return []
    ids: list[int] = []
    with conn.transaction(), conn.cursor() as cursor:
        cursor.executemany(_INSERT_ENTRY, rows, returning=True)
        while True:
            row = cursor.fetchone()
            if row is not None:
                ids.append(int(row[0]))
            if not cursor.nextset():
                return ids


def _execute_many(conn: Connection[Any], sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """One statement per row, all in one transaction."""
    if not rows:
        return
    with conn.transaction(), conn.cursor() as cursor:
        cursor.executemany(sql, rows)


class PostgresRowStore:
    name = "postgresql"

    def __init__(self, url: str, *, pool_size: int = 10, connect_timeout_s: int = 3):
        libpq_url(url)
        self.url = url
        self._pool = PostgresPool(self.name, url, max_size=pool_size, connect_timeout_s=connect_timeout_s)

    @classmethod
    def from_url(cls, url: str, settings: Settings) -> PostgresRowStore:
        return cls(url)

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self._pool.start(_setup_schema)

    def close(self) -> None:
        self._pool.close()

    def ping(self) -> None:
        self._pool.ping()

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        rows: list[Any] = self._pool.run(lambda c: c.execute(sql, params).fetchall())
        return rows

    def _rowcount(self, sql: str, params: Sequence[Any]) -> int:
        return int(self._pool.run(lambda c: c.execute(sql, params).rowcount))

    # -- tenants -------------------------------------------------------------------------

    def register_tenant(self, tenant: str) -> bool:
        sql = "INSERT INTO mc_tenants (name, created_at) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING"
        return bool(self._rowcount(sql, (tenant, time.time())))

    def tenants(self) -> list[str]:
        return [row[0] for row in self._rows("SELECT name FROM mc_tenants ORDER BY name")]

    def tenant_settings(self, tenant: str) -> dict[str, Any]:
        rows = self._rows("SELECT settings FROM mc_tenants WHERE name = %s", (tenant,))
        return dict(json.loads(rows[0][0])) if rows else {}

    def set_tenant_settings(self, tenant: str, values: Mapping[str, Any]) -> None:
        sql = (
            "INSERT INTO mc_tenants (name, settings, created_at) VALUES (%s, %s, %s)"
            " ON CONFLICT (name) DO UPDATE SET settings = EXCLUDED.settings"
        )
        self._rowcount(sql, (tenant, json.dumps(dict(values)), time.time()))

    # -- entries ---------------------------------------------------------------------------

    def insert(self, entries: Sequence[NewEntry]) -> list[int]:
        now = time.time()
        _reject_nul([text for e in entries for text in (e.question, e.answer, e.context)])
        rows = [_entry_params(e, now) for e in entries]
        return self._pool.run(lambda c: _insert_rows(c, rows))

    def find_by_keys(self, tenant: str, key_hashes: Sequence[str]) -> dict[str, Entry]:
        found: dict[str, Entry] = {}
        for part in chunked(list(key_hashes), _CHUNK):
            for row in self._rows(_NEWEST_BY_KEY, (tenant, list(part))):
                entry = entry_from_row(row)
                found[entry.key_hash] = entry
        return found

    def get(self, tenant: str, ids: Sequence[int]) -> list[Entry]:
        entries: list[Entry] = []
        for part in chunked([int(i) for i in ids], _CHUNK):
            entries += [entry_from_row(row) for row in self._rows(_SELECT_BY_IDS, (tenant, list(part)))]
        return entries

    def update_answers(self, tenant: str, answers: Mapping[int, str]) -> None:
        _reject_nul(list(answers.values()))
        # Sorted by id: one lock order, so concurrent updates cannot deadlock.
        rows = sorted(((answer, tenant, int(i)) for i, answer in answers.items()), key=lambda r: r[2])
        sql = "UPDATE mc_entries SET answer = %s WHERE tenant = %s AND id = %s"
        self._pool.run(lambda c: _execute_many(c, sql, rows))

    def delete(self, tenant: str, ids: Sequence[int]) -> list[int]:
        wanted = [int(i) for i in ids]

        def work(conn: Connection[Any]) -> list[int]:
            deleted: list[int] = []
            with conn.transaction():
                for part in chunked(wanted, _CHUNK):
                    rows = conn.execute(_DELETE_ENTRIES, (tenant, list(part))).fetchall()
                    deleted += sorted(int(row[0]) for row in rows)
            return deleted

        return self._pool.run(work)

    def delete_tenant_rows(self, tenant: str) -> int:
        return self._rowcount("DELETE FROM mc_entries WHERE tenant = %s", (tenant,))

    def count(self, tenant: str) -> int:
        return int(self._rows("SELECT COUNT(*) FROM mc_entries WHERE tenant = %s", (tenant,))[0][0])

    def ids(self, tenant: str) -> np.ndarray:
        rows = self._rows("SELECT id FROM mc_entries WHERE tenant = %s ORDER BY id", (tenant,))
        return np.array([row[0] for row in rows], dtype=np.int64)

    def iter_vectors(self, tenant: str, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        last = 0
        while True:
            rows = self._rows(_VECTOR_BATCH, (tenant, last, batch_size))
            if not rows:
                return
            last = rows[-1][0]
            yield (
                np.array([row[0] for row in rows], dtype=np.int64),
                np.stack([vector_from_bytes(bytes(row[1])) for row in rows]),
            )

    # -- counters and log ------------------------------------------------------------------

    def add_hits(self, counts: Mapping[int, int], at: float) -> None:
        # Sorted by id: one lock order, so concurrent updates cannot deadlock.
        rows = sorted(((int(n), at, int(i)) for i, n in counts.items()), key=lambda r: r[2])
        sql = "UPDATE mc_entries SET hit_count = hit_count + %s, last_hit_at = %s WHERE id = %s"
        self._pool.run(lambda c: _execute_many(c, sql, rows))

    def write_query_log(self, records: Sequence[QueryLogRecord]) -> None:
        rows = [
            (
                r.tenant,
                r.question.replace("\x00", "\ufffd"),
                r.context_hash,
                bool(r.hit),
                r.entry_id,
                r.score,
                r.latency_ms,
                r.created_at,
            )
            for r in records
        ]
        self._pool.run(lambda c: _execute_many(c, _INSERT_QUERY_LOG, rows))
