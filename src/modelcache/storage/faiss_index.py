"""FAISS vector index: one exact inner-product index per tenant, persisted to files.

Vectors are unit length, so inner product is cosine similarity. Each tenant's index is
guarded by a readers-writer lock. Changes are saved by a background thread every
`index_save_interval_s` and on close, each file written atomically; the cache checks the
files against the rows at start-up and rebuilds any that are missing or disagree.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np

from modelcache.errors import ConfigurationError
from modelcache.locks import ReadWriteLock
from modelcache.settings import Settings
from modelcache.tenants import backend_name

__all__ = ["FaissIndex"]

log = logging.getLogger(__name__)


@dataclass
class _TenantIndex:
    index: faiss.IndexIDMap2
    lock: ReadWriteLock = field(default_factory=ReadWriteLock)
    dirty: bool = False


class FaissIndex:
    name = "faiss"
    local = True

    def __init__(self, directory: Path, dim: int, *, threads: int = 1, save_interval_s: float = 5.0):
        self.directory = directory
        self.dim = dim
        self.threads = threads
        self.save_interval_s = save_interval_s
        self._tenants: dict[str, _TenantIndex] = {}
        self._registry_lock = threading.Lock()
        self._stop = threading.Event()
        self._saver: threading.Thread | None = None

    @classmethod
    def from_url(cls, url: str, settings: Settings, dim: int) -> FaissIndex:
        path = url.split("://", 1)[1][1:] if "://" in url else ""
        if not path:
            raise ConfigurationError(f"faiss URL needs a directory: {url!r}")
        return cls(
            Path(path), dim, threads=settings.faiss_threads, save_interval_s=settings.index_save_interval_s
        )

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._stop.clear()
        self._saver = threading.Thread(target=self._save_loop, name="faiss-saver", daemon=True)
        self._saver.start()

    def close(self) -> None:
        self._stop.set()
        if self._saver is not None:
            self._saver.join()
            self._saver = None
        self.save()

    def ping(self) -> None:
        """Always reachable: it lives in this process."""

    def _save_loop(self) -> None:
        while not self._stop.wait(self.save_interval_s):
            self.save()

    def save(self) -> None:
        """Write every changed tenant index to its file."""
        with self._registry_lock:
            items = list(self._tenants.items())
        for tenant, state in items:
            with state.lock.read():
                if not state.dirty:
                    continue
                path = self._path(tenant)
                tmp = path.with_suffix(".tmp")
                faiss.write_index(state.index, str(tmp))
                os.replace(tmp, path)
                state.dirty = False

    # -- tenants ---------------------------------------------------------------------------

    def _path(self, tenant: str) -> Path:
        return self.directory / f"{backend_name(tenant)}.faiss"

    def _new_index(self) -> faiss.IndexIDMap2:
        return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))

    def _load(self, tenant: str) -> faiss.IndexIDMap2 | None:
        path = self._path(tenant)
        if not path.exists():
            return None
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:
            log.warning("ignoring unreadable FAISS file %s: %s", path, exc)
            return None
        if not isinstance(index, faiss.IndexIDMap2) or index.d != self.dim:
            log.warning("ignoring FAISS file %s: not an id-mapped index of dimension %d", path, self.dim)
            return None
        return index

    def _get(self, tenant: str) -> _TenantIndex | None:
        """The tenant's index, loaded from its file on first use; None if there is none."""
        with self._registry_lock:
            state = self._tenants.get(tenant)
            if state is None:
                index = self._load(tenant)
                if index is None:
                    return None
                state = self._tenants[tenant] = _TenantIndex(index)
            return state

    def _get_or_create(self, tenant: str) -> _TenantIndex:
        state = self._get(tenant)
        if state is not None:
            return state
        with self._registry_lock:
            state = self._tenants.get(tenant)
            if state is None:
                state = self._tenants[tenant] = _TenantIndex(self._new_index(), dirty=True)
            return state

    def ensure_tenant(self, tenant: str) -> bool:
        created = self._get(tenant) is None
        self._get_or_create(tenant)
        return created

    def drop_tenant(self, tenant: str) -> None:
        with self._registry_lock:
            state = self._tenants.pop(tenant, None)
            if state is not None:
                with state.lock.write():
                    state.dirty = False
            self._path(tenant).unlink(missing_ok=True)

    # -- vectors ---------------------------------------------------------------------------

    def _limit_threads(self) -> None:
        """OpenMP's thread count is per calling thread: set it in each server worker thread.

        Left at its default (all cores), one search at 100k entries takes twice as long and
        fights the embedding model's BLAS threads for the cores.
        """
        faiss.omp_set_num_threads(self.threads)

    def add(self, tenant: str, ids: np.ndarray, vectors: np.ndarray) -> None:
        state = self._get_or_create(tenant)
        self._limit_threads()
        with state.lock.write():
            state.index.add_with_ids(
                np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64)
            )
            state.dirty = True

    def search(self, tenant: str, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(vectors, dtype=np.float32)
        state = self._get(tenant)
        if state is None:
            return np.full((len(queries), k), -1, np.int64), np.zeros((len(queries), k), np.float32)
        self._limit_threads()
        with state.lock.read():
            scores, ids = state.index.search(queries, k)
        return ids, scores

    def delete(self, tenant: str, ids: np.ndarray) -> None:
        state = self._get(tenant)
        if state is None or not len(ids):
            return
        with state.lock.write():
            state.index.remove_ids(faiss.IDSelectorBatch(np.asarray(ids, dtype=np.int64)))
            state.dirty = True

    def count(self, tenant: str) -> int:
        state = self._get(tenant)
        if state is None:
            return 0
        with state.lock.read():
            return int(state.index.ntotal)

    def ids(self, tenant: str) -> np.ndarray | None:
        state = self._get(tenant)
        if state is None:
            return np.zeros(0, np.int64)
        with state.lock.read():
            return np.sort(faiss.vector_to_array(state.index.id_map).astype(np.int64))
