"""FaissIndex above its size threshold: the IVF index answers like exact search, keeps every
entry through the switch, honours deletes, and reloads from its file without retraining.

A fixed, seeded data set of a few thousand 64-d unit vectors and a threshold of 1,000 entries
keep each test under a second. Queries are stored vectors plus a little noise (cosine about
0.95 to their source), a stand-in for paraphrases of stored questions.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pytest

from modelcache.settings import Settings
from modelcache.storage import open_vector_index
from modelcache.storage.faiss_index import FaissIndex, cells_for, planned_cells

DIM = 64
THRESHOLD = 1_000
NPROBE = 8
TENANT = "big"


class RecordingIndex(FaissIndex):
    """Counts IVF trainings; while `resume` is clear, a rebuild waits after copying the vectors."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.trainings = 0
        self.copied = threading.Event()
        self.resume = threading.Event()
        self.resume.set()

    def _trained_ivf(self, vectors: np.ndarray, cells: int) -> tuple[faiss.IndexIVFFlat, faiss.IndexFlatIP]:
        self.trainings += 1
        self.copied.set()
        self.resume.wait(timeout=30)
        return super()._trained_ivf(vectors, cells)


MakeIndex = Callable[[], RecordingIndex]


def unit_vectors(n: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def paraphrases(stored: np.ndarray, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal(stored.shape).astype(np.float32)
    queries = stored + 0.3 * noise / np.sqrt(DIM)
    return queries / np.linalg.norm(queries, axis=1, keepdims=True)


VECTORS = unit_vectors(9_000, seed=1)
IDS = np.arange(1, len(VECTORS) + 1, dtype=np.int64)


@pytest.fixture
def make_index(tmp_path: Path) -> Iterator[MakeIndex]:
    opened: list[RecordingIndex] = []

    def make() -> RecordingIndex:
        index = RecordingIndex(tmp_path / "faiss", DIM, approx_above=THRESHOLD, nprobe=NPROBE)
        index.start()
        opened.append(index)
        return index

    yield make
    for index in opened:
        index.resume.set()
        index.close()


def fill(index: FaissIndex, start: int, stop: int, batch: int = 500) -> None:
    for first in range(start, stop, batch):
        last = min(first + batch, stop)
        index.add(TENANT, IDS[first:last], VECTORS[first:last])


def top1(index: FaissIndex, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ids, scores = index.search(TENANT, queries, 10)
    return ids[:, 0], scores[:, 0]


def test_cell_plan() -> None:
    assert cells_for(50_000) == 1024
    assert cells_for(1_000_000) == 4096
    assert cells_for(4_000) == 64  # capped: 39 training points per cell at least
    assert planned_cells(1_000, 0, approx_above=1_000) is None
    assert planned_cells(1_001, 0, approx_above=1_000) == cells_for(1_001)
    assert planned_cells(200_000, 1024, approx_above=50_000) == 2048
    assert planned_cells(100_000, 1024, approx_above=50_000) is None
    assert planned_cells(30_000, 1024, approx_above=50_000) is None
    assert planned_cells(25_000, 1024, approx_above=50_000) == 0


def test_settings_reach_the_index(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, faiss_approx_above=1234, faiss_nprobe=7)
    index = open_vector_index(settings, DIM)
    assert isinstance(index, FaissIndex)
    assert (index.approx_above, index.nprobe) == (1234, 7)


def test_approximate_top1_matches_exact(make_index: MakeIndex, tmp_path: Path) -> None:
    approximate = make_index()
    exact = FaissIndex(tmp_path / "exact", DIM, approx_above=len(VECTORS))
    exact.start()
    # One add, so the IVF is trained on all 4,000 vectors whatever the threads' timing.
    fill(approximate, 0, 4_000, batch=4_000)
    fill(exact, 0, 4_000)
    approximate.wait_for_rebuilds()
    assert approximate.cells(TENANT) == cells_for(4_000)
    assert exact.cells(TENANT) == 0

    queries = paraphrases(VECTORS[:4_000:10], seed=2)
    got_ids, got_scores = top1(approximate, queries)
    want_ids, want_scores = top1(exact, queries)
    exact.close()
    np.testing.assert_array_equal(got_ids, want_ids)
    np.testing.assert_allclose(got_scores, want_scores, atol=1e-6)  # float32 kept: exact cosines


def test_crossing_keeps_changes_made_during_the_rebuild(make_index: MakeIndex) -> None:
    index = make_index()
    index.resume.clear()
    fill(index, 0, 2_000)
    assert index.copied.wait(timeout=10)
    # Made while the IVF is trained: more than is replayed under the lock, and deletes.
    fill(index, 2_000, 9_000)
    deleted = IDS[::7]
    index.delete(TENANT, deleted)
    assert index.cells(TENANT) == 0  # the exact index serves until the swap
    index.resume.set()
    index.wait_for_rebuilds()

    kept = np.setdiff1d(IDS, deleted)
    assert index.cells(TENANT) == cells_for(len(kept))
    ids = index.ids(TENANT)
    assert ids is not None
    np.testing.assert_array_equal(ids, kept)
    found, _ = top1(index, VECTORS[kept - 1])
    assert (found == kept).mean() >= 0.99  # searching each stored vector itself finds it


def test_deletes_after_the_switch_stay_deleted(make_index: MakeIndex) -> None:
    index = make_index()
    fill(index, 0, 3_000)
    index.wait_for_rebuilds()
    assert index.cells(TENANT) > 0
    deleted = IDS[:3_000:3]
    index.delete(TENANT, deleted)
    assert index.count(TENANT) == 3_000 - len(deleted)

    def returned(index: FaissIndex) -> np.ndarray:
        ids, _ = index.search(TENANT, paraphrases(VECTORS[deleted - 1], seed=3), 10)
        return np.intersect1d(ids, deleted)

    assert returned(index).size == 0
    index.close()
    reloaded = make_index()
    assert reloaded.cells(TENANT) > 0
    assert returned(reloaded).size == 0
    assert reloaded.count(TENANT) == 3_000 - len(deleted)


def test_reload_uses_the_saved_ivf_without_training(make_index: MakeIndex) -> None:
    index = make_index()
    fill(index, 0, 3_000)
    index.wait_for_rebuilds()
    queries = paraphrases(VECTORS[:3_000:5], seed=4)
    before = index.search(TENANT, queries, 10)
    cells = index.cells(TENANT)
    index.close()

    reloaded = make_index()
    assert reloaded.cells(TENANT) == cells
    after = reloaded.search(TENANT, queries, 10)
    reloaded.wait_for_rebuilds()
    assert reloaded.trainings == 0
    np.testing.assert_array_equal(after[0], before[0])
    np.testing.assert_array_equal(after[1], before[1])


def test_close_during_a_rebuild_keeps_the_exact_index_and_retries(make_index: MakeIndex) -> None:
    index = make_index()
    index.resume.clear()
    fill(index, 0, 2_000)
    assert index.copied.wait(timeout=10)
    index.close()
    index.resume.set()
    index.wait_for_rebuilds()

    reloaded = make_index()
    reloaded.resume.clear()
    assert reloaded.cells(TENANT) == 0  # the saved exact index, found over the threshold on load
    assert reloaded.copied.wait(timeout=10)
    reloaded.resume.set()
    reloaded.wait_for_rebuilds()
    assert reloaded.trainings == 1
    assert reloaded.cells(TENANT) > 0
    assert reloaded.count(TENANT) == 2_000


def test_dropping_the_tenant_abandons_its_rebuild(make_index: MakeIndex, tmp_path: Path) -> None:
    index = make_index()
    index.resume.clear()
    fill(index, 0, 2_000)
    assert index.copied.wait(timeout=10)
    index.drop_tenant(TENANT)
    index.resume.set()
    index.wait_for_rebuilds()
    index.save()
    assert index.count(TENANT) == 0
    assert not list((tmp_path / "faiss").glob("*.faiss"))


def test_shrinking_to_half_the_threshold_goes_back_to_exact(make_index: MakeIndex) -> None:
    index = make_index()
    fill(index, 0, 3_000)
    index.wait_for_rebuilds()
    assert index.cells(TENANT) > 0
    index.delete(TENANT, IDS[THRESHOLD // 2 : 3_000])
    index.wait_for_rebuilds()
    assert index.cells(TENANT) == 0
    found, scores = top1(index, VECTORS[: THRESHOLD // 2])
    np.testing.assert_array_equal(found, IDS[: THRESHOLD // 2])
    np.testing.assert_allclose(scores, 1.0, atol=1e-5)
