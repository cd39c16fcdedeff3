"""SecondStage: which candidates reach the verifier, when the second model runs, the floor.

The verifier is replaced by a scripted stand-in (its own tests are in tests/verifier); the
second model by a fake that counts calls. What is tested is SecondStage's own logic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from modelcache.messages import Message, build_key
from modelcache.similarity import Candidate
from modelcache.storage import Entry
from modelcache.verifier import Judgement, Verifier
from modelcache.verifier.stage import SecondStage
from modelcache.verifier.verifier import VetoLevels

KEY = build_key([Message("system", "s"), Message("user", "question")])


def entry(entry_id: int, context_hash: str, second: np.ndarray | None) -> Entry:
    return Entry(
        entry_id, "t", f"q{entry_id}", f"answer {entry_id}", "[]", context_hash, "k",
        np.zeros(2, np.float32), 0, 0.0, None, second,
    )  # fmt: skip


class ScriptedVerifier(Verifier):
    """Answers `first` to the fast look and `second` to the look with second cosines."""

    def __init__(self, first: Judgement, second: Judgement | None = None):
        super().__init__(mode="cascade")
        self.first, self.second = first, second
        self.calls: list[dict[str, Any]] = []

    def load(self) -> Verifier:
        return self

    def judge(self, question: str, candidate_questions: Sequence[str], first_cosines: Any,
              second_cosines: Any = None, *, mode: Any = None) -> Judgement:  # fmt: skip
        self.calls.append(
            {"questions": list(candidate_questions), "first": list(first_cosines),
             "second": None if second_cosines is None else list(second_cosines), "mode": mode}
        )  # fmt: skip
        if second_cosines is None and mode is None:
            return self.first
        return self.second or Judgement(None, 0.0)


class CountingModel:
    name = "fake-e5"
    dim = 2

    def __init__(self) -> None:
        self.texts: list[str] = []

    def load(self) -> None:
        pass

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.texts += texts
        return np.tile(np.array([1.0, 0.0], np.float32), (len(texts), 1))


E1 = np.array([1.0, 0.0], np.float32)
E2 = np.array([0.0, 1.0], np.float32)


def stage(verifier: Verifier, model: CountingModel | None = None) -> SecondStage:
    built = SecondStage(verifier, model or CountingModel())
    built.load()
    return built


def test_only_same_context_candidates_reach_the_verifier_best_first():
    verifier = ScriptedVerifier(Judgement(0, 0.9))
    candidates = [
        Candidate(entry(1, "other", E1), 0.99),
        Candidate(entry(2, KEY.context_hash, E1), 0.80),
        Candidate(entry(3, KEY.context_hash, E1), 0.90),
    ]
    chosen = stage(verifier).choose(KEY, candidates, None)
    assert chosen is not None and chosen.entry.id == 3
    assert verifier.calls[0]["questions"] == ["q3", "q2"]
    assert stage(verifier).choose(KEY, candidates[:1], None) is None


def test_unsure_embeds_the_query_and_passes_second_cosines():
    model = CountingModel()
    verifier = ScriptedVerifier(Judgement(None, 0.6, unsure=True), Judgement(1, 0.95))
    candidates = [
        Candidate(entry(1, KEY.context_hash, E2), 0.9),
        Candidate(entry(2, KEY.context_hash, E1), 0.8),
    ]
    chosen = stage(verifier, model).choose(KEY, candidates, None)
    assert chosen is not None and chosen.entry.id == 2
    assert model.texts == ["question"]
    assert verifier.calls[1]["second"] == pytest.approx([0.0, 1.0])


def test_a_sure_verdict_never_runs_the_second_model():
    model = CountingModel()
    candidates = [Candidate(entry(1, KEY.context_hash, E1), 0.9)]
    assert stage(ScriptedVerifier(Judgement(None, 0.1)), model).choose(KEY, candidates, None) is None
    assert stage(ScriptedVerifier(Judgement(0, 0.99)), model).choose(KEY, candidates, None) is not None
    assert model.texts == []


def test_a_row_without_second_embedding_leaves_the_decision_to_the_fast_look():
    model = CountingModel()
    verifier = ScriptedVerifier(Judgement(None, 0.6, unsure=True), Judgement(0, 0.7))
    candidates = [
        Candidate(entry(1, KEY.context_hash, E1), 0.9),
        Candidate(entry(2, KEY.context_hash, None), 0.8),
    ]
    assert stage(verifier, model).choose(KEY, candidates, None) is not None
    assert model.texts == []
    assert verifier.calls[1]["mode"] == "fast" and verifier.calls[1]["second"] is None


def test_an_explicit_threshold_is_a_floor_on_the_chosen_cosine():
    candidates = [Candidate(entry(1, KEY.context_hash, E1), 0.85)]
    verifier = ScriptedVerifier(Judgement(0, 0.99))
    assert stage(verifier).choose(KEY, candidates, 0.80) is not None
    assert stage(verifier).choose(KEY, candidates, 0.90) is None


def test_storage_embeddings_come_from_the_second_model_only_in_the_cascade():
    model = CountingModel()
    assert [
        v.tolist() for v in stage(ScriptedVerifier(Judgement(None, 0.0)), model).embed_for_storage(["a", "b"])
    ] == [  # type: ignore[union-attr]
        [1.0, 0.0],
        [1.0, 0.0],
    ]
    fast = SecondStage(Verifier(mode="fast"))
    assert fast.embed_for_storage(["a", "b"]) == [None, None]
    with pytest.raises(ValueError, match="second embedding model"):
        SecondStage(Verifier(mode="cascade"))


class VetoingVerifier(ScriptedVerifier):
    """Vetoes every choice: the fast look is never sure and every candidate scores 0."""

    def veto(self, question: str) -> VetoLevels:
        return VetoLevels(full=0.5, fast=0.5, sure=1.0)

    def score(self, question: str, candidate_questions: Sequence[str], first_cosines: Any,
              second_cosines: Any = None) -> np.ndarray:  # fmt: skip
        return np.zeros(len(candidate_questions))

    def vetoes(self, *args: Any, **kwargs: Any) -> bool:
        return True


def test_a_follow_up_is_never_vetoed_a_standalone_question_is():
    standalone = build_key([Message("system", "s"), Message("user", "How old is he now?")])
    follow_up = build_key([
        Message("user", "Who is Barack Obama?"), Message("assistant", "The 44th president."),
        Message("user", "How old is he now?"),
    ])  # fmt: skip
    second_stage = stage(VetoingVerifier(Judgement(None, 0.0)))
    for key in (standalone, follow_up):
        chosen = Candidate(entry(1, key.context_hash, E1), 0.91)
        vetoed = second_stage.vetoes(key, [chosen], chosen)
        assert vetoed is (key is standalone), key
