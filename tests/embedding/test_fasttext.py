"""fasttext: a model trained on a few sentences into tmp, loaded from its .bin."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from modelcache.embedding import Embedder
from modelcache.errors import ConfigurationError
from tests.embedding.artefacts import SENTENCES
from tests.embedding.conftest import check_contract, load_embedder, long_text


@pytest.fixture(scope="module")
def embedder(fasttext_model: Path) -> Embedder:
    return load_embedder("fasttext", path=str(fasttext_model))


def test_contract(embedder: Embedder) -> None:
    assert embedder.dim == 16
    check_contract(embedder, [*SENTENCES, "words it never saw", "two\nlines", long_text(2000)])


def test_same_as_fasttexts_own_sentence_vector(embedder: Embedder, fasttext_model: Path) -> None:
    import fasttext

    model = fasttext.load_model(str(fasttext_model))
    own = model.get_sentence_vector(SENTENCES[0])
    np.testing.assert_allclose(embedder.embed([SENTENCES[0]])[0], own / np.linalg.norm(own), atol=1e-6)


def test_line_breaks_are_spaces(embedder: Embedder) -> None:
    np.testing.assert_allclose(embedder.embed(["the cat\nsat"]), embedder.embed(["the cat sat"]), atol=1e-6)


def test_every_word_of_a_long_text_counts(embedder: Embedder) -> None:
    head = long_text(2000)
    ends = embedder.embed([head + " cat", head + " weather"])
    assert not np.array_equal(ends[0], ends[1])


def test_no_words_gives_a_zero_vector(embedder: Embedder) -> None:
    assert not embedder.embed(["", "   "]).any()


def test_missing_and_broken_files_are_named(tmp_path: Path) -> None:
    missing = tmp_path / "missing.bin"
    with pytest.raises(ConfigurationError, match=re.escape(str(missing))):
        load_embedder("fasttext", path=str(missing))
    broken = tmp_path / "broken.bin"
    broken.write_bytes(b"\0" * 64)
    with pytest.raises(ConfigurationError, match=re.escape(str(broken))):
        load_embedder("fasttext", path=str(broken))
