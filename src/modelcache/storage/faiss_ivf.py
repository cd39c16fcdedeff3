"""How a tenant's FAISS index is laid out: exact or IVF, how many cells, and how to read and fill it.

Vectors are unit length, so inner product is cosine similarity. A small tenant has an exact
flat index (IndexIDMap2 over IndexFlatIP); a large one an inverted-file index (IndexIVFFlat):
k-means splits the vectors into cells and a search scans only the `nprobe` cells nearest the
query. Vectors stay float32, so the scores are the exact cosines the thresholds were calibrated
on; only which entries get scored is approximate. The IVF keeps the ids in its cells, so deletes
remove entries for good and the index is saved and loaded as is, without retraining.

These are plain functions over a faiss index, with no locking and no threads: `FaissIndex` and
its background rebuilds (faiss_rebuild.py) decide when to call them.
"""

from __future__ import annotations

import math
from typing import cast

import faiss
import numpy as np

__all__ = [
    "Change",
    "Index",
    "add_vectors",
    "apply_changes",
    "cell_count",
    "cells_for",
    "exact_index",
    "index_contents",
    "index_ids",
    "planned_cells",
    "trained_ivf",
]

#: k-means trains on at most this many vectors per cell. faiss defaults to 256; 64 trains four
#: times faster (about a minute for 4,096 cells, one thread); the recall figures in
#: benchmarks/storage.py are measured with it.
_TRAIN_POINTS_PER_CELL = 64
#: Fewer points per cell than this make k-means warn and give poor cells (faiss's own minimum).
_MIN_POINTS_PER_CELL = 39

#: A tenant's index: exact (IndexIDMap2 over IndexFlatIP) or approximate (IndexIVFFlat).
Index = faiss.IndexIDMap2 | faiss.IndexIVFFlat

#: A change to replay on an index: (ids, vectors) for an add, (ids, None) for a delete.
Change = tuple[np.ndarray, np.ndarray | None]


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


def exact_index(dim: int) -> faiss.IndexIDMap2:
    """An empty exact index: adding is instant and a search of 10k entries takes under a
    millisecond, but the cost grows with the size (about 6 ms at 50k, 15 ms at 100k, 512-d)."""
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


def trained_ivf(vectors: np.ndarray, cells: int, nprobe: int) -> tuple[faiss.IndexIVFFlat, faiss.IndexFlatIP]:
    """An empty IVF index whose cells come from k-means on a fixed sample of the vectors, and
    its cell centroids as float32 (see `add_vectors`).

    The IVF keeps its centroids as float16: a search compares the query with every centroid,
    and halving those bytes halves that step (0.4 -> 0.2 ms for 4,096 cells, 512-d) while
    choosing the same cells (99.98% of them). The vectors in the cells stay float32.
    """
    dim = vectors.shape[1]
    sample_size = min(len(vectors), cells * _TRAIN_POINTS_PER_CELL)
    sample = np.sort(np.random.default_rng(0).choice(len(vectors), sample_size, replace=False))
    centroids = faiss.IndexFlatIP(dim)
    trainer = faiss.IndexIVFFlat(centroids, dim, cells, faiss.METRIC_INNER_PRODUCT)
    trainer.train(vectors[sample])
    quantizer = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
    quantizer.add(centroids.reconstruct_n(0, cells))
    index = faiss.IndexIVFFlat(quantizer, dim, cells, faiss.METRIC_INNER_PRODUCT)
    index.nprobe = nprobe
    return index, centroids


def cell_count(index: Index) -> int:
    """The index's IVF cell count; 0 for an exact index."""
    return int(index.nlist) if isinstance(index, faiss.IndexIVFFlat) else 0


def index_ids(index: Index) -> np.ndarray:
    """A copy of the ids in the index."""
    if isinstance(index, faiss.IndexIVFFlat):
        return _ivf_contents(index, vectors=False)[0]
    return faiss.vector_to_array(index.id_map).astype(np.int64)


def index_contents(index: Index) -> tuple[np.ndarray, np.ndarray]:
    """Copies of the ids in the index and their vectors, in matching order."""
    if isinstance(index, faiss.IndexIVFFlat):
        return _ivf_contents(index, vectors=True)
    flat = faiss.downcast_index(index.index)
    return index_ids(index), flat.reconstruct_n(0, flat.ntotal)


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


def add_vectors(
    index: Index, ids: np.ndarray, vectors: np.ndarray, centroids: faiss.IndexFlatIP | None
) -> None:
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


def apply_changes(index: Index, changes: list[Change], centroids: faiss.IndexFlatIP | None) -> None:
    """Replay logged adds and deletes on the index, in order."""
    for ids, vectors in changes:
        if vectors is None:
            index.remove_ids(faiss.IDSelectorBatch(ids))
        else:
            add_vectors(index, ids, vectors, centroids)
