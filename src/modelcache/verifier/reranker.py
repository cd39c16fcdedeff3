"""A cross-encoder (reranker) from a local model directory as the second stage.

For teams that have a pair classifier of their own (a downloaded bge-reranker, a fine-tuned
BERT cross-encoder): it reads the query and each candidate question together and says how
likely they mean the same. It replaces the built-in verifier when `reranker` is set.

The directory is what `save_pretrained` leaves for a sequence-classification model (config,
weights, tokenizer). Loading is local only and never runs code from the directory. A model
with one output is read as a logit (sigmoid); with two or more, the last class is "same
meaning" (softmax). Each pair is cut to the model's token limit, longest side first: a
reranker judges questions, which fit; a longer one is judged on its beginning.

Candidates below `min_cosine` (a cheap recall floor) are not shown to the model, so a clear
miss costs no forward pass; the rest go in one batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelcache.embedding.huggingface import import_frameworks, model_token_limit
from modelcache.embedding.options import require_dir, require_file
from modelcache.errors import ConfigurationError
from modelcache.messages import CacheKey
from modelcache.similarity import Candidate, same_context

__all__ = ["CrossEncoderReranker", "RerankStage"]


class CrossEncoderReranker:
    """Probabilities that (query, candidate) pairs mean the same, by a local cross-encoder."""

    def __init__(self, path: Path | str, *, threads: int = 1):
        self.path = Path(path)
        self.threads = threads
        self._torch: Any = None
        self._tokenizer: Any = None
        self._model: Any = None
        self._limit = 0

    def load(self) -> None:
        if self._model is not None:
            return
        require_dir(self.path, "reranker model directory")
        require_file(self.path / "config.json", "reranker model config")
        torch, transformers = import_frameworks()
        torch.set_num_threads(self.threads)
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(self.path, local_files_only=True)
            model = transformers.AutoModelForSequenceClassification.from_pretrained(
                self.path, local_files_only=True
            ).eval()
        except (OSError, ValueError) as exc:  # unreadable files, not a classification model
            raise ConfigurationError(f"reranker: cannot load {self.path}: {exc}") from exc
        self._limit = model_token_limit(tokenizer.model_max_length, model.config)
        self._torch, self._tokenizer, self._model = torch, tokenizer, model

    def scores(self, query: str, candidates: Sequence[str]) -> np.ndarray:
        """One probability in [0, 1] per candidate."""
        self.load()
        if not candidates:
            return np.zeros(0, np.float64)
        batch = self._tokenizer(
            [query] * len(candidates),
            list(candidates),
            padding=True,
            truncation="longest_first",
            max_length=self._limit,
            return_tensors="pt",
        )
        with self._torch.inference_mode():
            logits = self._model(**batch).logits.float().numpy().astype(np.float64)
        if logits.shape[1] == 1:
            return np.asarray(1 / (1 + np.exp(-logits[:, 0])))
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return np.asarray(shifted[:, -1] / shifted.sum(axis=1))


class RerankStage:
    """The cache's second stage with a cross-encoder deciding (same calls as `SecondStage`)."""

    def __init__(self, reranker: CrossEncoderReranker, *, threshold: float = 0.5, min_cosine: float = 0.5):
        self.reranker = reranker
        self.threshold = threshold
        self.min_cosine = min_cosine

    def load(self) -> None:
        self.reranker.load()

    def close(self) -> None:
        """Nothing to release: the model lives as long as the process."""

    def embed_for_storage(self, questions: Sequence[str]) -> list[np.ndarray | None]:
        return [None] * len(questions)

    def choose(self, key: CacheKey, candidates: Sequence[Candidate], floor: float | None) -> Candidate | None:
        """The candidate the reranker finds most likely the same, if it reaches the threshold.

        `floor`: a cosine the user asked for (tenant or query threshold); it raises the recall floor.
        """
        least = self.min_cosine if floor is None else max(self.min_cosine, floor)
        shown = [c for c in same_context(key, candidates) if c.score >= least]
        if not shown:
            return None
        probabilities = self.reranker.scores(key.question, [c.entry.question for c in shown])
        best = int(probabilities.argmax())
        return shown[best] if probabilities[best] >= self.threshold else None
