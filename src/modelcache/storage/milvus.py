"""Milvus vector index: one collection per tenant, HNSW over cosine similarity.

URL: `milvus://[user:password@]host[:port][?consistency=Session|Strong|Bounded|Eventually][&timeout=s]`
(port 19530, consistency `Session` and a 5 s timeout per request by default).

Each tenant's collection, named by `tenants.backend_name`, has an INT64 primary key `id`
(assigned by the row store, never by Milvus) and a FLOAT_VECTOR `embedding`, indexed by
HNSW with the COSINE metric (IP on servers older than 2.3: the same on unit vectors). A
collection is created, checked and loaded once per process and then remembered; requests
only search, insert, delete or query. When the server says a remembered collection is gone
(another replica dropped it) or not loaded (the server restarted), it is looked up again and
the request retried once, so nothing needs restarting after the server comes back.

Consistency. We never flush: growing segments are searchable, and the server has logged an
insert before it answers. With `Session` pymilvus makes reads wait for this process's own
last insert, so a replica reads its own writes at once; other processes see them once the
query node has consumed them (0.2-0.3 s on a 2.3.5 standalone in our tests, at once on
Milvus Lite). Milvus 2.3 answers deletes without a timestamp, which turns pymilvus's session
guarantee into "eventually" until the next insert, so after a delete this process reads that
tenant with `Strong` (about 200 ms more per search) until it inserts again. `Strong`
everywhere makes every replica see every write at once, at that price on every read.

Failures. pymilvus and gRPC errors become `BackendUnavailable`: at once when nothing listens,
after the timeout when the server hangs. The connection redials by itself; our gRPC options
(channels with their own subchannels, reconnect backoff at most 1 s) make it do so as soon
as the server is back. add() inserts in batches of 2048 rows: if one fails, earlier batches
stay (the cache deletes vectors whose rows are gone when a search meets them).
"""

from __future__ import annotations

import importlib
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import numpy as np

from modelcache.errors import BackendUnavailable, ConfigurationError, MissingDependency
from modelcache.settings import Settings
from modelcache.storage.urls import OptionReader, credentials, port_or, positive_number, query_options
from modelcache.tenants import backend_name

__all__ = ["CONSISTENCY_LEVELS", "MilvusIndex", "MilvusOptions", "metric_for_version", "parse_milvus_url"]

CONSISTENCY_LEVELS = ("Session", "Strong", "Bounded", "Eventually")
DEFAULT_PORT = 19530
DEFAULT_TIMEOUT_S = 5.0
#: Creating (and loading) a new collection takes a few seconds on a standalone server; loading
#: an existing one is bounded by the request timeout.
MIN_DDL_TIMEOUT_S = 30.0

_ID = "id"
_VECTOR = "embedding"
_HNSW_BUILD = {"M": 16, "efConstruction": 200}
_MIN_EF = 64
_INSERT_BATCH = 2048
_DELETE_BATCH = 1024
_ITERATOR_BATCH = 4096
_COLLECTION_NOT_FOUND = 100
_COLLECTION_NOT_LOADED = 101
#: Channels of their own (a new one really dials) that redial a restarted server within a second.
_GRPC_OPTIONS = {
    "grpc.use_local_subchannel_pool": 1,
    "grpc.initial_reconnect_backoff_ms": 100,
    "grpc.min_reconnect_backoff_ms": 100,
    "grpc.max_reconnect_backoff_ms": 1000,
}
#: Score of an empty result slot: what FAISS returns there.
_PAD_SCORE = np.finfo(np.float32).min

T = TypeVar("T")
Prepared = Literal["missing", "ready", "created"]


@dataclass(frozen=True)
class MilvusOptions:
    """Where the server is and how to talk to it."""

    host: str
    port: int = DEFAULT_PORT
    user: str = ""
    password: str = ""
    consistency: str = "Session"
    timeout: float = DEFAULT_TIMEOUT_S

    @property
    def uri(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def parse_milvus_url(url: str) -> MilvusOptions:
    """Read a `milvus://` URL; raise ConfigurationError for anything it cannot mean."""
    parts = urlsplit(url)
    if parts.scheme != "milvus" or not parts.hostname:
        raise ConfigurationError(f"milvus URL must look like milvus://host:port, not {url!r}")
    if parts.path not in ("", "/"):
        raise ConfigurationError(f"milvus URL takes no path: {url!r}")
    user, password = credentials(parts)
    return MilvusOptions(
        host=parts.hostname,
        port=port_or(parts, DEFAULT_PORT, "milvus"),
        user=user,
        password=password,
        **query_options(parts.query, "milvus", _URL_OPTIONS, unique=True),
    )


def _consistency(value: str) -> str:
    for level in CONSISTENCY_LEVELS:
        if value.lower() == level.lower():
            return level
    raise ValueError(f"must be one of {CONSISTENCY_LEVELS}, not {value!r}")


_URL_OPTIONS: dict[str, OptionReader] = {"consistency": _consistency, "timeout": positive_number}


def metric_for_version(version: str) -> str:
    """COSINE on servers that have it (Milvus 2.3 and later), else IP (the same on unit vectors)."""
    found = re.search(r"(\d+)\.(\d+)", version)
    if found is None:
        return "COSINE"
    return "COSINE" if (int(found.group(1)), int(found.group(2))) >= (2, 3) else "IP"


def _id_filter(ids: np.ndarray) -> str:
    """`id in [...]` built from integers only."""
    return f"{_ID} in [{', '.join(str(int(i)) for i in ids.tolist())}]"


class MilvusIndex:
    name = "milvus"
    local = False

    def __init__(self, options: MilvusOptions, dim: int):
        self.options = options
        self.dim = dim
        self._pymilvus: Any = None
        self._errors: tuple[type[BaseException], ...] = ()
        self._client_handle: Any = None
        self._metric = "COSINE"
        self._lock = threading.Lock()  # guards the handle and the two sets below
        self._ddl_lock = threading.Lock()  # one create / load / drop at a time
        self._ready: set[str] = set()  # collections known to exist and be loaded
        self._strong_reads: set[str] = set()  # deleted from since this process last inserted

    @classmethod
    def from_url(cls, url: str, settings: Settings, dim: int) -> MilvusIndex:
        return cls(parse_milvus_url(url), dim)

    @property
    def _ddl_timeout(self) -> float:
        return max(self.options.timeout, MIN_DDL_TIMEOUT_S)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        try:
            import pymilvus

            grpc = importlib.import_module("grpc")  # pymilvus's own dependency; it ships no stubs
        except ImportError as exc:
            raise MissingDependency("pymilvus", "milvus") from exc
        self._pymilvus = pymilvus
        self._errors = (pymilvus.MilvusException, grpc.RpcError, grpc.FutureTimeoutError)
        self._client()

    def close(self) -> None:
        with self._lock:
            client, self._client_handle = self._client_handle, None
            self._ready.clear()
            self._strong_reads.clear()
        if client is not None:
            self._guarded(client.close)

    def ping(self) -> None:
        self._guarded(lambda: self._client().get_server_version(timeout=self.options.timeout))

    def _client(self) -> Any:
        """The connected client, connecting first if there is none yet."""
        with self._lock:
            if self._client_handle is not None:
                return self._client_handle
        if self._pymilvus is None:
            raise ConfigurationError("MilvusIndex.start() must be called before use")
        client = self._guarded(self._connect)
        with self._lock:
            if self._client_handle is None:
                self._client_handle = client
                return client
            existing = self._client_handle
        self._guarded(client.close)
        return existing

    def _connect(self) -> Any:
        client = self._pymilvus.MilvusClient(
            uri=self.options.uri,
            user=self.options.user,
            password=self.options.password,
            timeout=self.options.timeout,
            dedicated=True,
            grpc_options=dict(_GRPC_OPTIONS),
        )
        self._metric = metric_for_version(str(client.get_server_version(timeout=self.options.timeout)))
        return client

    def _guarded(self, action: Callable[[], T]) -> T:
        try:
            return action()
        except self._errors as exc:
            raise self._unavailable(exc) from exc

    def _unavailable(self, exc: BaseException) -> BackendUnavailable:
        return BackendUnavailable("milvus", f"{self.options.host}:{self.options.port}: {exc}")

    # -- collections -----------------------------------------------------------------------

    def ensure_tenant(self, tenant: str) -> bool:
        return self._prepare(backend_name(tenant), create=True) == "created"

    def drop_tenant(self, tenant: str) -> None:
        name = backend_name(tenant)
        with self._ddl_lock:
            self._forget(name)
            with self._lock:
                self._strong_reads.discard(name)
            self._guarded(lambda: self._client().drop_collection(name, timeout=self._ddl_timeout))

    def _forget(self, name: str) -> None:
        with self._lock:
            self._ready.discard(name)

    def _is_ready(self, name: str) -> bool:
        with self._lock:
            return name in self._ready

    def _prepare(self, name: str, *, create: bool) -> Prepared:
        """Make sure the collection exists (if `create`) and is loaded; remember it."""
        if self._is_ready(name):
            return "ready"
        with self._ddl_lock:
            if self._is_ready(name):
                return "ready"
            client = self._client()
            state = self._guarded(partial(self._open_or_create, client, name, create))
            if state != "missing":
                with self._lock:
                    self._ready.add(name)
            return state

    def _open_or_create(self, client: Any, name: str, create: bool) -> Prepared:
        if not client.has_collection(name, timeout=self.options.timeout):
            if not create:
                return "missing"
            try:
                self._create(client, name)
                return "created"
            except self._errors:
                if not client.has_collection(name, timeout=self.options.timeout):
                    raise  # not a concurrent creation by another replica
        self._check_dimension(client, name)
        if not client.list_indexes(name, field_name=_VECTOR, timeout=self.options.timeout):
            client.create_index(name, self._index_params(client), timeout=self._ddl_timeout)  # half-made
        client.load_collection(name, timeout=self.options.timeout)  # waits while it (re)loads
        return "ready"

    def _create(self, client: Any, name: str) -> None:
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field(_ID, self._pymilvus.DataType.INT64, is_primary=True)
        schema.add_field(_VECTOR, self._pymilvus.DataType.FLOAT_VECTOR, dim=self.dim)
        client.create_collection(
            name,
            schema=schema,
            index_params=self._index_params(client),
            consistency_level=self.options.consistency,
            timeout=self._ddl_timeout,
        )

    def _index_params(self, client: Any) -> Any:
        params = client.prepare_index_params()
        params.add_index(_VECTOR, index_type="HNSW", metric_type=self._metric, params=_HNSW_BUILD)
        return params

    def _check_dimension(self, client: Any, name: str) -> None:
        fields = client.describe_collection(name, timeout=self.options.timeout)["fields"]
        dims = [int(f.get("params", {}).get("dim", 0)) for f in fields if f["name"] == _VECTOR]
        if dims != [self.dim]:
            raise ConfigurationError(
                f"Milvus collection {name!r} does not hold {self.dim}-dimensional {_VECTOR!r} vectors"
            )

    def _on_collection(self, tenant: str, action: Callable[[Any, str], T], *, create: bool) -> T | None:
        """`action(client, collection)` on the tenant's loaded collection; None if it does not exist.

        A remembered collection that is gone or no longer loaded is looked up again, once.
        """
        name = backend_name(tenant)
        for attempt in (1, 2):
            if self._prepare(name, create=create) == "missing":
                return None
            try:
                return action(self._client(), name)
            except self._errors as exc:
                code = getattr(exc, "code", None)
                if attempt == 2 or code not in (_COLLECTION_NOT_FOUND, _COLLECTION_NOT_LOADED):
                    raise self._unavailable(exc) from exc
                self._forget(name)
        return None  # not reached: the second attempt returns or raises

    def _read_level(self, name: str) -> str:
        with self._lock:
            return "Strong" if name in self._strong_reads else self.options.consistency

    # -- vectors ---------------------------------------------------------------------------

    def add(self, tenant: str, ids: np.ndarray, vectors: np.ndarray) -> None:
        keys = np.asarray(ids, dtype=np.int64).reshape(-1)
        data = np.ascontiguousarray(vectors, dtype=np.float32)
        self._check_vectors(data, len(keys))
        self.ensure_tenant(tenant)
        for start in range(0, len(keys), _INSERT_BATCH):
            stop = start + _INSERT_BATCH
            rows = [
                {_ID: key, _VECTOR: vector}
                for key, vector in zip(keys[start:stop].tolist(), data[start:stop], strict=True)
            ]
            self._on_collection(tenant, partial(self._insert, rows), create=True)
        with self._lock:
            self._strong_reads.discard(backend_name(tenant))

    def _insert(self, rows: list[dict[str, Any]], client: Any, name: str) -> None:
        client.insert(name, rows, timeout=self.options.timeout)

    def _check_vectors(self, data: np.ndarray, count: int) -> None:
        if data.ndim != 2 or data.shape[1] != self.dim or len(data) != count:
            raise ConfigurationError(
                f"expected {count} vectors of dimension {self.dim}, got an array of shape {data.shape}"
            )

    def search(self, tenant: str, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(vectors, dtype=np.float32)
        self._check_vectors(queries, len(queries))
        results = None
        if len(queries):
            results = self._on_collection(tenant, partial(self._search, queries, k), create=False)
        if results is None:
            return np.full((len(queries), k), -1, np.int64), np.zeros((len(queries), k), np.float32)
        return _result_arrays(results, len(queries), k)

    def _search(self, queries: np.ndarray, k: int, client: Any, name: str) -> Any:
        return client.search(
            name,
            data=queries,
            limit=k,
            anns_field=_VECTOR,
            search_params={"params": {"ef": max(k, _MIN_EF)}},
            timeout=self.options.timeout,
            consistency_level=self._read_level(name),
        )

    def delete(self, tenant: str, ids: np.ndarray) -> None:
        keys = np.unique(np.asarray(ids, dtype=np.int64))
        if not len(keys):
            return
        if self.options.consistency == "Session":  # before: reads must not go stale meanwhile
            with self._lock:
                self._strong_reads.add(backend_name(tenant))
        for start in range(0, len(keys), _DELETE_BATCH):
            expression = _id_filter(keys[start : start + _DELETE_BATCH])
            self._on_collection(tenant, partial(self._delete, expression), create=False)

    def _delete(self, expression: str, client: Any, name: str) -> None:
        client.delete(name, filter=expression, timeout=self.options.timeout)

    def count(self, tenant: str) -> int:
        rows = self._on_collection(tenant, self._count, create=False)
        return 0 if rows is None else int(rows[0]["count(*)"])

    def _count(self, client: Any, name: str) -> Any:
        return client.query(
            name,
            filter="",
            output_fields=["count(*)"],
            timeout=self.options.timeout,
            consistency_level=self._read_level(name),
        )

    def ids(self, tenant: str) -> np.ndarray | None:
        found = self._on_collection(tenant, self._all_ids, create=False)
        return np.zeros(0, np.int64) if found is None else found

    def _all_ids(self, client: Any, name: str) -> np.ndarray:
        iterator = client.query_iterator(
            name,
            batch_size=_ITERATOR_BATCH,
            filter="",
            output_fields=[_ID],
            timeout=self.options.timeout,
            consistency_level=self._read_level(name),
        )
        found: list[int] = []
        try:
            while batch := iterator.next():
                found.extend(row[_ID] for row in batch)
        finally:
            iterator.close()
        return np.sort(np.asarray(found, dtype=np.int64))


def _result_arrays(results: Any, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """pymilvus hits -> (ids, scores) of shape (n, k), empty slots -1 as FAISS pads them."""
    ids = np.full((n, k), -1, np.int64)
    scores = np.full((n, k), _PAD_SCORE, np.float32)
    for row, hits in enumerate(results):
        for column, hit in enumerate(list(hits)[:k]):
            ids[row, column] = hit["id"]
            scores[row, column] = hit["distance"]
    return ids, scores
