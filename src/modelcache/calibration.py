"""Choosing the short/long cosine thresholds from labelled pairs (`modelcache calibrate`).

Each file is replayed with the quality protocol (`modelcache.evaluation`) using the
configured embedder and exact nearest-neighbour search. Queries are split by length class
(`long_text_cutoff`), pooled over files, and for each class a threshold is chosen:

- by default, among thresholds whose F1 (precision of hits vs. hit rate on answerable
  queries) is within `tolerance` (relative) of the best F1, the one with the highest hit
  rate;
- with `target_precision`, the lowest threshold whose precision reaches the target.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelcache.embedding import Embedder, open_embedder
from modelcache.evaluation import load_pairs, metrics, protocol_from_pairs
from modelcache.messages import text_length
from modelcache.settings import Settings

__all__ = ["GRID", "calibrate_files", "choose_threshold", "nearest_scores"]

GRID = np.round(np.arange(0.50, 0.995, 0.01), 2)


def _embed(embedder: Embedder, texts: list[str], batch: int = 256) -> np.ndarray:
    return np.concatenate([embedder.embed(texts[i : i + batch]) for i in range(0, len(texts), batch)])


def nearest_scores(embedder: Embedder, path: Path | str) -> dict[str, np.ndarray]:
    """Per query of a pair file: best score, correctness, answerability and length."""
    protocol = protocol_from_pairs(load_pairs(path))
    stored, queries = _embed(embedder, protocol.stored), _embed(embedder, protocol.queries)
    best = np.empty(len(queries), np.int64)
    score = np.empty(len(queries), np.float32)
    for start in range(0, len(queries), 1024):
        sims = queries[start : start + 1024] @ stored.T
        best[start : start + 1024] = sims.argmax(axis=1)
        score[start : start + 1024] = sims.max(axis=1)
    return {
        "score": score,
        "correct": protocol.correct(best),
        "answerable": protocol.answerable,
        "length": np.array([text_length(q) for q in protocol.queries]),
    }


def choose_threshold(
    data: dict[str, np.ndarray], *, tolerance: float = 0.01, target_precision: float | None = None
) -> dict[str, Any]:
    """Pick a threshold on GRID for one pool of queries (see module docstring)."""
    rows = []
    for threshold in GRID:
        m = metrics(data["score"] >= threshold, data["correct"], data["answerable"])
        p, r = m["precision"], m["hit_rate"]
        rows.append({"threshold": float(threshold), **m, "f1": 2 * p * r / (p + r) if p + r else 0.0})
    if target_precision is not None:
        reaching = [row for row in rows if row["precision"] >= target_precision]
        chosen = reaching[0] if reaching else rows[-1]
    else:
        best_f1 = max(row["f1"] for row in rows)
        near = [row for row in rows if row["f1"] >= best_f1 * (1 - tolerance)]
        chosen = max(near, key=lambda row: (row["hit_rate"], row["threshold"]))
    return {"chosen": chosen, "curve": rows}


def calibrate_files(
    settings: Settings,
    paths: Sequence[str],
    *,
    tolerance: float = 0.01,
    target_precision: float | None = None,
    embedder: Embedder | None = None,
) -> dict[str, Any]:
    """Thresholds for short and long questions from the pooled pair files, with figures."""
    model = embedder or open_embedder(settings)
    model.load()
    per_file = {str(p): nearest_scores(model, p) for p in paths}
    pooled = {
        k: np.concatenate([d[k] for d in per_file.values()])
        for k in ("score", "correct", "answerable", "length")
    }
    report: dict[str, Any] = {
        "embedder": settings.embedder,
        "long_text_cutoff": settings.long_text_cutoff,
        "rule": f"target precision {target_precision}"
        if target_precision
        else f"F1 within {tolerance:.0%} of best, highest hit rate",
        "files": list(per_file),
    }
    for name, mask in (
        ("short", pooled["length"] <= settings.long_text_cutoff),
        ("long", pooled["length"] > settings.long_text_cutoff),
    ):
        subset = {k: v[mask] for k, v in pooled.items()}
        result = choose_threshold(subset, tolerance=tolerance, target_precision=target_precision)
        report[f"threshold_{name}"] = result["chosen"]["threshold"]
        report[name] = {"queries": int(mask.sum()), "chosen": result["chosen"]}
    report["per_file"] = {}
    for path, d in per_file.items():
        limit = np.where(
            d["length"] > settings.long_text_cutoff, report["threshold_long"], report["threshold_short"]
        )
        report["per_file"][path] = metrics(d["score"] >= limit, d["correct"], d["answerable"])
    return report
