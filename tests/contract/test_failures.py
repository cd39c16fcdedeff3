"""All-or-nothing writes when one side fails (embedded default, a vector index that breaks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modelcache import BackendUnavailable, Cache, Settings
from modelcache.embedding.use import UseEmbedder
from modelcache.storage.faiss_index import FaissIndex


class BreakableIndex(FaissIndex):
    """The real FAISS index, whose writes can be made to fail like an unreachable server."""

    broken = False

    def add(self, tenant: str, ids: np.ndarray, vectors: np.ndarray) -> None:
        if self.broken:
            raise BackendUnavailable("faiss", "simulated outage")
        super().add(tenant, ids, vectors)


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


@pytest.fixture
def cache(tmp_path: Path, use_embedder: UseEmbedder):
    settings = Settings(data_dir=tmp_path)
    index = BreakableIndex(tmp_path / "faiss", use_embedder.dim)
    with Cache(settings, embedder=use_embedder, vector_index=index) as started:
        yield started, index


def test_failed_vector_write_leaves_no_row(cache: tuple[Cache, BreakableIndex]):
    c, index = cache
    c.insert("t", [(ask("What is the capital of France?"), "Paris.")])
    index.broken = True
    with pytest.raises(BackendUnavailable):
        c.insert(
            "t",
            [(ask("How tall is Mount Everest?"), "8849 m"), (ask("What is the capital of France?"), "Lyon")],
        )
    index.broken = False
    assert c.rows.count("t") == 1
    assert np.array_equal(c.rows.ids("t"), index.ids("t"))
    assert not c.query("t", ask("How tall is Mount Everest?")).hit
    assert c.query("t", ask("What is the capital of France?")).answer == "Paris."


def test_failed_answer_update_undoes_the_new_rows(
    cache: tuple[Cache, BreakableIndex], monkeypatch: pytest.MonkeyPatch
):
    c, index = cache
    c.insert("t", [(ask("What is the capital of France?"), "Paris.")])

    def fail(*args: object) -> None:
        raise BackendUnavailable("sqlite", "simulated outage")

    monkeypatch.setattr(c.rows, "update_answers", fail)
    with pytest.raises(BackendUnavailable):
        c.insert(
            "t",
            [(ask("How tall is Mount Everest?"), "8849 m"), (ask("What is the capital of France?"), "Lyon")],
        )
    assert c.rows.count("t") == 1 and index.count("t") == 1
    assert c.query("t", ask("What is the capital of France?")).answer == "Paris."
