"""PostgreSQL row store (its connection pool, shared with pgvector, is in `pg_pool`).

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
import time
from collections.abc import Iterator, Mapping, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from modelcache.errors import InvalidRequest
from modelcache.settings import Settings
from modelcache.storage.base import Entry, NewEntry, QueryLogRecord
from modelcache.storage.pg_pool import PostgresPool, libpq_url
from modelcache.storage.sql import (
    ENTRY_COLUMNS,
    INSERT_COLUMNS,
    chunked,
    entry_from_row,
    insert_params,
    insert_placeholders,
    vector_from_bytes,
)

if TYPE_CHECKING:
    from psycopg import Connection

__all__ = ["PostgresRowStore"]

T = TypeVar("T")

_CHUNK = 1000
#: Key of the advisory lock that serialises schema creation between replicas.
_SCHEMA_LOCK = 0x6D635F736368656D  # "mc_schem"

_SELECT_BY_IDS = f"SELECT {ENTRY_COLUMNS} FROM mc_entries WHERE tenant = %s AND id = ANY(%s::bigint[])"
_NEWEST_BY_KEY = (
    f"SELECT DISTINCT ON (key_hash) {ENTRY_COLUMNS} FROM mc_entries"
    " WHERE tenant = %s AND key_hash = ANY(%s::text[]) ORDER BY key_hash, id DESC"
)
_INSERT_ENTRY = f"INSERT INTO mc_entries ({INSERT_COLUMNS}) VALUES {insert_placeholders('%s')} RETURNING id"
_DELETE_ENTRIES = "DELETE FROM mc_entries WHERE tenant = %s AND id = ANY(%s::bigint[]) RETURNING id"
_VECTOR_BATCH = "SELECT id, embedding FROM mc_entries WHERE tenant = %s AND id > %s ORDER BY id LIMIT %s"
_INSERT_QUERY_LOG = (
    "INSERT INTO mc_query_log (tenant, question, context_hash, hit, entry_id, score, latency_ms,"
    " created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
)


def _reject_nul(entry_texts: Sequence[str]) -> None:
    if any("\x00" in text for text in entry_texts):
        raise InvalidRequest("PostgreSQL cannot store the NUL character (\\u0000) in text", code=301)


def _setup_schema(conn: Connection[Any]) -> None:
    script = resources.files("modelcache.storage").joinpath("schema/postgres.sql").read_bytes()
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        conn.execute(script)


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
        rows = [insert_params(e, now) for e in entries]
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
