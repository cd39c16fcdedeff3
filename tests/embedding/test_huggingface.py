"""huggingface / modelscope: tiny BERT directories saved offline, loaded by the real path."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelcache.embedding import Embedder
from modelcache.embedding.huggingface import HuggingFaceEmbedder
from modelcache.errors import ConfigurationError
from tests.embedding.artefacts import MAX_POSITIONS, SENTENCES
from tests.embedding.conftest import check_contract, load_embedder, long_text


@pytest.fixture(scope="module")
def embedder(huggingface_dir: Path) -> Embedder:
    return load_embedder("huggingface", path=str(huggingface_dir))


def reference_mean_pooling(directory: Path, texts: list[str]) -> np.ndarray:
    """sentence-transformers' recipe, by hand: one forward pass, mean over the mask, L2."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModel.from_pretrained(directory).eval()
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(pooled, dim=1).numpy()


def window_reference(directory: Path, text: str, window: int, stride: int) -> np.ndarray:
    """Each window through the model alone, mean-pooled, then pooled by token count."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModel.from_pretrained(directory).eval()
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    starts = [*range(0, len(ids) - window, stride), len(ids) - window]
    total = np.zeros(model.config.hidden_size, np.float32)
    for start in starts:
        batch = tokenizer([tokenizer.decode(ids[start : start + window])], return_tensors="pt")
        with torch.inference_mode():
            hidden = model(**batch).last_hidden_state[0]
        total += hidden.mean(0).numpy() * hidden.shape[0]
    return total / np.linalg.norm(total)


def test_contract(embedder: Embedder) -> None:
    assert embedder.dim == 32
    check_contract(embedder, [*SENTENCES, "", long_text(200)])


def test_short_texts_match_plain_mean_pooling(embedder: Embedder, huggingface_dir: Path) -> None:
    texts = SENTENCES[:4]
    np.testing.assert_allclose(
        embedder.embed(texts), reference_mean_pooling(huggingface_dir, texts), atol=1e-5
    )


def test_long_text_windows_cover_the_whole_text(embedder: Embedder) -> None:
    head = long_text(3 * MAX_POSITIONS)
    full = embedder.embed(
        [head + " the cat sat on the mat", head + " recommend a good chocolate cake recipe"]
    )
    assert not np.allclose(full[0], full[1], atol=1e-4), "the ending past the model's limit was dropped"
    limit = MAX_POSITIONS - 2
    cut = embedder.embed([" ".join(head.split()[:limit])])
    assert not np.allclose(full[0], cut[0], atol=1e-4)


def test_windows_are_pooled_by_token_count(huggingface_dir: Path) -> None:
    text = long_text(100, seed=3)
    embedder = load_embedder("huggingface", path=str(huggingface_dir), window=40, stride=30)
    expected = window_reference(huggingface_dir, text, window=40, stride=30)
    np.testing.assert_allclose(embedder.embed([text])[0], expected, atol=1e-5)


def test_a_modelscope_download_loads_the_same_way(modelscope_dir: Path, embedder: Embedder) -> None:
    assert not (modelscope_dir / "tokenizer.json").exists()  # vocab.txt only, converted on load
    modelscope = load_embedder("modelscope", path=str(modelscope_dir))
    np.testing.assert_allclose(modelscope.embed(SENTENCES), embedder.embed(SENTENCES), atol=1e-5)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"window": 63}, "exceeds the model's 62 content tokens"),
        ({"window": 10, "stride": 11}, "stride 11 exceeds window 10"),
        ({"max_tokens": 2}, "leaves no room"),
    ],
)
def test_window_options_are_checked(huggingface_dir: Path, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_embedder("huggingface", path=str(huggingface_dir), **options)


def test_missing_directory_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(ConfigurationError, match=re.escape(str(missing))):
        HuggingFaceEmbedder(missing).load()
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigurationError, match=r"config\.json"):
        HuggingFaceEmbedder(tmp_path / "empty").load()


def test_unloadable_directory_is_named(tmp_path: Path, huggingface_dir: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        (broken / name).write_bytes((huggingface_dir / name).read_bytes())
    (broken / "model.safetensors").write_bytes(b"truncated")
    with pytest.raises(ConfigurationError, match=re.escape(str(broken))):
        load_embedder("huggingface", path=str(broken))
