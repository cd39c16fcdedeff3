"""The quality protocol shared by calibration and the quality benchmark.

Store every distinct `text_a`, ask every `text_b`. Texts joined by a label-1 pair
(transitively) or identical form one meaning cluster. A hit is correct when the returned
entry is in the query's cluster; a query is answerable when some stored text is in its
cluster. Reported: precision of hits, hit rate on answerable queries, false-hit rate on
unanswerable ones.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["PairProtocol", "cluster_numbers", "load_pairs", "metrics", "protocol_from_pairs"]


def load_pairs(path: Path | str) -> list[tuple[str, str, int]]:
    """Rows of a `text_a<TAB>text_b<TAB>label` file with a header line."""
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(reader, None)
        return [(row[0], row[1], int(row[2])) for row in reader if len(row) >= 3]


def _clean(text: str) -> str:
    return " ".join(text.split())


@dataclass(frozen=True)
class PairProtocol:
    stored: list[str]
    queries: list[str]
    stored_cluster: np.ndarray
    query_cluster: np.ndarray

    @property
    def answerable(self) -> np.ndarray:
        return np.asarray(np.isin(self.query_cluster, self.stored_cluster), dtype=bool)

    def correct(self, returned: np.ndarray) -> np.ndarray:
        """For each query, whether the stored text at index `returned` is in its cluster."""
        return np.asarray(self.stored_cluster[returned] == self.query_cluster, dtype=bool)


def protocol_from_pairs(pairs: Sequence[tuple[str, str, int]]) -> PairProtocol:
    stored = sorted({_clean(a) for a, _, _ in pairs})
    queries = [_clean(b) for _, b, _ in pairs]
    links = [(a, b) for a, b, label in pairs if label == 1]
    stored_cluster, query_cluster = cluster_numbers(links, stored, queries)
    return PairProtocol(stored, queries, stored_cluster, query_cluster)


def cluster_numbers(links: Iterable[tuple[str, str]], *groups: Sequence[str]) -> list[np.ndarray]:
    """Texts joined by `links` (transitively) or equal form one cluster (white space folded).

    Returns, for each group of texts, its texts' cluster numbers: numbered across all the
    groups, in order of first appearance.
    """
    parent: dict[str, str] = {}

    def find(text: str) -> str:
        parent.setdefault(text, text)
        while parent[text] != text:
            parent[text] = parent[parent[text]]
            text = parent[text]
        return text

    for a, b in links:
        parent[find(_clean(a))] = find(_clean(b))
    numbers: dict[str, int] = {}
    return [np.array([numbers.setdefault(find(_clean(t)), len(numbers)) for t in group]) for group in groups]


def metrics(hit: np.ndarray, correct: np.ndarray, answerable: np.ndarray) -> dict[str, float | int]:
    """Precision of hits, hit rate on answerable queries, false-hit rate on unanswerable ones."""
    good = hit & correct
    return {
        "precision": float(good.sum() / max(hit.sum(), 1)),
        "hit_rate": float((good & answerable).sum() / max(answerable.sum(), 1)),
        "false_hit_rate": float((hit & ~answerable).sum() / max((~answerable).sum(), 1)),
        "hits": int(hit.sum()),
        "queries": len(hit),
    }
