"""The two storage contracts and the records that cross them.

The row store is the source of truth: every entry, its embedding included, lives there.
Rows may also hold a second embedding of the question, by the verifier's second model; the
vector index never sees it.
A vector index only maps vectors to entry ids, one collection / index per tenant, and can
always be rebuilt from the rows. Batching, retries and single-item helpers live in the
core (`modelcache.cache`), not in backends.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["Entry", "NewEntry", "QueryLogRecord", "RowStore", "VectorIndex"]


@dataclass(frozen=True)
class NewEntry:
    """A row to insert; the store assigns the id."""

    tenant: str
    question: str
    answer: str
    context: str
    context_hash: str
    key_hash: str
    embedding: np.ndarray
    #: The verifier's second model's embedding of the question (None when not computed).
    second_embedding: np.ndarray | None = None


@dataclass(frozen=True)
class Entry:
    """A stored row."""

    id: int
    tenant: str
    question: str
    answer: str
    context: str
    context_hash: str
    key_hash: str
    embedding: np.ndarray = field(repr=False)
    hit_count: int
    created_at: float
    last_hit_at: float | None
    second_embedding: np.ndarray | None = field(default=None, repr=False)


@dataclass(frozen=True)
class QueryLogRecord:
    tenant: str
    question: str
    context_hash: str
    hit: bool
    entry_id: int | None
    score: float | None
    latency_ms: float
    created_at: float


@runtime_checkable
class RowStore(Protocol):
    """Rows, tenants, hit counters and the query log."""

    name: str

    def start(self) -> None: ...

    def close(self) -> None: ...

    def ping(self) -> None:
        """Raise BackendUnavailable if the store cannot be reached."""

    def register_tenant(self, tenant: str) -> bool:
        """Record the tenant; True if it was new."""

    def tenants(self) -> list[str]: ...

    def tenant_settings(self, tenant: str) -> dict[str, Any]:
        """Per-tenant overrides (thresholds); {} when none or tenant unknown."""

    def set_tenant_settings(self, tenant: str, values: Mapping[str, Any]) -> None: ...

    def insert(self, entries: Sequence[NewEntry]) -> list[int]:
        """Insert all rows in one transaction; return their ids in order."""

    def find_by_keys(self, tenant: str, key_hashes: Sequence[str]) -> dict[str, Entry]:
        """Newest entry per key hash, for the keys that exist in the tenant."""

    def get(self, tenant: str, ids: Sequence[int]) -> list[Entry]:
        """Rows of the tenant with these ids (others are ignored), in any order."""

    def update_answers(self, tenant: str, answers: Mapping[int, str]) -> None: ...

    def delete(self, tenant: str, ids: Sequence[int]) -> list[int]:
        """Delete the tenant's rows with these ids; return the ids that existed."""

    def delete_tenant_rows(self, tenant: str) -> int:
        """Delete every row of the tenant (the tenant stays registered); return the count."""

    def count(self, tenant: str) -> int: ...

    def ids(self, tenant: str) -> np.ndarray:
        """All entry ids of the tenant, int64."""

    def iter_vectors(self, tenant: str, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, embeddings) of every row of the tenant, in batches: for index rebuilds."""

    def add_hits(self, counts: Mapping[int, int], at: float) -> None: ...

    def write_query_log(self, records: Sequence[QueryLogRecord]) -> None: ...


@runtime_checkable
class VectorIndex(Protocol):
    """Vector -> id search, one index per tenant, cosine similarity on unit vectors."""

    name: str
    #: True when the index lives in this process and must be checked against rows at start.
    local: bool

    def start(self) -> None: ...

    def close(self) -> None: ...

    def ping(self) -> None: ...

    def ensure_tenant(self, tenant: str) -> bool:
        """Create the tenant's index if missing; True if it was created."""

    def add(self, tenant: str, ids: np.ndarray, vectors: np.ndarray) -> None: ...

    def search(self, tenant: str, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """For each query row: (ids, cosine scores), shape (n, k); missing slots have id -1."""

    def delete(self, tenant: str, ids: np.ndarray) -> None: ...

    def drop_tenant(self, tenant: str) -> None: ...

    def count(self, tenant: str) -> int: ...

    def ids(self, tenant: str) -> np.ndarray | None:
        """All ids in the tenant's index, or None if the backend cannot list them cheaply."""
