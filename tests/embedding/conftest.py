"""Session-wide tiny models (built once, offline) and the checks every embedder must pass."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelcache.embedding import Embedder, open_embedder
from modelcache.settings import Settings
from tests.embedding import artefacts


def load_embedder(name: str, **options: Any) -> Embedder:
    """Through the registry, as the server does: Settings -> open_embedder -> load()."""
    embedder = open_embedder(Settings(embedder=name, embedder_options=options))
    embedder.load()
    return embedder


def check_contract(embedder: Embedder, texts: Sequence[Any]) -> np.ndarray:
    """float32 (n, dim) unit rows; the same input gives the same rows, alone or in a batch."""
    vectors = embedder.embed(texts)
    assert vectors.dtype == np.float32
    assert vectors.shape == (len(texts), embedder.dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(embedder.embed(texts), vectors)
    alone = np.vstack([embedder.embed([text]) for text in texts])
    np.testing.assert_allclose(alone, vectors, atol=1e-5)
    assert embedder.embed([]).shape == (0, embedder.dim)
    return vectors


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a.ravel(), b.ravel()))


def long_text(words: int, seed: int = 0) -> str:
    """A text of `words` known words (one token each in the tiny vocabularies)."""
    pool = sorted({word for sentence in artefacts.SENTENCES for word in sentence.split()})
    picks = np.random.default_rng(seed).integers(0, len(pool), words)
    return " ".join(pool[int(index)] for index in picks)


@pytest.fixture(scope="session")
def huggingface_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    return artefacts.build_huggingface_dir(tmp_path_factory.mktemp("hf") / "tiny-bert")


@pytest.fixture(scope="session")
def modelscope_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    return artefacts.build_modelscope_dir(tmp_path_factory.mktemp("modelscope"))


@pytest.fixture(scope="session")
def onnx_dir(tmp_path_factory: pytest.TempPathFactory, huggingface_dir: Path) -> Path:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")  # torch.onnx.export writes through it
    return artefacts.build_onnx_dir(tmp_path_factory.mktemp("onnx") / "tiny-bert-onnx", huggingface_dir)


@pytest.fixture(scope="session")
def fasttext_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("fasttext")
    return artefacts.build_fasttext_model(tmp_path_factory.mktemp("fasttext") / "model")


@pytest.fixture(scope="session")
def llm_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("tokenizers")
    pytest.importorskip("safetensors")
    pytest.importorskip("torch")  # writes the bfloat16 checkpoint
    return artefacts.build_llm_files(tmp_path_factory.mktemp("llm") / "tiny-llm")
