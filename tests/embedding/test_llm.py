"""llm: a BPE tokenizer trained offline and a random input-embedding matrix in every format."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from modelcache.embedding import Embedder
from modelcache.embedding.matrix import open_matrix
from modelcache.errors import ConfigurationError
from tests.embedding.artefacts import SENTENCES
from tests.embedding.conftest import check_contract, load_embedder, long_text


@pytest.fixture(scope="module")
def embedder(llm_files: dict[str, Path]) -> Embedder:
    return load_embedder("llm", path=str(llm_files["npy"]))


def test_contract(embedder: Embedder) -> None:
    assert embedder.dim == 24
    check_contract(embedder, [*SENTENCES, "unseen words: zebra quartz", long_text(5000)])


def test_vector_is_the_mean_of_the_token_rows(embedder: Embedder, llm_files: dict[str, Path]) -> None:
    from tokenizers import Tokenizer

    ids = Tokenizer.from_file(str(llm_files["tokenizer"])).encode(SENTENCES[0], add_special_tokens=False).ids
    mean = np.load(llm_files["npy"])[ids].mean(axis=0)
    np.testing.assert_allclose(embedder.embed([SENTENCES[0]])[0], mean / np.linalg.norm(mean), atol=1e-6)


@pytest.mark.parametrize("kind", ["safetensors", "index"])
def test_safetensors_and_sharded_checkpoints_give_the_same_vectors(
    embedder: Embedder, llm_files: dict[str, Path], kind: str
) -> None:
    other = load_embedder("llm", path=str(llm_files[kind]), tokenizer=str(llm_files["tokenizer"]))
    np.testing.assert_allclose(other.embed(SENTENCES), embedder.embed(SENTENCES), atol=1e-6)


def test_bfloat16_rows_are_read_as_torch_reads_them(llm_files: dict[str, Path]) -> None:
    import torch
    from safetensors.torch import load_file

    expected = load_file(str(llm_files["bf16"]))["model.embed_tokens.weight"].to(torch.float32).numpy()
    matrix = open_matrix(llm_files["bf16"])
    ids = np.asarray([0, 3, 3, len(expected) - 1])
    np.testing.assert_array_equal(matrix.rows(ids), expected[ids])


def test_every_token_of_a_long_text_counts(embedder: Embedder) -> None:
    head = long_text(5000)
    ends = embedder.embed([head + " cat", head + " weather"])
    assert not np.array_equal(ends[0], ends[1])


def test_missing_files_are_named(tmp_path: Path, llm_files: dict[str, Path]) -> None:
    missing = tmp_path / "embeddings.npy"
    with pytest.raises(ConfigurationError, match=re.escape(str(missing))):
        load_embedder("llm", path=str(missing))
    with pytest.raises(ConfigurationError, match=re.escape(str(tmp_path / "tokenizer.json"))):
        load_embedder("llm", path=str(llm_files["npy"]), tokenizer=str(tmp_path / "tokenizer.json"))


def test_mismatched_or_unreadable_files_are_refused(tmp_path: Path, llm_files: dict[str, Path]) -> None:
    small = tmp_path / "small.npy"
    np.save(small, np.ones((5, 4), np.float32))
    with pytest.raises(ConfigurationError, match="do not belong together"):
        load_embedder("llm", path=str(small), tokenizer=str(llm_files["tokenizer"]))
    with pytest.raises(ConfigurationError, match="no tensor 'nope'"):
        load_embedder("llm", path=str(llm_files["safetensors"]), tensor="nope")
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes((10).to_bytes(8, "little") + b"not json!!")
    with pytest.raises(ConfigurationError, match="unreadable header"):
        open_matrix(broken)
    lying = tmp_path / "lying.safetensors"
    header = json.dumps({"w": {"dtype": "F32", "shape": [100, 4], "data_offsets": [0, 1600]}}).encode()
    lying.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 16)
    with pytest.raises(ConfigurationError, match="declared size"):
        open_matrix(lying)
    bad_tokenizer = tmp_path / "tokenizer.json"
    bad_tokenizer.write_text("{}", encoding="utf-8")
    with pytest.raises(ConfigurationError, match=re.escape(str(bad_tokenizer))):
        load_embedder("llm", path=str(llm_files["npy"]), tokenizer=str(bad_tokenizer))
