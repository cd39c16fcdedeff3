"""onnx: the tiny BERT exported by torch.onnx, run by onnxruntime with the shared windowing."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from modelcache.embedding import Embedder
from modelcache.errors import ConfigurationError
from tests.embedding.artefacts import MAX_POSITIONS, SENTENCES
from tests.embedding.conftest import check_contract, load_embedder, long_text


@pytest.fixture(scope="module")
def embedder(onnx_dir: Path) -> Embedder:
    return load_embedder("onnx", path=str(onnx_dir / "model.onnx"))


def test_contract(embedder: Embedder) -> None:
    assert embedder.dim == 32
    check_contract(embedder, [*SENTENCES, "", long_text(150)])


def test_same_vectors_as_the_same_model_on_torch(onnx_dir: Path, huggingface_dir: Path) -> None:
    """One windowing and pooling code for both runtimes: short and long texts agree."""
    texts = [*SENTENCES, long_text(3 * MAX_POSITIONS, seed=1)]
    on_onnx = load_embedder("onnx", path=str(onnx_dir), window=40, stride=25).embed(texts)
    on_torch = load_embedder("huggingface", path=str(huggingface_dir), window=40, stride=25).embed(texts)
    np.testing.assert_allclose(on_onnx, on_torch, atol=1e-5)


def test_long_text_windows_cover_the_whole_text(embedder: Embedder) -> None:
    head = long_text(2 * MAX_POSITIONS, seed=2)
    ends = embedder.embed([head + " the dog slept on the log", head + " will it rain in paris tomorrow"])
    assert not np.allclose(ends[0], ends[1], atol=1e-4)


def test_default_limit_comes_from_the_tokenizer(embedder: Embedder) -> None:
    """tokenizer.json says 64 tokens; the fallback of 512 would overflow the model's 64 positions."""
    assert embedder.embed([long_text(150)]).shape == (1, 32)


def test_missing_files_are_named(tmp_path: Path, onnx_dir: Path) -> None:
    missing = tmp_path / "model.onnx"
    with pytest.raises(ConfigurationError, match=re.escape(str(missing))):
        load_embedder("onnx", path=str(missing))
    with pytest.raises(ConfigurationError, match="tokenizer"):
        load_embedder("onnx", path=str(onnx_dir / "model.onnx"), tokenizer=str(tmp_path / "tokenizer.json"))


def test_unknown_output_name(onnx_dir: Path) -> None:
    with pytest.raises(ConfigurationError, match="no output 'pooled'"):
        load_embedder("onnx", path=str(onnx_dir), output="pooled")


def test_unreadable_model_file(tmp_path: Path, onnx_dir: Path) -> None:
    broken = tmp_path / "model.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(ConfigurationError, match=re.escape(str(broken))):
        load_embedder("onnx", path=str(broken), tokenizer=str(onnx_dir / "tokenizer.json"))
