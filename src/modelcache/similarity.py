"""Deciding a hit: cosine thresholds by text length, context equality, best candidate."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modelcache.messages import CacheKey, text_length
from modelcache.storage.base import Entry

__all__ = ["Candidate", "Thresholds", "choose"]


@dataclass(frozen=True)
class Thresholds:
    """Minimum cosine similarity for a hit, for short and long questions."""

    short: float
    long: float
    cutoff: int

    def for_text(self, text: str) -> float:
        """Questions longer than `cutoff` (CJK characters + words) are long."""
        return self.long if text_length(text) > self.cutoff else self.short

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


def choose(key: CacheKey, candidates: Sequence[Candidate], threshold: float) -> Candidate | None:
    """The best candidate with the query's context, if it reaches the threshold."""
    same_context = [c for c in candidates if c.entry.context_hash == key.context_hash]
    if not same_context:
        return None
    best = max(same_context, key=lambda c: (c.score, c.entry.id))
    return best if best.score >= threshold else None
