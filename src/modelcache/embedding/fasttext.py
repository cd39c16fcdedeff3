"""A local fastText model (.bin): the sentence vector is fastText's own mean of word vectors.

Options: `path`, the .bin file (from `fasttext.train_unsupervised` / `save_model`, or a
published cc.*.bin). Sub-word n-grams give vectors to words the model never saw; a text of
no words at all (empty or only spaces) gets a zero vector. fastText reads one line at a
time, so line breaks are treated as spaces. There is no token limit: every word counts.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelcache.embedding.base import LazyEmbedder, normalize_rows
from modelcache.embedding.options import Options, require_file
from modelcache.errors import ConfigurationError, MissingDependency

__all__ = ["FastTextEmbedder"]


class FastTextEmbedder(LazyEmbedder[Any]):
    name = "fasttext"

    def __init__(self, path: Path):
        self.path = path
        self.dim = 0

    @classmethod
    def from_options(cls, threads: int, **values: Any) -> FastTextEmbedder:
        options = Options(cls.name, values)
        embedder = cls(options.path("path"))
        options.finish()
        return embedder

    def _load_model(self) -> Any:
        require_file(self.path, "fasttext model file")
        try:
            import fasttext
        except ImportError as exc:
            raise MissingDependency("fasttext-wheel", "fasttext") from exc
        try:
            with contextlib.redirect_stderr(io.StringIO()):  # load_model prints an API notice
                model = fasttext.load_model(str(self.path))
        except ValueError as exc:
            raise ConfigurationError(f"cannot read fasttext model {self.path}: {exc}") from exc
        self.dim = int(model.get_dimension())
        return model

    def _embed(self, model: Any, texts: Sequence[str]) -> np.ndarray:
        vectors = np.zeros((len(texts), self.dim), np.float32)
        for row, text in enumerate(texts):
            vectors[row] = model.get_sentence_vector(" ".join(text.splitlines()))
        return normalize_rows(vectors)
