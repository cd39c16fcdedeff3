"""Redis vector index: one RediSearch index per tenant over HASH keys `<backend name>:<id>`.

The index is named `tenants.backend_name(tenant)` and covers the key prefix
`<backend name>:`. Backend names contain no ':', so no tenant's prefix is a prefix of
another's (`gpt` never sees `gpt1`, nor `gpt_<its hash>`). Each key holds one field, the
FLOAT32 vector; the entry id is the rest of the key. Searches are KNN queries (DIALECT 2)
with the vector and k passed as parameters; scores are 1 - cosine distance.

Needs a Redis with the search module (Redis 8, Redis Stack), standalone, not a cluster.
URL: `redis://[[user]:password@]host[:port][/db][?algorithm=HNSW|FLAT&timeout=S&ef_runtime=N]`
(`rediss://` for TLS). HNSW indexes are created with EF_RUNTIME 64 rather than RediSearch's 10,
which misses a fifth of near duplicates (cosine 0.85) among 10k random 512-d vectors.
Known indexes are cached per process; a write that finds its index gone (server restarted
empty, another replica dropped it) re-creates it and writes again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from modelcache.errors import BackendUnavailable, ConfigurationError, MissingDependency, ModelCacheError
from modelcache.settings import Settings
from modelcache.storage.urls import OptionReader, query_options
from modelcache.tenants import backend_name

if TYPE_CHECKING:
    from redis import Redis
    from redis.client import Pipeline

__all__ = ["ALGORITHMS", "DEFAULT_EF_RUNTIME", "DEFAULT_TIMEOUT_S", "RedisVectorIndex"]

log = logging.getLogger(__name__)

ALGORITHMS = ("HNSW", "FLAT")
DEFAULT_TIMEOUT_S = 5.0
DEFAULT_EF_RUNTIME = 64
_SCHEMES = ("redis", "rediss")
_URL_OPTIONS: dict[str, OptionReader] = {"algorithm": str, "timeout": float, "ef_runtime": int}
_VECTOR_FIELD = "embedding"
_DISTANCE = "distance"
_MISSING_INDEX = ("no such index", "unknown index name")
_DELETE_BATCH = 1000
#: Vectors per write transaction: small enough to finish well within the socket timeout
#: (HNSW insertion costs the server ~0.6 ms per 512-d vector), so an insert of up to this
#: many vectors is all or nothing.
_WRITE_BATCH = 512
_SCAN_COUNT = 1000
#: Score of an empty slot in a result that has some hits (what FAISS gives).
_EMPTY_SCORE = np.finfo(np.float32).min


def _call(target: Redis | Pipeline, *args: str | bytes) -> Any:
    """`execute_command`, which redis-py leaves untyped."""
    return target.execute_command(*args)  # type: ignore[no-untyped-call]


def _prefix(index: str) -> str:
    return f"{index}:"


def _is_missing_index(exc: Exception) -> bool:
    message = str(exc).lower()
    return any(text in message for text in _MISSING_INDEX)


def _parse_url(url: str) -> tuple[str, dict[str, Any]]:
    """Split our options off a redis URL: (connection URL, constructor keywords)."""
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES or not parts.hostname:
        raise ConfigurationError("redis vector index URL must look like redis://host:port[/db]")
    options = query_options(parts.query, "redis", _URL_OPTIONS)
    if "timeout" in options:
        options["timeout_s"] = options.pop("timeout")
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")), options


def _pairs(flat: list[Any]) -> dict[Any, Any]:
    """A RESP2 flat [key, value, key, value, ...] reply as a dict."""
    return dict(zip(flat[::2], flat[1::2], strict=False))


def _vector_dim(info: list[Any]) -> int | None:
    """The dimension of the VECTOR attribute in an FT.INFO reply, if it can be found."""
    for attribute in _pairs(info).get(b"attributes", []):
        fields = _pairs(attribute)
        if fields.get(b"type") == b"VECTOR" and b"dim" in fields:
            return int(fields[b"dim"])
    return None


class RedisVectorIndex:
    """Vector -> id search in Redis, shared by every replica that points at the server."""

    name = "redis"
    local = False

    def __init__(
        self,
        url: str,
        dim: int,
        *,
        algorithm: str = "HNSW",
        timeout_s: float = DEFAULT_TIMEOUT_S,
        ef_runtime: int = DEFAULT_EF_RUNTIME,
    ):
        if algorithm.upper() not in ALGORITHMS:
            raise ConfigurationError(f"redis algorithm must be one of {ALGORITHMS}, not {algorithm!r}")
        if not timeout_s > 0:
            raise ConfigurationError(f"redis timeout must be positive, not {timeout_s!r}")
        if ef_runtime < 1:
            raise ConfigurationError(f"redis ef_runtime must be positive, not {ef_runtime!r}")
        self.url = url
        self.dim = dim
        self.algorithm = algorithm.upper()
        self.timeout_s = timeout_s
        self.ef_runtime = ef_runtime
        self._client: Redis | None = None
        #: Index names known to exist (set operations are atomic under the GIL).
        self._known: set[str] = set()

    @classmethod
    def from_url(cls, url: str, settings: Settings, dim: int) -> RedisVectorIndex:
        connection_url, options = _parse_url(url)
        return cls(connection_url, dim, **options)

    @property
    def address(self) -> str:
        """host:port/db for messages; never the password."""
        parts = urlsplit(self.url)
        return f"{parts.hostname}:{parts.port or 6379}{parts.path}"

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        try:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry
        except ImportError as exc:
            raise MissingDependency("redis", "redis") from exc
        # One immediate retry on a connection error (reset or refused: instant) covers a
        # connection dropped mid-command; timeouts are not retried, so a hung or unreachable
        # server fails within timeout_s. redis-py replaces stale pooled connections itself.
        self._client = redis.Redis.from_url(
            self.url,
            protocol=2,
            socket_timeout=self.timeout_s,
            socket_connect_timeout=self.timeout_s,
            retry=Retry(NoBackoff(), 1, supported_errors=(redis.exceptions.ConnectionError,)),
        )
        self._known.clear()
        self._check_search_module()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        self._known.clear()

    def ping(self) -> None:
        with self._errors():
            self._redis().ping()

    def _check_search_module(self) -> None:
        from redis.exceptions import ResponseError

        with self._errors():
            try:
                _call(self._redis(), "FT._LIST")
            except ResponseError as exc:
                raise ConfigurationError(
                    f"the Redis server at {self.address} has no vector search (use Redis 8 or"
                    f" Redis Stack): {exc}"
                ) from exc

    def _redis(self) -> Redis:
        if self._client is None:
            raise ModelCacheError("the redis vector index is used before start()")
        return self._client

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Turn redis-py errors into ModelCache errors."""
        from redis import exceptions

        try:
            yield
        except (exceptions.AuthenticationError, exceptions.AuthorizationError) as exc:
            raise ConfigurationError(f"redis at {self.address} refused the credentials: {exc}") from exc
        except (exceptions.ConnectionError, exceptions.TimeoutError) as exc:
            raise BackendUnavailable("redis", f"{self.address}: {exc}") from exc
        except exceptions.RedisError as exc:
            raise ModelCacheError(f"redis at {self.address} failed: {exc}") from exc

    # -- tenants ---------------------------------------------------------------------------

    def ensure_tenant(self, tenant: str) -> bool:
        with self._errors():
            return self._ensure(backend_name(tenant))

    def _ensure(self, index: str) -> bool:
        """Create the index unless this process knows it exists; True if it was created."""
        if index in self._known:
            return False
        created = self._create(index)
        self._known.add(index)
        return created

    def _create(self, index: str) -> bool:
        from redis.exceptions import ResponseError

        try:
            _call(
                self._redis(),
                "FT.CREATE", index, "ON", "HASH", "PREFIX", "1", _prefix(index), "SKIPINITIALSCAN",
                "SCHEMA", _VECTOR_FIELD, "VECTOR", self.algorithm, *self._vector_params(),
            )  # fmt: skip
        except ResponseError as exc:
            if "already exists" not in str(exc).lower():
                raise
            self._check_dim(index)
            return False
        log.info("created redis index %s (%s, dim %d)", index, self.algorithm, self.dim)
        return True

    def _vector_params(self) -> list[str]:
        params = ["TYPE", "FLOAT32", "DIM", str(self.dim), "DISTANCE_METRIC", "COSINE"]
        if self.algorithm == "HNSW":
            params += ["EF_RUNTIME", str(self.ef_runtime)]
        return [str(len(params)), *params]

    def _check_dim(self, index: str) -> None:
        dim = _vector_dim(_call(self._redis(), "FT.INFO", index))
        if dim is not None and dim != self.dim:
            raise ConfigurationError(
                f"redis index {index} holds vectors of dimension {dim}, the embedder makes {self.dim}"
            )

    def drop_tenant(self, tenant: str) -> None:
        from redis.exceptions import ResponseError

        index = backend_name(tenant)
        self._known.discard(index)
        with self._errors():
            try:
                _call(self._redis(), "FT.DROPINDEX", index, "DD")
            except ResponseError as exc:
                if not _is_missing_index(exc):
                    raise

    # -- vectors ---------------------------------------------------------------------------

    def _as_matrix(self, vectors: np.ndarray) -> np.ndarray:
        matrix = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[1] != self.dim:
            raise ConfigurationError(f"vectors of shape {matrix.shape} do not fit dimension {self.dim}")
        return matrix

    def add(self, tenant: str, ids: np.ndarray, vectors: np.ndarray) -> None:
        keys = np.asarray(ids, dtype=np.int64)
        matrix = self._as_matrix(vectors)
        if len(keys) != len(matrix):
            raise ConfigurationError(f"{len(keys)} ids for {len(matrix)} vectors")
        if not len(keys):
            return
        index = backend_name(tenant)
        with self._errors():
            self._ensure(index)
            if self._write(index, keys, matrix):
                return
            log.warning("redis index %s was gone; re-creating it", index)
            self._known.discard(index)
            self._ensure(index)
            if not self._write(index, keys, matrix):
                log.warning("redis index %s was dropped again while writing to it", index)

    def _write(self, index: str, ids: np.ndarray, vectors: np.ndarray) -> bool:
        """HSET the vectors; False if the index was missing (those keys are not indexed)."""
        for start in range(0, len(ids), _WRITE_BATCH):
            end = start + _WRITE_BATCH
            if not self._write_batch(index, ids[start:end], vectors[start:end]):
                return False
        return True

    def _write_batch(self, index: str, ids: np.ndarray, vectors: np.ndarray) -> bool:
        """One transaction: check the index exists, then HSET each vector."""
        from redis.exceptions import ResponseError

        prefix = _prefix(index)
        pipe = self._redis().pipeline(transaction=True)
        _call(pipe, "FT.EXPLAIN", index, "*")
        for entry_id, vector in zip(ids.tolist(), vectors, strict=True):
            pipe.hset(f"{prefix}{entry_id}", _VECTOR_FIELD, vector.tobytes())
        for reply in pipe.execute(raise_on_error=False):
            if isinstance(reply, ResponseError):
                if _is_missing_index(reply):
                    return False
                raise reply
        return True

    def search(self, tenant: str, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = self._as_matrix(vectors)
        if not len(queries):
            return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)
        index = backend_name(tenant)
        with self._errors():
            replies = self._knn(index, queries, k)
            if any(_is_missing_index(reply) for reply in replies if isinstance(reply, Exception)):
                self._known.discard(index)
                return np.full((len(queries), k), -1, np.int64), np.zeros((len(queries), k), np.float32)
            return self._parse_knn(replies, _prefix(index).encode(), k)

    def _knn(self, index: str, queries: np.ndarray, k: int) -> list[Any]:
        """One KNN FT.SEARCH per query row, in one round trip; errors are returned, not raised."""
        pipe = self._redis().pipeline(transaction=False)
        for query in queries:
            _call(
                pipe, "FT.SEARCH", index, f"*=>[KNN $k @{_VECTOR_FIELD} $vector AS {_DISTANCE}]",
                "PARAMS", "4", "k", str(k), "vector", query.tobytes(),
                "SORTBY", _DISTANCE, "ASC", "RETURN", "1", _DISTANCE, "LIMIT", "0", str(k),
                "DIALECT", "2",
            )  # fmt: skip
        replies: list[Any] = pipe.execute(raise_on_error=False)
        return replies

    @staticmethod
    def _parse_knn(replies: list[Any], prefix: bytes, k: int) -> tuple[np.ndarray, np.ndarray]:
        ids = np.full((len(replies), k), -1, np.int64)
        scores = np.full((len(replies), k), _EMPTY_SCORE, np.float32)
        for row, reply in enumerate(replies):
            if isinstance(reply, Exception):
                raise reply
            slot = 0
            for key, fields in zip(reply[1::2], reply[2::2], strict=True):
                suffix = key[len(prefix) :]
                if slot >= k or not key.startswith(prefix) or not suffix.isdigit():
                    continue
                ids[row, slot] = int(suffix)
                scores[row, slot] = 1.0 - float(_pairs(fields)[_DISTANCE.encode()])
                slot += 1
        return ids, scores

    def delete(self, tenant: str, ids: np.ndarray) -> None:
        prefix = _prefix(backend_name(tenant))
        keys = [f"{prefix}{entry_id}" for entry_id in np.asarray(ids, dtype=np.int64).tolist()]
        if not keys:
            return
        with self._errors():
            pipe = self._redis().pipeline(transaction=False)
            for start in range(0, len(keys), _DELETE_BATCH):
                pipe.delete(*keys[start : start + _DELETE_BATCH])
            pipe.execute()

    def count(self, tenant: str) -> int:
        from redis.exceptions import ResponseError

        with self._errors():
            try:
                info = _call(self._redis(), "FT.INFO", backend_name(tenant))
            except ResponseError as exc:
                if _is_missing_index(exc):
                    return 0
                raise
            return int(_pairs(info)[b"num_docs"])

    def ids(self, tenant: str) -> np.ndarray | None:
        """Ids of the tenant's keys, by SCAN: linear in the size of the whole database."""
        prefix = _prefix(backend_name(tenant)).encode()
        found: set[int] = set()
        with self._errors():
            for key in self._redis().scan_iter(match=prefix + b"*", count=_SCAN_COUNT, _type="HASH"):
                suffix = key[len(prefix) :]
                if suffix.isdigit():
                    found.add(int(suffix))
        return np.array(sorted(found), dtype=np.int64)
