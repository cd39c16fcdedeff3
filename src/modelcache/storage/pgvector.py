"""pgvector index: one table per tenant in PostgreSQL, searched through an HNSW index.

Each tenant's table is named by `tenants.backend_name` (quoted, so case is kept) and holds
`(id BIGINT PRIMARY KEY, embedding vector(dim))` with an HNSW index on cosine distance;
scores are `1 - cosine distance`. Tables are created on first use under an advisory lock,
so replicas and threads may race safely. Connections, timeouts and recovery after an
outage are those of the PostgreSQL row store (`PostgresPool`).

URL: `pgvector://user:password@host:port/database`, with libpq query options as for
`postgresql://`. The server needs the `vector` extension (pgvector 0.5+); start-up runs
`CREATE EXTENSION IF NOT EXISTS vector`, which needs the right to create it the first time.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from modelcache.errors import ConfigurationError
from modelcache.settings import Settings
from modelcache.storage.pg_pool import PostgresPool, libpq_url
from modelcache.tenants import backend_name

if TYPE_CHECKING:
    from psycopg import Connection
    from psycopg.adapt import AdaptersMap
    from psycopg.sql import Composed

__all__ = ["PgvectorIndex", "table_name"]

T = TypeVar("T")

#: PostgreSQL truncates identifiers longer than this many bytes.
#: pgvector's HNSW index takes `vector` columns of at most this many dimensions.
_MAX_HNSW_DIM = 2000
#: hnsw.ef_search accepts 1..1000.
_MAX_EF_SEARCH = 1000
#: Score of the slots a search could not fill, as FAISS gives them.
_PAD_SCORE = np.finfo(np.float32).min

_CREATE_TABLE = "CREATE TABLE {} (id BIGINT PRIMARY KEY, embedding vector({}) NOT NULL)"
_CREATE_INDEX = "CREATE INDEX ON {} USING hnsw (embedding vector_cosine_ops)"
_UPSERT = (
    "INSERT INTO {} (id, embedding) VALUES (%s, %b::vector)"
    " ON CONFLICT (id) DO UPDATE SET embedding = EXCLUDED.embedding"
)
_NEAREST = "SELECT id, embedding <=> %(q)b::vector FROM {} ORDER BY embedding <=> %(q)b::vector LIMIT %(k)s"


def table_name(tenant: str) -> str:
    """The tenant's table: `backend_name(tenant)`, which fits PostgreSQL's 63-byte limit."""
    return backend_name(tenant)


def _statement(template: str, table: str, *literals: object) -> Composed:
    from psycopg import sql

    return sql.SQL(template).format(sql.Identifier(table), *(sql.Literal(x) for x in literals))


def _vector_adapters() -> AdaptersMap:
    """psycopg adapters that send numpy arrays in pgvector's binary form (exact, no parsing).

    The dumper leaves the type oid unknown, so every parameter is written `%b::vector`.
    """
    import psycopg
    from psycopg.adapt import AdaptersMap, Dumper
    from psycopg.pq import Format

    class VectorDumper(Dumper):
        format = Format.BINARY

        def dump(self, obj: np.ndarray) -> bytes:
            vector = np.asarray(obj, dtype=">f4").ravel()
            return struct.pack(">HH", len(vector), 0) + vector.tobytes()

    adapters = AdaptersMap(psycopg.adapters)
    adapters.register_dumper(np.ndarray, VectorDumper)
    return adapters


def _lock_key(table: str) -> int:
    digest = hashlib.sha1(table.encode("ascii"), usedforsecurity=False).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _exists(conn: Connection[Any], table: str) -> bool:
    from psycopg import sql

    row = conn.execute("SELECT to_regclass(%s)", (sql.Identifier(table).as_string(conn),)).fetchone()
    return row is not None and row[0] is not None


def _enable_extension(conn: Connection[Any]) -> None:
    import psycopg

    try:
        with conn.transaction():
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except (psycopg.ProgrammingError, psycopg.NotSupportedError, psycopg.errors.UndefinedFile) as exc:
        raise ConfigurationError(f"the pgvector extension cannot be enabled: {exc}") from None


class PgvectorIndex:
    name = "pgvector"
    local = False

    def __init__(
        self, url: str, dim: int, *, ef_search: int = 100, pool_size: int = 10, connect_timeout_s: int = 3
    ):
        libpq_url(url)
        if not 1 <= dim <= _MAX_HNSW_DIM:
            raise ConfigurationError(f"pgvector HNSW indexes take 1 to {_MAX_HNSW_DIM} dimensions, not {dim}")
        self.url = url
        self.dim = dim
        self.ef_search = ef_search
        self._pool = PostgresPool(self.name, url, max_size=pool_size, connect_timeout_s=connect_timeout_s)

    @classmethod
    def from_url(cls, url: str, settings: Settings, dim: int) -> PgvectorIndex:
        return cls(url, dim, ef_search=max(100, 2 * settings.top_k))

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._pool.start(_enable_extension, _vector_adapters())

    def close(self) -> None:
        self._pool.close()

    def ping(self) -> None:
        self._pool.ping()

    # -- tenants ---------------------------------------------------------------------------

    def _create(self, conn: Connection[Any], table: str) -> bool:
        """Create the table and its index unless it exists; True if created. In a transaction."""
        if _exists(conn, table):
            return False
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(table),))
        if _exists(conn, table):
            return False
        conn.execute(_statement(_CREATE_TABLE, table, self.dim))
        conn.execute(_statement(_CREATE_INDEX, table))
        return True

    def ensure_tenant(self, tenant: str) -> bool:
        table = table_name(tenant)

        def work(conn: Connection[Any]) -> bool:
            with conn.transaction():
                return self._create(conn, table)

        return self._pool.run(work)

    def drop_tenant(self, tenant: str) -> None:
        statement = _statement("DROP TABLE IF EXISTS {}", table_name(tenant))
        self._pool.run(lambda conn: conn.execute(statement))

    # -- vectors ---------------------------------------------------------------------------

    def add(self, tenant: str, ids: np.ndarray, vectors: np.ndarray) -> None:
        table = table_name(tenant)
        rows = [
            (int(i), v) for i, v in zip(np.asarray(ids, dtype=np.int64), np.asarray(vectors), strict=True)
        ]

        def work(conn: Connection[Any]) -> None:
            with conn.transaction():
                self._create(conn, table)
                if rows:
                    with conn.cursor() as cursor:
                        cursor.executemany(_statement(_UPSERT, table), rows)

        self._pool.run(work)

    def search(self, tenant: str, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.asarray(vectors, dtype=np.float32)
        ef_search = str(min(_MAX_EF_SEARCH, max(self.ef_search, k)))
        nearest = _statement(_NEAREST, table_name(tenant))

        def work(conn: Connection[Any]) -> list[list[Any]]:
            conn.execute("SELECT set_config('hnsw.ef_search', %s, false)", (ef_search,))
            return [conn.execute(nearest, {"q": q, "k": k}).fetchall() for q in queries]

        found = self._pool.run(lambda conn: _unless_missing(conn, work, None))
        if found is None:
            return np.full((len(queries), k), -1, np.int64), np.zeros((len(queries), k), np.float32)
        return _pad(found, k)

    def delete(self, tenant: str, ids: np.ndarray) -> None:
        if not len(ids):
            return
        wanted = [int(i) for i in np.asarray(ids, dtype=np.int64)]
        self._rows(tenant, "DELETE FROM {} WHERE id = ANY(%s::bigint[]) RETURNING id", (wanted,))

    def count(self, tenant: str) -> int:
        rows = self._rows(tenant, "SELECT count(*) FROM {}")
        return int(rows[0][0]) if rows else 0

    def ids(self, tenant: str) -> np.ndarray | None:
        rows = self._rows(tenant, "SELECT id FROM {} ORDER BY id")
        return np.array([row[0] for row in rows], dtype=np.int64)

    def _rows(self, tenant: str, template: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """Rows of one statement on the tenant's table; none if the table does not exist."""
        statement = _statement(template, table_name(tenant))

        def work(conn: Connection[Any]) -> list[Any]:
            return conn.execute(statement, params).fetchall()

        rows: list[Any] = self._pool.run(lambda conn: _unless_missing(conn, work, []))
        return rows


def _unless_missing(conn: Connection[Any], work: Callable[[Connection[Any]], T], missing: T) -> T:
    """`work(conn)`, or `missing` if the tenant's table does not exist (autocommit: no harm done)."""
    from psycopg import errors

    try:
        return work(conn)
    except errors.UndefinedTable:
        return missing


def _pad(found: list[list[Any]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of (id, cosine distance) per query -> (ids, scores) of shape (n, k), -1 padded."""
    ids = np.full((len(found), k), -1, np.int64)
    scores = np.full((len(found), k), _PAD_SCORE, np.float32)
    for row, hits in enumerate(found):
        for col, (entry_id, distance) in enumerate(hits):
            ids[row, col] = entry_id
            scores[row, col] = 1.0 - distance
    return ids, scores
