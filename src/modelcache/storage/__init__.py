"""Storage backends, chosen by URL scheme."""

from __future__ import annotations

from modelcache.registry import resolve, url_scheme
from modelcache.settings import Settings
from modelcache.storage.base import Entry, NewEntry, QueryLogRecord, RowStore, VectorIndex

__all__ = [
    "ROW_STORES",
    "VECTOR_INDEXES",
    "Entry",
    "NewEntry",
    "QueryLogRecord",
    "RowStore",
    "VectorIndex",
    "open_row_store",
    "open_vector_index",
]

#: URL scheme -> class with `from_url(url, settings)`.
ROW_STORES: dict[str, str] = {
    "sqlite": "modelcache.storage.sqlite:SQLiteRowStore",
    "postgresql": "modelcache.storage.postgres:PostgresRowStore",
    "postgres": "modelcache.storage.postgres:PostgresRowStore",
    "mysql": "modelcache.storage.mysql:MySQLRowStore",
    "oceanbase": "modelcache.storage.mysql:MySQLRowStore",
}

#: URL scheme -> class with `from_url(url, settings, dim)`.
VECTOR_INDEXES: dict[str, str] = {
    "faiss": "modelcache.storage.faiss_index:FaissIndex",
    "milvus": "modelcache.storage.milvus:MilvusIndex",
    "pgvector": "modelcache.storage.pgvector:PgvectorIndex",
    "redis": "modelcache.storage.redis_vector:RedisVectorIndex",
    "rediss": "modelcache.storage.redis_vector:RedisVectorIndex",
}


def open_row_store(settings: Settings) -> RowStore:
    url = settings.row_store_url()
    store: RowStore = resolve(ROW_STORES, url_scheme(url), "row store").from_url(url, settings)
    return store


def open_vector_index(settings: Settings, dim: int) -> VectorIndex:
    url = settings.vector_index_url()
    factory = resolve(VECTOR_INDEXES, url_scheme(url), "vector index")
    index: VectorIndex = factory.from_url(url, settings, dim)
    return index
