"""Background rebuilds of a tenant's FAISS index, while the current one keeps serving.

The cell count follows the size (see `faiss_ivf.planned_cells`): an exact index becomes IVF
above the threshold, an IVF index is retrained when the tenant has grown enough for its cell
count to double, and goes back to exact search when it shrinks to half the threshold. Training
a large tenant takes about a minute, so it cannot happen under the tenant's lock: a rebuild
copies the vectors under a read lock, trains and fills the new index from the copy in a thread
of its own, and logs the changes made meanwhile (`TenantIndex.pending`). Those are replayed on
the new index, which then replaces the old one under a short write lock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import faiss
import numpy as np

from modelcache.locks import ReadWriteLock
from modelcache.storage.faiss_ivf import (
    Change,
    Index,
    add_vectors,
    apply_changes,
    cell_count,
    exact_index,
    index_contents,
    planned_cells,
)

__all__ = ["Rebuilder", "TenantIndex", "Trainer"]

log = logging.getLogger(__name__)

#: Vectors added to a new index per step, between checks that it is still wanted.
_BUILD_BATCH = 50_000
#: A rebuild replays at most this many logged vectors while holding the write lock; larger
#: backlogs are replayed outside it first, so searches never wait long for the swap.
_REPLAY_UNDER_LOCK = 5_000

#: Makes an empty IVF index with the given cell count from a sample of the vectors, and its
#: centroids as float32 (see `faiss_ivf.trained_ivf`).
Trainer = Callable[[np.ndarray, int], tuple[faiss.IndexIVFFlat, faiss.IndexFlatIP]]


@dataclass
class TenantIndex:
    """One tenant's index and what its saver and its rebuilds need to know about it."""

    index: Index
    lock: ReadWriteLock = field(default_factory=ReadWriteLock)
    dirty: bool = False
    #: True from the moment a rebuild is planned until it is swapped in or given up.
    rebuilding: bool = False
    #: Changes made since the rebuild copied the vectors; None when no copy is being rebuilt.
    pending: list[Change] | None = None
    #: Set when the tenant is dropped, so a running rebuild stops.
    dropped: bool = False
    #: time.monotonic() before which periodic saves leave this tenant alone.
    next_save: float = 0.0

    def log_change(self, ids: np.ndarray, vectors: np.ndarray | None) -> None:
        """Keep a change (vectors None: a delete) for the running rebuild, if any; the caller
        holds the write lock and has applied the change to `index`."""
        if self.pending is not None:
            self.pending.append((ids, vectors))


class Rebuilder:
    """Starts, runs and tracks the rebuild threads of one `FaissIndex`.

    `train` is how an IVF index is made (the owner's, so tests can watch or pause it),
    `limit_threads` sets faiss's thread count in each rebuild thread, and `stop`, once set,
    makes running rebuilds give up and no new ones start.
    """

    def __init__(
        self,
        dim: int,
        approx_above: int,
        *,
        train: Trainer,
        limit_threads: Callable[[], None],
        stop: threading.Event,
    ):
        self.dim = dim
        self.approx_above = approx_above
        self._train = train
        self._limit_threads = limit_threads
        self._stop = stop
        self._threads: list[threading.Thread] = []
        self._threads_lock = threading.Lock()

    def plan(self, tenant: str, state: TenantIndex) -> None:
        """Start a background rebuild if the index's size calls for another kind; the caller
        holds the tenant's write lock or is its only user."""
        if state.rebuilding or self._stop.is_set() or self._planned_cells(state) is None:
            return
        state.rebuilding = True
        thread = threading.Thread(target=self._run, args=(tenant, state), name="faiss-rebuild", daemon=True)
        with self._threads_lock:
            self._threads.append(thread)
        thread.start()

    def wait(self) -> None:
        """Block until no rebuild is running (each may start a follow-up one as it finishes)."""
        while True:
            with self._threads_lock:
                running = [thread for thread in self._threads if thread.is_alive()]
                self._threads = running
            if not running:
                return
            for thread in running:
                thread.join()

    def _planned_cells(self, state: TenantIndex) -> int | None:
        return planned_cells(int(state.index.ntotal), cell_count(state.index), self.approx_above)

    def _abandoned(self, state: TenantIndex) -> bool:
        return state.dropped or self._stop.is_set()

    def _run(self, tenant: str, state: TenantIndex) -> None:
        """Copy the vectors, build the planned index from the copy, swap it in. The cell count
        is planned again on the copy: the tenant may have changed since the rebuild was due."""
        self._limit_threads()
        try:
            with state.lock.read():
                cells = self._planned_cells(state)
                if cells is not None:
                    ids, vectors = index_contents(state.index)
                    state.pending = []
            if cells is not None:
                log.info("rebuilding the FAISS index of %r: %d entries, %d cells", tenant, len(ids), cells)
                index, centroids = self._train(vectors, cells) if cells else (exact_index(self.dim), None)
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
        index: Index,
        centroids: faiss.IndexFlatIP | None,
        ids: np.ndarray,
        vectors: np.ndarray,
        state: TenantIndex,
    ) -> bool:
        """Add the copied vectors to the new index; False if the rebuild was abandoned meanwhile."""
        for start in range(0, len(ids), _BUILD_BATCH):
            if self._abandoned(state):
                return False
            batch = slice(start, start + _BUILD_BATCH)
            add_vectors(index, ids[batch], vectors[batch], centroids)
        return True

    def _swap_in(
        self, tenant: str, state: TenantIndex, index: Index, centroids: faiss.IndexFlatIP | None
    ) -> bool:
        """Replay the logged changes on the new index, the last few under the write lock, then
        make it the tenant's index; False if the rebuild was abandoned meanwhile."""
        while True:
            with state.lock.write():
                if self._abandoned(state):
                    return False
                changes, state.pending = state.pending or [], []
                if sum(len(ids) for ids, _ in changes) <= _REPLAY_UNDER_LOCK:
                    apply_changes(index, changes, centroids)
                    state.index, state.dirty = index, True
                    state.pending, state.rebuilding = None, False
                    self.plan(tenant, state)
                    return True
            apply_changes(index, changes, centroids)
