"""An LLM's input-embedding layer: the mean of a text's token embeddings (numpy at run time).

Options: `path`, the token-embedding matrix (a .npy of shape (vocabulary, dim), a
.safetensors checkpoint, or a sharded checkpoint's .safetensors.index.json: only the rows
looked up are read, see `matrix.py`); `tensor`, its name in the checkpoint (default: found
among the usual names, e.g. `model.embed_tokens.weight`); `tokenizer`, the model's
tokenizer.json (default: beside `path`).

No special tokens are added (a BOS row would be the same in every vector). Every token
counts: there is no length limit. A bag of token embeddings knows no word order or context,
so it is a cheap, weak signal; it suits a cache that only needs near-duplicate questions.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from modelcache.embedding.base import LazyEmbedder, normalize_rows
from modelcache.embedding.matrix import EmbeddingMatrix, open_matrix
from modelcache.embedding.options import Options
from modelcache.embedding.tokenizer import load_tokenizer
from modelcache.errors import ConfigurationError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = ["LlmEmbedder"]


class LlmEmbedder(LazyEmbedder[tuple["Tokenizer", EmbeddingMatrix]]):
    name = "llm"

    def __init__(self, path: Path, *, tokenizer: Path | None = None, tensor: str | None = None):
        self.path = path
        self.tokenizer_path = tokenizer or path.parent / "tokenizer.json"
        self.tensor = tensor
        self.dim = 0

    @classmethod
    def from_options(cls, threads: int, **values: Any) -> LlmEmbedder:
        options = Options(cls.name, values)
        embedder = cls(
            options.path("path"),
            tokenizer=options.optional_path("tokenizer"),
            tensor=options.text("tensor", None),
        )
        options.finish()
        return embedder

    def _load_model(self) -> tuple[Tokenizer, EmbeddingMatrix]:
        matrix = open_matrix(self.path, self.tensor)
        tokenizer = load_tokenizer(self.tokenizer_path, "llm")
        tokenizer.no_truncation()
        tokenizer.no_padding()
        vocabulary, self.dim = matrix.shape
        if tokenizer.get_vocab_size(with_added_tokens=True) > vocabulary:
            raise ConfigurationError(
                f"llm embedder: tokenizer {self.tokenizer_path} has more tokens than the "
                f"{vocabulary} rows of {self.path}: they do not belong together"
            )
        return tokenizer, matrix

    def _embed(self, model: tuple[Tokenizer, EmbeddingMatrix], texts: Sequence[str]) -> np.ndarray:
        tokenizer, matrix = model
        vectors = np.zeros((len(texts), self.dim), np.float32)
        encodings = tokenizer.encode_batch(list(texts), add_special_tokens=False)
        for row, encoding in enumerate(encodings):
            if encoding.ids:
                vectors[row] = matrix.rows(np.asarray(encoding.ids, dtype=np.int64)).mean(axis=0)
        return normalize_rows(vectors)
