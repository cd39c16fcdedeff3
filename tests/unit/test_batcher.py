import hashlib
import threading
from collections.abc import Sequence

import numpy as np

from modelcache.embedding import BatchingEmbedder, normalize_rows


class HashEmbedder:
    """Deterministic fake model: a text's vector depends only on the text."""

    name = "hash"
    dim = 16

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.lock = threading.Lock()

    def load(self) -> None:
        pass

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        with self.lock:
            self.calls.append(len(texts))
        rows = [
            np.frombuffer(hashlib.sha256(t.encode()).digest()[:16], np.uint8).astype(np.float32)
            for t in texts
        ]
        return normalize_rows(np.stack(rows)) if rows else np.zeros((0, self.dim), np.float32)


def test_batched_results_equal_direct_results_under_concurrency():
    inner = HashEmbedder()
    batcher = BatchingEmbedder(inner, max_batch=16, max_wait_s=0.005)
    batcher.load()
    texts = [f"question {i}" for i in range(200)]
    results: dict[int, np.ndarray] = {}

    def worker(start: int) -> None:
        for i in range(start, len(texts), 8):
            results[i] = batcher.embed([texts[i]])[0]

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    batcher.close()
    direct = HashEmbedder().embed(texts)
    for i, text in enumerate(texts):
        assert np.array_equal(results[i], direct[i]), text
    assert len(inner.calls) < len(texts), "concurrent calls should share model calls"
    assert max(inner.calls) <= 16


def test_multi_text_calls_keep_their_order():
    batcher = BatchingEmbedder(HashEmbedder(), max_batch=4)
    batcher.load()
    out = batcher.embed(["a", "b", "c", "d", "e", "f"])
    batcher.close()
    assert np.array_equal(out, HashEmbedder().embed(["a", "b", "c", "d", "e", "f"]))


def test_errors_reach_the_caller():
    class Broken(HashEmbedder):
        def embed(self, texts: Sequence[str]) -> np.ndarray:
            raise RuntimeError("model exploded")

    batcher = BatchingEmbedder(Broken())
    batcher.load()
    try:
        batcher.embed(["x"])
    except RuntimeError as exc:
        assert "exploded" in str(exc)
    else:
        raise AssertionError("expected the model's error")
    finally:
        batcher.close()
