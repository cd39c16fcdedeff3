"""FAISS vector index: exact search for small tenants, an IVF index for large ones, in files.

Vectors are unit length, so inner product is cosine similarity. A tenant starts with an exact
flat index (IndexIDMap2 over IndexFlatIP): adding is instant and a search of 10k entries takes
under a millisecond, but the cost grows with the size (about 6 ms at 50k entries and 15 ms at
100k, 512-d, one thread). Once a tenant holds more than `approx_above` entries it moves to an
inverted-file index (IndexIVFFlat): k-means splits the vectors into cells and a search scans only
the `nprobe` cells nearest the query. Vectors stay float32, so the scores are the exact cosines
the thresholds were calibrated on; only which entries get scored is approximate. The IVF keeps
the ids in its cells, so deletes remove entries for good, and it is written to its file as is,
so a restart loads it without retraining.

The cell count follows the size (see `cells_for`), and the index is retrained when the tenant
has grown enough for that count to double. An IVF tenant that shrinks to half the threshold goes
back to exact search. Rebuilding (training included) runs in a background thread on a copy of the
vectors while the current index keeps serving; the changes made meanwhile are logged and
replayed on the new index, which replaces the old one under a short write lock.

Each tenant's index is guarded by a readers-writer lock. Changes are saved by a background thread
every `index_save_interval_s` and on close, each file written atomically; the cache checks the
files against the rows at start-up and rebuilds any that are missing or disagree.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import faiss
import numpy as np

from modelcache.errors import ConfigurationError
from modelcache.locks import ReadWriteLock
from modelcache.settings import Settings
from modelcache.tenants import backend_name

__all__ = ["FaissIndex", "cells_for", "planned_cells"]

log = logging.getLogger(__name__)

#: k-means trains on at most this many vectors per cell. faiss defaults to 256; 64 trains four
#: times faster (about a minute for 4,096 cells, one thread); the recall figures in
#: benchmarks/storage.py are measured with it.
_TRAIN_POINTS_PER_CELL = 64
#: Fewer points per cell than this make k-means warn and give poor cells (faiss's own minimum).
_MIN_POINTS_PER_CELL = 39
#: Vectors added to a new index per step, between checks that it is still wanted.
_BUILD_BATCH = 50_000
#: A rebuild replays at most this many logged vectors while holding the write lock; larger
#: backlogs are replayed outside it first, so searches never wait long for the swap.
_REPLAY_UNDER_LOCK = 5_000

#: A tenant's index: exact (IndexIDMap2 over IndexFlatIP) or approximate (IndexIVFFlat).
_Index = faiss.IndexIDMap2 | faiss.IndexIVFFlat

#: Periodic saves of a tenant are this many times its last write's duration apart, at least.
_SAVE_SPACING = 10

#: Changes logged while a rebuild runs: (ids, vectors) for an add, (ids, None) for a delete.
_Change = tuple[np.ndarray, np.ndarray | None]


def cells_for(n: int) -> int:
    """IVF cell count for n vectors: the power of two nearest 4 * sqrt(n) (1,024 at 50k, 4,096 at
    1M), capped so every cell gets enough training points.

    More cells mean fewer vectors scanned per cell but a costlier pass over the cell centroids;
    at 1M, 512-d, 4,096 cells gave the best recall for the time (2,048 was 1.5x slower at equal
    recall).
    """
    wanted = round(math.log2(4 * math.sqrt(max(n, 1))))
    trainable = int(math.log2(max(n // _MIN_POINTS_PER_CELL, 1)))
    return 1 << max(min(wanted, trainable), 0)


def planned_cells(n: int, cells: int, approx_above: int) -> int | None:
    """What an index of n vectors with `cells` IVF cells (0: exact) should be rebuilt as: a cell
    count, 0 for exact, or None to keep it.

    Exact becomes IVF above `approx_above`; IVF is retrained once the size asks for twice its
    cells (about 4x the size it was trained at), and goes back to exact only at half the
    threshold, so a tenant hovering around the threshold is not rebuilt over and over.
    """
    if not cells:
        return cells_for(n) if n > approx_above else None
    if n <= approx_above // 2:
        return 0
    wanted = cells_for(n)
    return wanted if wanted >= 2 * cells else None


def _cells(index: _Index) -> int:
    return int(index.nlist) if isinstance(index, faiss.IndexIVFFlat) else 0


def _ids(index: _Index) -> np.ndarray:
    """A copy of the ids in the index."""
    if isinstance(index, faiss.IndexIVFFlat):
        return _ivf_contents(index, vectors=False)[0]
    return faiss.vector_to_array(index.id_map).astype(np.int64)


def _contents(index: _Index) -> tuple[np.ndarray, np.ndarray]:
    """Copies of the ids in the index and their vectors, in matching order."""
    if isinstance(index, faiss.IndexIVFFlat):
        return _ivf_contents(index, vectors=True)
    flat = faiss.downcast_index(index.index)
    return _ids(index), flat.reconstruct_n(0, flat.ntotal)


def _ivf_contents(index: faiss.IndexIVFFlat, *, vectors: bool) -> tuple[np.ndarray, np.ndarray]:
    """Ids (and vectors, if asked; else an empty array) read straight from the IVF cells."""
    lists = cast(faiss.InvertedLists, index.invlists)  # set by every IVF constructor
    id_parts, code_parts = [np.zeros(0, np.int64)], [np.zeros(0, np.uint8)]
    for cell in range(index.nlist):
        size = lists.list_size(cell)
        if size:
            id_parts.append(faiss.rev_swig_ptr(lists.get_ids(cell), size).copy())
            if vectors:
                code_parts.append(faiss.rev_swig_ptr(lists.get_codes(cell), size * lists.code_size).copy())
    ids = np.concatenate(id_parts).astype(np.int64)
    return ids, np.concatenate(code_parts).view(np.float32).reshape(-1, index.d)


def _add(index: _Index, ids: np.ndarray, vectors: np.ndarray, centroids: faiss.IndexFlatIP | None) -> None:
    """Add vectors; to an IVF, with its cell centroids as float32 if given.

    The IVF's own float16 centroids place vectors one at a time (about 6,000 a second at 4,096
    cells, 512-d); float32 ones place a batch with one matrix product, several times faster, so a
    rebuild keeps them for its bulk adds. Both pick the same cells but for near-ties.
    """
    if centroids is None or not isinstance(index, faiss.IndexIVFFlat):
        index.add_with_ids(vectors, ids)
        return
    # add_core reads raw pointers: the arrays must be contiguous and of faiss's types.
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    cells = np.ascontiguousarray(centroids.search(vectors, 1)[1][:, 0], dtype=np.int64)
    index.add_core(len(ids), faiss.swig_ptr(vectors), faiss.swig_ptr(ids), faiss.swig_ptr(cells))


def _apply(index: _Index, changes: list[_Change], centroids: faiss.IndexFlatIP | None) -> None:
    for ids, vectors in changes:
        if vectors is None:
            index.remove_ids(faiss.IDSelectorBatch(ids))
        else:
            _add(index, ids, vectors, centroids)


@dataclass
class _TenantIndex:
    index: _Index
    lock: ReadWriteLock = field(default_factory=ReadWriteLock)
    dirty: bool = False
    #: True from the moment a rebuild is planned until it is swapped in or given up.
    rebuilding: bool = False
    #: Changes made since the rebuild copied the vectors; None when no copy is being rebuilt.
    pending: list[_Change] | None = None
    #: Set when the tenant is dropped, so a running rebuild stops.
    dropped: bool = False
    #: time.monotonic() before which periodic saves leave this tenant alone.
    next_save: float = 0.0


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
        self._tenants: dict[str, _TenantIndex] = {}
        self._registry_lock = threading.Lock()
        self._stop = threading.Event()
        self._saver: threading.Thread | None = None
        self._builders: list[threading.Thread] = []
        self._builders_lock = threading.Lock()

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
        while True:
            with self._builders_lock:
                running = [thread for thread in self._builders if thread.is_alive()]
                self._builders = running
            if not running:
                return
            for thread in running:
                thread.join()

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

    def _new_index(self) -> faiss.IndexIDMap2:
        return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))

    def _load(self, tenant: str) -> _Index | None:
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

    def _get(self, tenant: str) -> _TenantIndex | None:
        """The tenant's index, loaded from its file on first use; None if there is none."""
        with self._registry_lock:
            state = self._tenants.get(tenant)
            if state is None:
                index = self._load(tenant)
                if index is None:
                    return None
                state = self._tenants[tenant] = _TenantIndex(index)
                # The file may predate a settings change or an abandoned rebuild.
                self._plan_rebuild(tenant, state)
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
                    state.dropped = True
            self._path(tenant).unlink(missing_ok=True)

    # -- rebuilds --------------------------------------------------------------------------

    def _plan_rebuild(self, tenant: str, state: _TenantIndex) -> None:
        """Start a background rebuild if the index's size calls for another kind; the caller
        holds the tenant's write lock or is its only user."""
        if state.rebuilding or self._stop.is_set() or self._planned_cells(state) is None:
            return
        state.rebuilding = True
        thread = threading.Thread(
            target=self._rebuild, args=(tenant, state), name="faiss-rebuild", daemon=True
        )
        with self._builders_lock:
            self._builders.append(thread)
        thread.start()

    def _planned_cells(self, state: _TenantIndex) -> int | None:
        return planned_cells(int(state.index.ntotal), _cells(state.index), self.approx_above)

    def _abandoned(self, state: _TenantIndex) -> bool:
        return state.dropped or self._stop.is_set()

    def _rebuild(self, tenant: str, state: _TenantIndex) -> None:
        """Copy the vectors, build the planned index from the copy, swap it in. The cell count
        is planned again on the copy: the tenant may have changed since the rebuild was due."""
        self._limit_threads()
        try:
            with state.lock.read():
                cells = self._planned_cells(state)
                if cells is not None:
                    ids, vectors = _contents(state.index)
                    state.pending = []
            if cells is not None:
                log.info("rebuilding the FAISS index of %r: %d entries, %d cells", tenant, len(ids), cells)
                index, centroids = self._trained_ivf(vectors, cells) if cells else (self._new_index(), None)
                filled = self._fill(index, centroids, ids, vectors, state)
                del vectors
                if filled and self._swap_in(tenant, state, index, centroids):
                    return
        except (RuntimeError, MemoryError) as exc:
            log.error("rebuilding the FAISS index of %r failed, keeping the old one: %s", tenant, exc)
        with state.lock.write():
            state.pending, state.rebuilding = None, False

    def _fill(
        self,
        index: _Index,
        centroids: faiss.IndexFlatIP | None,
        ids: np.ndarray,
        vectors: np.ndarray,
        state: _TenantIndex,
    ) -> bool:
        """Add the copied vectors to the new index; False if the rebuild was abandoned meanwhile."""
        for start in range(0, len(ids), _BUILD_BATCH):
            if self._abandoned(state):
                return False
            batch = slice(start, start + _BUILD_BATCH)
            _add(index, ids[batch], vectors[batch], centroids)
        return True

    def _trained_ivf(self, vectors: np.ndarray, cells: int) -> tuple[faiss.IndexIVFFlat, faiss.IndexFlatIP]:
        """An empty IVF index whose cells come from k-means on a fixed sample of the vectors, and
        its cell centroids as float32 (see `_add`).

        The IVF keeps its centroids as float16: a search compares the query with every centroid,
        and halving those bytes halves that step (0.4 -> 0.2 ms for 4,096 cells, 512-d) while
        choosing the same cells (99.98% of them). The vectors in the cells stay float32.
        """
        sample_size = min(len(vectors), cells * _TRAIN_POINTS_PER_CELL)
        sample = np.sort(np.random.default_rng(0).choice(len(vectors), sample_size, replace=False))
        centroids = faiss.IndexFlatIP(self.dim)
        trainer = faiss.IndexIVFFlat(centroids, self.dim, cells, faiss.METRIC_INNER_PRODUCT)
        trainer.train(vectors[sample])
        quantizer = faiss.IndexScalarQuantizer(
            self.dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
        )
        quantizer.add(centroids.reconstruct_n(0, cells))
        index = faiss.IndexIVFFlat(quantizer, self.dim, cells, faiss.METRIC_INNER_PRODUCT)
        index.nprobe = self.nprobe
        return index, centroids

    def _swap_in(
        self, tenant: str, state: _TenantIndex, index: _Index, centroids: faiss.IndexFlatIP | None
    ) -> bool:
        """Replay the logged changes on the new index, the last few under the write lock, then
        make it the tenant's index; False if the rebuild was abandoned meanwhile."""
        while True:
            with state.lock.write():
                if self._abandoned(state):
                    return False
                changes, state.pending = state.pending or [], []
                if sum(len(ids) for ids, _ in changes) <= _REPLAY_UNDER_LOCK:
                    _apply(index, changes, centroids)
                    state.index, state.dirty = index, True
                    state.pending, state.rebuilding = None, False
                    self._plan_rebuild(tenant, state)
                    return True
            _apply(index, changes, centroids)

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
        ids = np.array(ids, dtype=np.int64)
        vectors = np.array(vectors, dtype=np.float32, order="C")
        with state.lock.write():
            state.index.add_with_ids(vectors, ids)
            if state.pending is not None:
                state.pending.append((ids, vectors))
            state.dirty = True
            self._plan_rebuild(tenant, state)

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
            if state.pending is not None:
                state.pending.append((ids, None))
            state.dirty = True
            self._plan_rebuild(tenant, state)

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
            return _cells(state.index)

    def ids(self, tenant: str) -> np.ndarray | None:
        state = self._get(tenant)
        if state is None:
            return np.zeros(0, np.int64)
        with state.lock.read():
            return np.sort(_ids(state.index))
