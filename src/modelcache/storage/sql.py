"""Helpers shared by the SQL row stores (SQLite, MySQL, PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

import numpy as np

from modelcache.storage.base import Entry, NewEntry

__all__ = [
    "ENTRY_COLUMNS",
    "INSERT_COLUMNS",
    "INSERT_WIDTH",
    "chunked",
    "entry_from_row",
    "insert_params",
    "insert_placeholders",
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


def insert_placeholders(mark: str) -> str:
    """`(mark, mark, ...)`: one parameter marker per INSERT_COLUMNS column."""
    return "(" + ", ".join([mark] * INSERT_WIDTH) + ")"


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
