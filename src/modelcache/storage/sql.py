"""Helpers shared by the SQL row stores (SQLite, MySQL, PostgreSQL)."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

import numpy as np

from modelcache.storage.base import Entry, NewEntry, QueryLogRecord

__all__ = [
    "ENTRY_COLUMNS",
    "INSERT_COLUMNS",
    "INSERT_WIDTH",
    "IN_LIST_CHUNK",
    "QUERY_LOG_COLUMNS",
    "QUERY_LOG_WIDTH",
    "SqlRowStoreBase",
    "chunked",
    "entry_from_row",
    "insert_entry_sql",
    "insert_params",
    "insert_placeholders",
    "placeholders",
    "vector_from_bytes",
    "vector_to_bytes",
]

T = TypeVar("T")

#: Column order that `entry_from_row` expects.
ENTRY_COLUMNS = (
    "id, tenant, question, answer, context, context_hash, key_hash, embedding,"
    " hit_count, created_at, last_hit_at, second_embedding"
)

#: Columns that `insert_params` fills, in its order.
INSERT_COLUMNS = (
    "tenant, question, answer, context, context_hash, key_hash, embedding, created_at, second_embedding"
)
INSERT_WIDTH = INSERT_COLUMNS.count(",") + 1

#: Columns of a query log row, in the order of `SqlRowStoreBase._query_log_row`.
QUERY_LOG_COLUMNS = "tenant, question, context_hash, hit, entry_id, score, latency_ms, created_at"
QUERY_LOG_WIDTH = QUERY_LOG_COLUMNS.count(",") + 1

#: Most values in one `IN (...)` list.
IN_LIST_CHUNK = 500


def placeholders(mark: str, count: int) -> str:
    """`mark, mark, ...`: `count` parameter markers."""
    return ", ".join([mark] * count)


def insert_placeholders(mark: str) -> str:
    """`(mark, mark, ...)`: one parameter marker per INSERT_COLUMNS column."""
    return f"({placeholders(mark, INSERT_WIDTH)})"


def insert_entry_sql(mark: str) -> str:
    """The INSERT of one new entry, its values in `insert_params` order."""
    return f"INSERT INTO mc_entries ({INSERT_COLUMNS}) VALUES {insert_placeholders(mark)}"


def insert_params(entry: NewEntry, now: float) -> tuple[Any, ...]:
    """The values of INSERT_COLUMNS for one new entry."""
    return (
        entry.tenant,
        entry.question,
        entry.answer,
        entry.context,
        entry.context_hash,
        entry.key_hash,
        vector_to_bytes(entry.embedding),
        now,
        None if entry.second_embedding is None else vector_to_bytes(entry.second_embedding),
    )


def chunked(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def vector_to_bytes(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()


def vector_from_bytes(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.float32).copy()


def entry_from_row(row: Sequence[Any]) -> Entry:
    return Entry(
        id=int(row[0]),
        tenant=row[1],
        question=row[2],
        answer=row[3],
        context=row[4],
        context_hash=row[5],
        key_hash=row[6],
        embedding=vector_from_bytes(bytes(row[7])),
        hit_count=int(row[8]),
        created_at=float(row[9]),
        last_hit_at=None if row[10] is None else float(row[10]),
        second_embedding=None if row[11] is None else vector_from_bytes(bytes(row[11])),
    )


class SqlRowStoreBase(ABC):
    """The RowStore methods whose SQL is the same on every SQL store but for the parameter marker.

    A store names its driver's marker (`mark`) and provides the three primitives below
    (`_query`, `_write`, `_write_each`). `find_by_keys` uses IN lists; a store may override
    it (PostgreSQL passes one array instead).
    """

    mark: ClassVar[str]

    @abstractmethod
    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """The rows one statement returns."""

    @abstractmethod
    def _write(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; return the number of rows it changed."""

    @abstractmethod
    def _write_each(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run the statement once per row of parameters, all in one transaction."""

    def _marks(self, count: int) -> str:
        return placeholders(self.mark, count)

    # -- tenants -------------------------------------------------------------------------

    def tenants(self) -> list[str]:
        return [row[0] for row in self._query("SELECT name FROM mc_tenants ORDER BY name")]

    def tenant_settings(self, tenant: str) -> dict[str, Any]:
        rows = self._query(f"SELECT settings FROM mc_tenants WHERE name = {self.mark}", (tenant,))
        return dict(json.loads(rows[0][0])) if rows else {}

    # -- entries ---------------------------------------------------------------------------

    def _select(self, where: str, params: Sequence[Any]) -> list[Entry]:
        rows = self._query(f"SELECT {ENTRY_COLUMNS} FROM mc_entries WHERE {where}", params)
        return [entry_from_row(row) for row in rows]

    def find_by_keys(self, tenant: str, key_hashes: Sequence[str]) -> dict[str, Entry]:
        found: dict[str, Entry] = {}
        for part in chunked(list(key_hashes), IN_LIST_CHUNK):
            where = f"tenant = {self.mark} AND key_hash IN ({self._marks(len(part))}) ORDER BY id"
            for entry in self._select(where, [tenant, *part]):
                found[entry.key_hash] = entry  # the newest, last in id order, wins
        return found

    def update_answers(self, tenant: str, answers: Mapping[int, str]) -> None:
        # Rows are locked in id order, so concurrent calls cannot deadlock each other.
        rows = [(answer, tenant, int(entry_id)) for entry_id, answer in sorted(answers.items())]
        m = self.mark
        self._write_each(f"UPDATE mc_entries SET answer = {m} WHERE tenant = {m} AND id = {m}", rows)

    def delete_tenant_rows(self, tenant: str) -> int:
        return self._write(f"DELETE FROM mc_entries WHERE tenant = {self.mark}", (tenant,))

    def count(self, tenant: str) -> int:
        rows = self._query(f"SELECT COUNT(*) FROM mc_entries WHERE tenant = {self.mark}", (tenant,))
        return int(rows[0][0])

    def ids(self, tenant: str) -> np.ndarray:
        rows = self._query(f"SELECT id FROM mc_entries WHERE tenant = {self.mark} ORDER BY id", (tenant,))
        return np.array([row[0] for row in rows], dtype=np.int64)

    def iter_vectors(self, tenant: str, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        m = self.mark
        sql = f"SELECT id, embedding FROM mc_entries WHERE tenant = {m} AND id > {m} ORDER BY id LIMIT {m}"
        last = 0
        while rows := self._query(sql, (tenant, last, int(batch_size))):
            last = int(rows[-1][0])
            yield (
                np.array([row[0] for row in rows], dtype=np.int64),
                np.stack([vector_from_bytes(bytes(row[1])) for row in rows]),
            )

    # -- counters and log ------------------------------------------------------------------

    def add_hits(self, counts: Mapping[int, int], at: float) -> None:
        # Rows are locked in id order, so concurrent calls cannot deadlock each other.
        rows = [(int(n), at, int(entry_id)) for entry_id, n in sorted(counts.items())]
        m = self.mark
        sql = f"UPDATE mc_entries SET hit_count = hit_count + {m}, last_hit_at = {m} WHERE id = {m}"
        self._write_each(sql, rows)

    def write_query_log(self, records: Sequence[QueryLogRecord]) -> None:
        sql = f"INSERT INTO mc_query_log ({QUERY_LOG_COLUMNS}) VALUES ({self._marks(QUERY_LOG_WIDTH)})"
        self._write_each(sql, [self._query_log_row(record) for record in records])

    def _query_log_row(self, r: QueryLogRecord) -> tuple[Any, ...]:
        """The values of QUERY_LOG_COLUMNS for one record (`hit` as 0 or 1)."""
        return (
            r.tenant,
            r.question,
            r.context_hash,
            int(r.hit),
            None if r.entry_id is None else int(r.entry_id),
            None if r.score is None else float(r.score),
            float(r.latency_ms),
            float(r.created_at),
        )
