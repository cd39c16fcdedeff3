"""The cross-encoder second stage: a tiny pair classifier saved offline, loaded by the real path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modelcache import Cache, Settings
from modelcache.embedding.use import UseEmbedder
from modelcache.errors import ConfigurationError
from modelcache.verifier.reranker import CrossEncoderReranker, RerankStage
from tests.embedding.artefacts import build_cross_encoder_dir

pytest.importorskip("transformers", reason="the huggingface extra is part of the test install")

LONG = " ".join(["the cat sat on the mat"] * 40)  # over the tiny model's 64 tokens


@pytest.fixture(scope="module")
def use() -> UseEmbedder:
    embedder = UseEmbedder(threads=1)
    embedder.load()
    return embedder


def reranker_cache(tmp_path: Path, use: UseEmbedder, directory: Path, **settings: object) -> Cache:
    values = {"data_dir": tmp_path / "data", "reranker": str(directory), **settings}
    return Cache(Settings(**values), embedder=use)  # type: ignore[arg-type]


@pytest.mark.parametrize("num_labels", [1, 2])
def test_scores_are_probabilities_that_depend_on_the_pair(tmp_path: Path, num_labels: int):
    reranker = CrossEncoderReranker(build_cross_encoder_dir(tmp_path / "ce", num_labels=num_labels))
    scores = reranker.scores(
        "how do i reset my password", ["how can i change my password", "the cat sat", LONG]
    )
    assert scores.shape == (3,) and np.all((scores >= 0) & (scores <= 1))
    assert len(set(np.round(scores, 6))) > 1  # the pair goes through the model, not a constant
    assert reranker.scores("anything", []).shape == (0,)


def test_the_reranker_decides_hits_in_the_cache(tmp_path: Path, use: UseEmbedder):
    """A reranker that always says yes serves a candidate the cosine thresholds would refuse;
    one that always says no refuses a close paraphrase. The recall floor still applies."""
    yes = build_cross_encoder_dir(tmp_path / "yes", bias=6.0)
    no = build_cross_encoder_dir(tmp_path / "no", bias=-6.0)
    stored = [{"role": "user", "content": "How do I sort a list in Python?"}]
    loose = [{"role": "user", "content": "What is the best way to learn Python?"}]  # cosine 0.55
    close = [{"role": "user", "content": "How do I sort a Python list?"}]
    unrelated = [{"role": "user", "content": "今天天气怎么样?"}]
    with reranker_cache(tmp_path / "a", use, yes, reranker_min_cosine=0.3) as cache:
        assert isinstance(cache.second_stage, RerankStage)
        cache.insert("t", [(stored, "sorted()")])
        assert cache.query("t", loose).hit
        assert not cache.query("t", unrelated).hit  # under the recall floor: never shown to the model
        assert not cache.query("t", loose, threshold=0.7).hit  # an explicit threshold raises the floor
    with reranker_cache(tmp_path / "b", use, no) as cache:
        cache.insert("t", [(stored, "sorted()")])
        assert not cache.query("t", close).hit
        assert cache.query("t", stored).hit  # exact repeats never need a second stage


def test_bad_reranker_settings_are_named(tmp_path: Path, use: UseEmbedder):
    with pytest.raises(ConfigurationError, match="reranker model directory"):
        reranker_cache(tmp_path, use, tmp_path / "missing").start()
    with pytest.raises(ConfigurationError, match="fast preset"):
        reranker_cache(tmp_path, use, tmp_path / "missing", preset="fast")
