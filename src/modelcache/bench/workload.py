"""The benchmark's data: real questions from a pair file, their embeddings, synthetic filler.

Stored entries are distinct questions of `pairs/scale/en-qqp-full.tsv` (80k Quora question
pairs): first the `text_a` of every pair whose `text_b` is asked, then every other question.
Queries are those `text_b`s (never stored, so every query embeds and searches; about a third
are paraphrases of a stored question). Sizes beyond the real questions are filled with
synthetic rows: text `synthetic question #i` and a random unit vector, which is nearly
orthogonal to every real vector and so never changes which entry a query finds.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modelcache.errors import ConfigurationError
from modelcache.evaluation import load_pairs

__all__ = [
    "DIM",
    "Workload",
    "dataset_path",
    "embed_texts",
    "load_workload",
    "synthetic_vectors",
    "vector_batches",
]

DIM = 512
PAIR_FILE = Path("pairs") / "scale" / "en-qqp-full.tsv"
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "modelcache-bench"
_EMBED_BATCH = 64


@dataclass(frozen=True)
class Workload:
    stored: list[str]
    queries: list[str]
    source: Path

    def texts(self, size: int) -> list[str]:
        """The first `size` stored questions, synthetic ones after the real ones run out."""
        real = self.stored[:size]
        return real + [f"synthetic question #{i}" for i in range(len(real), size)]

    def answer(self, index: int) -> str:
        return f"stored answer number {index}"

    def new_questions(self, tag: str, count: int) -> list[str]:
        """Questions to insert during a run: real ones far from every query, marked as new."""
        return [f"{text} (new in {tag}, #{i})" for i, text in enumerate(self.stored[::-1][:count])]


def dataset_path(given: str | None) -> Path:
    """A pair file given directly, or the QQP file under MODELCACHE_DATASETS / ../shared/datasets."""
    if given:
        path = Path(given)
        return path / PAIR_FILE if path.is_dir() else path
    root = Path(os.environ.get("MODELCACHE_DATASETS", "../shared/datasets"))
    return root / PAIR_FILE


def _clean(text: str) -> str:
    return " ".join(text.split())


def load_workload(path: Path, query_count: int) -> Workload:
    """Stored questions (all distinct) and `query_count` questions to ask, none of them stored."""
    if not path.is_file():
        raise ConfigurationError(
            f"benchmark data not found: {path} (set MODELCACHE_DATASETS or pass --dataset)"
        )
    pairs = [(_clean(a), _clean(b)) for a, b, _ in load_pairs(path)]
    firsts = {a for a, _ in pairs}
    asked = [(a, b) for a, b in pairs if a and b and b not in firsts and a != b]
    asked = list({b: (a, b) for a, b in asked}.values())[:query_count]
    queries = [b for _, b in asked]
    skip = set(queries)
    stored: dict[str, None] = dict.fromkeys(a for a, _ in asked)
    for text in (t for pair in pairs for t in pair):
        if text and text not in skip:
            stored.setdefault(text)
    return Workload(list(stored), queries, path)


def _cache_file(texts: list[str], model: str) -> Path:
    digest = hashlib.sha1("\n".join(texts[:1000]).encode(), usedforsecurity=False).hexdigest()[:16]
    return CACHE_DIR / f"{model}-{digest}.npy"


def embed_texts(texts: list[str], threads: int, log: Callable[[str], None], model: str = "use") -> np.ndarray:
    """Embeddings of the texts by a bundled model (`use`, the vector index's, or `e5`, the
    verifier's second embedding), computed once and kept under ~/.cache/modelcache-bench.

    The cache file holds the embeddings of a prefix of the stored questions; a longer list
    computes only the missing tail.
    """
    from modelcache.embedding import embedder_named

    embedder = embedder_named(model, threads)
    path = _cache_file(texts, model)
    known = np.load(path) if path.exists() else np.zeros((0, embedder.dim), np.float32)
    if len(known) >= len(texts):
        return np.asarray(known[: len(texts)])
    embedder.load()
    parts = [known]
    missing = texts[len(known) :]
    log(f"embedding {len(missing):,} questions with the bundled {model} model (cached in {path.parent})")
    for start in range(0, len(missing), _EMBED_BATCH):
        parts.append(embedder.embed(missing[start : start + _EMBED_BATCH]))
    vectors = np.concatenate(parts).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def synthetic_vectors(start: int, count: int, seed: int = 7, dim: int = DIM) -> np.ndarray:
    """Random unit vectors, the same for the same positions on every run."""
    rng = np.random.default_rng([seed, start])
    vectors = rng.standard_normal((count, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def vector_batches(real: np.ndarray, size: int, batch: int) -> Iterator[tuple[int, np.ndarray]]:
    """(start, vectors) for positions 0..size: real embeddings first, then synthetic ones."""
    dim = real.shape[1]
    for start in range(0, size, batch):
        stop = min(start + batch, size)
        head = real[start:stop]
        tail_from = max(start, len(real))
        tail = synthetic_vectors(tail_from, stop - tail_from, dim=dim) if stop > tail_from else None
        yield start, head if tail is None else np.concatenate([head, tail])
