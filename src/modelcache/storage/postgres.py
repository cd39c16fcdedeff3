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
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any

from modelcache.errors import InvalidRequest
from modelcache.settings import Settings
from modelcache.storage.base import Entry, NewEntry, QueryLogRecord
from modelcache.storage.pg_pool import PostgresPool, libpq_url
from modelcache.storage.sql import (
    ENTRY_COLUMNS,
    SqlRowStoreBase,
    chunked,
    entry_from_row,
    insert_entry_sql,
    insert_params,
)

if TYPE_CHECKING:
    from psycopg import Connection

__all__ = ["PostgresRowStore"]

_CHUNK = 1000
#: Key of the advisory lock that serialises schema creation between replicas.
_SCHEMA_LOCK = 0x6D635F736368656D  # "mc_schem"

_NEWEST_BY_KEY = (
    f"SELECT DISTINCT ON (key_hash) {ENTRY_COLUMNS} FROM mc_entries"
    " WHERE tenant = %s AND key_hash = ANY(%s::text[]) ORDER BY key_hash, id DESC"
)
_INSERT_ENTRY = f"{insert_entry_sql('%s')} RETURNING id"
_DELETE_ENTRIES = "DELETE FROM mc_entries WHERE tenant = %s AND id = ANY(%s::bigint[]) RETURNING id"


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


def _execute_many(conn: Connection[Any], sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """One statement per row, all in one transaction."""
    if not rows:
        return
    with conn.transaction(), conn.cursor() as cursor:
        cursor.executemany(sql, rows)


class PostgresRowStore(SqlRowStoreBase):
    name = "postgresql"
    mark = "%s"

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

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        rows: list[Any] = self._pool.run(lambda c: c.execute(sql, params).fetchall())
        return rows

    def _write(self, sql: str, params: Sequence[Any] = ()) -> int:
        return int(self._pool.run(lambda c: c.execute(sql, params).rowcount))

    def _write_each(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._pool.run(lambda c: _execute_many(c, sql, rows))

    # -- tenants -------------------------------------------------------------------------

    def register_tenant(self, tenant: str) -> bool:
        sql = "INSERT INTO mc_tenants (name, created_at) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING"
        return bool(self._write(sql, (tenant, time.time())))

    def set_tenant_settings(self, tenant: str, values: Mapping[str, Any]) -> None:
        sql = (
            "INSERT INTO mc_tenants (name, settings, created_at) VALUES (%s, %s, %s)"
            " ON CONFLICT (name) DO UPDATE SET settings = EXCLUDED.settings"
        )
        self._write(sql, (tenant, json.dumps(dict(values)), time.time()))

    # -- entries ---------------------------------------------------------------------------

    def insert(self, entries: Sequence[NewEntry]) -> list[int]:
        now = time.time()
        _reject_nul([text for e in entries for text in (e.question, e.answer, e.context)])
        rows = [insert_params(e, now) for e in entries]
        return self._pool.run(lambda c: _insert_rows(c, rows))

    def find_by_keys(self, tenant: str, key_hashes: Sequence[str]) -> dict[str, Entry]:
        """The newest entry per key, by one array parameter per chunk and DISTINCT ON."""
        found: dict[str, Entry] = {}
        for part in chunked(list(key_hashes), _CHUNK):
            for row in self._query(_NEWEST_BY_KEY, (tenant, list(part))):
                entry = entry_from_row(row)
                found[entry.key_hash] = entry
        return found

    def get(self, tenant: str, ids: Sequence[int]) -> list[Entry]:
        entries: list[Entry] = []
        for part in chunked([int(i) for i in ids], _CHUNK):
            entries += self._select("tenant = %s AND id = ANY(%s::bigint[])", (tenant, list(part)))
        return entries

    def update_answers(self, tenant: str, answers: Mapping[int, str]) -> None:
        _reject_nul(list(answers.values()))
        super().update_answers(tenant, answers)

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

    # -- counters and log ------------------------------------------------------------------

    def _query_log_row(self, r: QueryLogRecord) -> tuple[Any, ...]:
        """`hit` as a boolean; NUL, which text cannot hold, as U+FFFD."""
        return (
            r.tenant,
            r.question.replace("\x00", "\ufffd"),
            r.context_hash,
            bool(r.hit),
            r.entry_id,
            r.score,
            r.latency_ms,
            r.created_at,
        )
