"""The second stage as the cache runs it: candidates in, one entry (or none) out.

`SecondStage` owns the `Verifier` and, in the `default` preset, the second embedding model
(e5-small) whose vectors are stored with each row. Per query:

1. candidates with another context (system prompt, earlier turns) are dropped;
2. the verifier's fast look decides most queries from lexical features and the first
   model's cosines (no model runs for a clear miss);
3. only an *unsure* query is embedded by the second model, and judged again with the
   cosines to the candidates' stored second embeddings. Concurrent unsure queries share one
   batched call. A candidate stored without a second embedding (a row written by the `fast`
   preset or before the verifier existed) makes the fast look decide alone.

Thresholds a user set explicitly (per tenant or per query) stay a floor on the cosine of the
chosen candidate; the global cosine defaults do not apply, the verifier replaces them.

In a small tenant the `default` preset lets the cosine thresholds choose and asks `vetoes`
whether the verifier is confident the choice is wrong (full model when every candidate has
its e5 vector, else the fast look): one e5 call per cosine hit, none per miss. A follow-up
(a question after earlier user turns) is never vetoed: the veto levels were chosen on
standalone questions, and a follow-up ("How old is he now?") is not one; its candidate
already shares the whole conversation, word for word.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from modelcache.embedding import BatchingEmbedder, Embedder
from modelcache.messages import CacheKey
from modelcache.similarity import Candidate, same_context
from modelcache.verifier.verifier import Judgement, Verifier

__all__ = ["DecisionStage", "SecondStage"]

log = logging.getLogger(__name__)


class DecisionStage(Protocol):
    """What the cache asks of a second stage (the verifier, or a reranker)."""

    def load(self) -> None: ...

    def close(self) -> None: ...

    def embed_for_storage(self, questions: Sequence[str]) -> list[np.ndarray | None]:
        """Anything to store with new rows for later decisions (None where nothing)."""

    def choose(self, key: CacheKey, candidates: Sequence[Candidate], floor: float | None) -> Candidate | None:
        """The candidate that means the same as the query, or None; `floor`: a minimum cosine."""


class SecondStage:
    """The verifier plus, in cascade mode, the second embedding model."""

    def __init__(
        self,
        verifier: Verifier,
        second_model: Embedder | None = None,
        *,
        max_batch: int = 32,
        max_wait_s: float = 0.0,
    ):
        if verifier.mode == "cascade" and second_model is None:
            raise ValueError("the cascade needs the second embedding model")
        self.verifier = verifier
        self.second: BatchingEmbedder | None = None
        if second_model is not None and verifier.mode == "cascade":
            self.second = BatchingEmbedder(second_model, max_batch=max_batch, max_wait_s=max_wait_s)

    def load(self) -> None:
        self.verifier.load()
        if self.second is not None:
            self.second.load()

    def close(self) -> None:
        if self.second is not None:
            self.second.close()

    def embed_for_storage(self, questions: Sequence[str]) -> list[np.ndarray | None]:
        """The second embeddings to store with new rows (None each without a second model)."""
        if self.second is None or not questions:
            return [None] * len(questions)
        return list(self.second.embed(list(questions)))

    def choose(self, key: CacheKey, candidates: Sequence[Candidate], floor: float | None) -> Candidate | None:
        """The candidate that means the same as the query, if any.

        `floor`: a minimum cosine the user asked for (tenant or query threshold), or None.
        """
        same, questions, cosines = _ranked(key, candidates)
        if not same:
            return None
        judgement = self.verifier.judge(key.question, questions, cosines)
        if judgement.unsure:
            judgement = self._second_look(key.question, same, questions, cosines)
        if judgement.index is None:
            return None
        chosen = same[judgement.index]
        if floor is not None and chosen.score < floor:
            return None
        return chosen

    def vetoes(self, key: CacheKey, candidates: Sequence[Candidate], chosen: Candidate) -> bool:
        """True when the verifier rejects `chosen`, a candidate the cosine thresholds picked:
        the fast look keeps it when sure, else the full model (e5) decides against the veto
        level, or the fast look alone where a candidate has no stored e5 vector. Never for a
        follow-up (see the module docstring)."""
        if any(message.role == "user" for message in key.context):
            return False
        levels = self.verifier.veto(key.question)
        if levels.full <= 0.0 and levels.fast <= 0.0:
            return False
        same, questions, cosines = _ranked(key, candidates)
        index = next((i for i, c in enumerate(same) if c.entry.id == chosen.entry.id), None)
        if index is None:
            return False
        fast = float(self.verifier.score(key.question, questions, cosines)[index])
        if fast >= levels.sure:
            return False
        second_cosines = self._second_cosines(key.question, same)
        if second_cosines is None:
            return fast < levels.fast
        return self.verifier.vetoes(key.question, questions, cosines, index, second_cosines)

    def _second_cosines(self, question: str, same: Sequence[Candidate]) -> np.ndarray | None:
        """The query's e5 cosines to the candidates' stored e5 vectors; None if any is missing."""
        stored = [c.entry.second_embedding for c in same]
        if self.second is None or any(v is None or v.shape != (self.second.dim,) for v in stored):
            return None
        query = self.second.embed([question])[0]
        return np.stack(stored) @ query  # type: ignore[arg-type,no-any-return]

    def _second_look(
        self, question: str, same: Sequence[Candidate], questions: list[str], cosines: np.ndarray
    ) -> Judgement:
        second_cosines = self._second_cosines(question, same)
        if second_cosines is None:
            return self.verifier.judge(question, questions, cosines, mode="fast")
        return self.verifier.judge(question, questions, cosines, second_cosines)


def _ranked(key: CacheKey, candidates: Sequence[Candidate]) -> tuple[list[Candidate], list[str], np.ndarray]:
    """The same-context candidates, best cosine first (ties by id), their questions and cosines:
    what the verifier is shown."""
    same = same_context(key, candidates)
    same.sort(key=lambda c: (-c.score, c.entry.id))
    return same, [c.entry.question for c in same], np.array([c.score for c in same], dtype=np.float64)
