"""FAISS vector index: exact search for small tenants, an IVF index for large ones, in files.

Each tenant has its own index: exact while it is small, an inverted-file (IVF) index once it
holds more than `approx_above` entries. The layout (cell counts, reading and filling an index)
is in faiss_ivf.py; the switches between layouts, which train k-means in the background while
the current index keeps serving, are in faiss_rebuild.py. This module ties them together as a
`VectorIndex`: it finds each tenant's index, guards it, and keeps it in its file.

Each tenant's index is guarded by a readers-writer lock. Changes are saved by a background thread
every `index_save_interval_s` and on close, each file written atomically; the cache checks the
files against the rows at start-up and rebuilds any that are missing or disagree.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import faiss
import numpy as np

from modelcache.errors import ConfigurationError
from modelcache.settings import Settings
from modelcache.storage import faiss_ivf
from modelcache.storage.faiss_ivf import Index, cells_for, planned_cells
from modelcache.storage.faiss_rebuild import Rebuilder, TenantIndex
from modelcache.tenants import backend_name

__all__ = ["FaissIndex", "cells_for", "planned_cells"]

log = logging.getLogger(__name__)

#: Periodic saves of a tenant are this many times its last write's duration apart, at least.
_SAVE_SPACING = 10


class FaissIndex:
    name = "faiss"
    local = True

    def __init__(
        self,
        directory: Path,
        dim: int,
        *,
        threads: int = 1,
        save_interval_s: float = 5.0,
        approx_above: int = 50_000,
        nprobe: int = 16,
    ):
        self.directory = directory
        self.dim = dim
        self.threads = threads
        self.save_interval_s = save_interval_s
        self.approx_above = approx_above
        self.nprobe = nprobe
        self._tenants: dict[str, TenantIndex] = {}
        self._registry_lock = threading.Lock()
        self._stop = threading.Event()
        self._saver: threading.Thread | None = None
        self._rebuilds = Rebuilder(
            dim, approx_above, train=self._trained_ivf, limit_threads=self._limit_threads, stop=self._stop
        )

    @classmethod
    def from_url(cls, url: str, settings: Settings, dim: int) -> FaissIndex:
        path = url.split("://", 1)[1][1:] if "://" in url else ""
        if not path:
            raise ConfigurationError(f"faiss URL needs a directory: {url!r}")
        return cls(
            Path(path),
            dim,
            threads=settings.faiss_threads,
            save_interval_s=settings.index_save_interval_s,
            approx_above=settings.faiss_approx_above,
            nprobe=settings.faiss_nprobe,
        )

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._stop.clear()
        self._saver = threading.Thread(target=self._save_loop, name="faiss-saver", daemon=True)
        self._saver.start()

    def close(self) -> None:
        """Save and stop. A rebuild in progress is abandoned, not waited for (training a large
        tenant can take a minute): the saved index is the old one, and the rebuild starts again
        when the tenant is next loaded."""
        self._stop.set()
        if self._saver is not None:
            self._saver.join()
            self._saver = None
        self.save()

    def ping(self) -> None:
        """Always reachable: it lives in this process."""

    def wait_for_rebuilds(self) -> None:
        """Block until no rebuild is running (each may start a follow-up one as it finishes)."""
        self._rebuilds.wait()

    def _save_loop(self) -> None:
        while not self._stop.wait(self.save_interval_s):
            self.save(spaced=True)

    def save(self, *, spaced: bool = False) -> None:
        """Write every changed tenant index to its file.

        `spaced` (the periodic saves) skips a tenant whose last write ended less than
        `_SAVE_SPACING` times that write's duration ago: a 1M-entry index is a 2 GB file, and
        rewriting it every few seconds would keep the disk busy and its adds waiting on the lock.
        """
        with self._registry_lock:
            items = list(self._tenants.items())
        for tenant, state in items:
            with state.lock.read():
                if not state.dirty or (spaced and time.monotonic() < state.next_save):
                    continue
                started = time.monotonic()
                path = self._path(tenant)
                tmp = path.with_suffix(".tmp")
                faiss.write_index(state.index, str(tmp))
                os.replace(tmp, path)
                state.dirty = False
                finished = time.monotonic()
                state.next_save = finished + _SAVE_SPACING * (finished - started)

    # -- tenants ---------------------------------------------------------------------------

    def _path(self, tenant: str) -> Path:
        return self.directory / f"{backend_name(tenant)}.faiss"

    def _load(self, tenant: str) -> Index | None:
        path = self._path(tenant)
        if not path.exists():
            return None
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:
            log.warning("ignoring unreadable FAISS file %s: %s", path, exc)
            return None
        if (
            not isinstance(index, faiss.IndexIDMap2 | faiss.IndexIVFFlat)
            or index.d != self.dim
            or index.metric_type != faiss.METRIC_INNER_PRODUCT
        ):
            log.warning("ignoring FAISS file %s: not an inner-product index of dimension %d", path, self.dim)
            return None
        if isinstance(index, faiss.IndexIVFFlat):
            index.nprobe = self.nprobe
        return index

    def _get(self, tenant: str) -> TenantIndex | None:
        """The tenant's index, loaded from its file on first use; None if there is none."""
        with self._registry_lock:
            state = self._tenants.get(tenant)
            if state is None:
                index = self._load(tenant)
                if index is None:
                    return None
                state = self._tenants[tenant] = TenantIndex(index)
                # The file may predate a settings change or an abandoned rebuild.
                self._rebuilds.plan(tenant, state)
            return state

    def _get_or_create(self, tenant: str) -> TenantIndex:
        state = self._get(tenant)
        if state is not None:
            return state
        with self._registry_lock:
            state = self._tenants.get(tenant)
            if state is None:
                state = self._tenants[tenant] = TenantIndex(faiss_ivf.exact_index(self.dim), dirty=True)
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
                    state.dropped = True
            self._path(tenant).unlink(missing_ok=True)

    # -- hooks for rebuilds ----------------------------------------------------------------

    def _trained_ivf(self, vectors: np.ndarray, cells: int) -> tuple[faiss.IndexIVFFlat, faiss.IndexFlatIP]:
        """An empty IVF index trained on the vectors, searching `nprobe` cells (a method, so a
        subclass can watch or pause the training)."""
        return faiss_ivf.trained_ivf(vectors, cells, self.nprobe)

    def _limit_threads(self) -> None:
        """OpenMP's thread count is per calling thread: set it in each server worker thread.

        Left at its default (all cores), one search at 100k entries takes twice as long and
        fights the embedding model's BLAS threads for the cores.
        """
        faiss.omp_set_num_threads(self.threads)

    # -- vectors ---------------------------------------------------------------------------

    def add(self, tenant: str, ids: np.ndarray, vectors: np.ndarray) -> None:
        state = self._get_or_create(tenant)
        self._limit_threads()
        ids = np.array(ids, dtype=np.int64)
        vectors = np.array(vectors, dtype=np.float32, order="C")
        with state.lock.write():
            state.index.add_with_ids(vectors, ids)
            state.log_change(ids, vectors)
            state.dirty = True
            self._rebuilds.plan(tenant, state)

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
        ids = np.array(ids, dtype=np.int64)
        with state.lock.write():
            state.index.remove_ids(faiss.IDSelectorBatch(ids))
            state.log_change(ids, None)
            state.dirty = True
            self._rebuilds.plan(tenant, state)

    def count(self, tenant: str) -> int:
        state = self._get(tenant)
        if state is None:
            return 0
        with state.lock.read():
            return int(state.index.ntotal)

    def cells(self, tenant: str) -> int:
        """The IVF cell count of the tenant's index; 0 while its search is exact."""
        state = self._get(tenant)
        if state is None:
            return 0
        with state.lock.read():
            return faiss_ivf.cell_count(state.index)

    def ids(self, tenant: str) -> np.ndarray | None:
        state = self._get(tenant)
        if state is None:
            return np.zeros(0, np.int64)
        with state.lock.read():
            return np.sort(faiss_ivf.index_ids(state.index))
