"""The embedding contract, and a base for embedders that load their model once."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Generic, Protocol, TypeVar, runtime_checkable

import numpy as np

__all__ = ["Embedder", "LazyEmbedder", "normalize_rows"]

M = TypeVar("M")


@runtime_checkable
class Embedder(Protocol):
    """Texts -> unit vectors. `load()` is the explicit start-up step (weights, threads)."""

    name: str
    dim: int

    def load(self) -> None: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """float32 array of shape (len(texts), dim), each row L2-normalised."""


class LazyEmbedder(ABC, Generic[M]):
    """`load` and `embed` for an embedder whose model is loaded once: by `load()`, or else
    by the first `embed()`. Empty input gives a (0, dim) array, after loading (which may set
    `dim`).

    A subclass loads its model in `_load_model` and embeds a non-empty list in `_embed`.
    """

    dim: int
    _model: M | None = None

    def load(self) -> None:
        self._loaded()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        model = self._loaded()
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return self._embed(model, texts)

    def _loaded(self) -> M:
        if self._model is None:
            self._model = self._load_model()
        return self._model

    @abstractmethod
    def _load_model(self) -> M:
        """Load the model (and set `dim`, where the model decides it)."""

    @abstractmethod
    def _embed(self, model: M, texts: Sequence[str]) -> np.ndarray:
        """Unit rows for `texts`, never empty."""


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """float32 copy with unit-length rows (zero rows stay zero)."""
    array = np.asarray(vectors, dtype=np.float32)
    if not array.size:
        return array.reshape(len(array), array.shape[-1] if array.ndim > 1 else 0).copy()
    out = array.reshape(len(array), -1).copy()
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    np.divide(out, norms, out=out, where=norms > 0)
    return out
