"""Features of one candidate's cosine similarity among all candidates of a query.

For the cosines `s` of a query to its k candidates (one embedding model), each candidate
gets, in `COSINE_FEATURES` order:

- `cos`: its own cosine `s[i]`;
- `lead`: `s[i]` minus the best cosine among the other candidates (positive only for the
  best one, where it is the margin over the runner-up; a lone candidate is compared with
  cosine 0, an unrelated text);
- `rank`: 0 for the best, 1 for the next, ... (ties keep the given order).

and two features of the query's neighbourhood, the same for all its candidates
(`NEIGHBOURHOOD_FEATURES`), over the best `NEIGHBOURHOOD_K` cosines, missing ones (a tenant
with fewer entries, or candidates dropped for another context) counted as 0:

- `kth`: the `NEIGHBOURHOOD_K`-th best cosine: high when the stored questions near the query
  are many, where the nearest one is less likely to be the same question;
- `mean`: the mean of the best `NEIGHBOURHOOD_K` cosines.

The verifier uses them for both models: the first (the vector index's model, cosines from
the index search) and the second (a stored second embedding per entry), when given.
"""

from __future__ import annotations

import numpy as np

__all__ = ["COSINE_FEATURES", "NEIGHBOURHOOD_FEATURES", "NEIGHBOURHOOD_K", "cosine_features"]

COSINE_FEATURES: tuple[str, ...] = ("cos", "lead", "rank", "kth", "mean")
NEIGHBOURHOOD_FEATURES: tuple[str, ...] = ("kth", "mean")
NEIGHBOURHOOD_K = 10


def cosine_features(scores: np.ndarray) -> np.ndarray:
    """(k, 5) float64 array: `COSINE_FEATURES` for each of the k cosines."""
    cos = np.asarray(scores, dtype=np.float64).reshape(-1)
    k = len(cos)
    if k == 0:
        return np.zeros((0, len(COSINE_FEATURES)), np.float64)
    order = np.argsort(-cos, kind="stable")
    rank = np.empty(k, np.float64)
    rank[order] = np.arange(k, dtype=np.float64)
    best = cos[order[0]]
    runner_up = cos[order[1]] if k > 1 else 0.0
    others_best = np.where(rank == 0, runner_up, best)
    top = np.zeros(NEIGHBOURHOOD_K)
    kept = min(k, NEIGHBOURHOOD_K)
    top[:kept] = cos[order[:kept]]
    neighbourhood = np.broadcast_to([top[-1], top.mean()], (k, 2))
    return np.column_stack([cos, cos - others_best, rank, neighbourhood])
