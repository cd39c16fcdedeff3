"""The embedding contract."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["Embedder", "normalize_rows"]


@runtime_checkable
class Embedder(Protocol):
    """Texts -> unit vectors. `load()` is the explicit start-up step (weights, threads)."""

    name: str
    dim: int

    def load(self) -> None: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """float32 array of shape (len(texts), dim), each row L2-normalised."""


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """float32 copy with unit-length rows (zero rows stay zero)."""
    array = np.asarray(vectors, dtype=np.float32)
    if not array.size:
        return array.reshape(len(array), array.shape[-1] if array.ndim > 1 else 0).copy()
    out = array.reshape(len(array), -1).copy()
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    np.divide(out, norms, out=out, where=norms > 0)
    return out
