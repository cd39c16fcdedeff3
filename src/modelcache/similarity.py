"""Deciding a hit: cosine thresholds by text length, context equality, best candidate."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modelcache.messages import CacheKey, text_length
from modelcache.storage.base import Entry

__all__ = ["Candidate", "Thresholds", "choose", "same_context"]


@dataclass(frozen=True)
class Thresholds:
    """Minimum cosine similarity for a hit, for short and long questions."""

    short: float
    long: float
    cutoff: int

    def is_long(self, text: str) -> bool:
        """Questions longer than `cutoff` (CJK characters + words) are long."""
        return text_length(text) > self.cutoff

    def for_text(self, text: str) -> float:
        return self.long if self.is_long(text) else self.short

    def with_overrides(self, overrides: Mapping[str, Any]) -> Thresholds:
        return Thresholds(
            short=float(overrides.get("threshold_short", self.short)),
            long=float(overrides.get("threshold_long", self.long)),
            cutoff=int(overrides.get("long_text_cutoff", self.cutoff)),
        )


@dataclass(frozen=True)
class Candidate:
    entry: Entry
    score: float


def same_context(key: CacheKey, candidates: Sequence[Candidate]) -> list[Candidate]:
    """The candidates stored under the query's context (system prompt, earlier turns)."""
    return [c for c in candidates if c.entry.context_hash == key.context_hash]


def choose(key: CacheKey, candidates: Sequence[Candidate], threshold: float) -> Candidate | None:
    """The best candidate with the query's context, if it reaches the threshold."""
    same = same_context(key, candidates)
    if not same:
        return None
    best = max(same, key=lambda c: (c.score, c.entry.id))
    return best if best.score >= threshold else None
