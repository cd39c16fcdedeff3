"""A gradient-boosted tree ensemble evaluated with numpy alone.

The trees are stored flat, all of them in one set of node arrays: node `n` sends a row to
`left[n]` when `row[feature[n]] <= threshold[n]`, else to `right[n]`. A leaf points to
itself on both sides with an infinite threshold, so every row simply takes `depth` steps
through every tree at once (a few vectorised gathers per step) and ends on its leaves. Trees
are walked deepest first, so step `s` only touches the trees deeper than `s`. The raw score
is `base + sum(value[leaf])` over the trees; the probability is its logistic.

Inputs must be finite (NaN would always go right). The file is an `.npz` with the arrays
`feature` (int32), `threshold` (float64), `left`, `right` (int32), `value` (float64),
`roots` (int32) and the scalars `depth`, `base`, `n_features`; the training script writes
it from a LightGBM model (`scripts/train_verifier.py`), but any binary GBDT with `<=`
splits fits.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from modelcache.errors import ConfigurationError

__all__ = ["TreeEnsemble", "load_ensemble"]

_ARRAYS = ("feature", "threshold", "left", "right", "value", "roots")


@dataclass(frozen=True)
class TreeEnsemble:
    """Flat node arrays of a binary-classification tree ensemble (see module docstring)."""

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    roots: np.ndarray
    depth: int
    base: float
    n_features: int

    def __post_init__(self) -> None:
        nodes = len(self.feature)
        sizes = {len(self.threshold), len(self.left), len(self.right), len(self.value)}
        if sizes != {nodes}:
            raise ConfigurationError("tree arrays must all have one entry per node")
        for name in ("left", "right", "roots"):
            links = getattr(self, name)
            if len(links) and (links.min() < 0 or links.max() >= nodes):
                raise ConfigurationError(f"tree array {name!r} points outside the nodes")
        if len(self.feature) and (self.feature.min() < 0 or self.feature.max() >= self.n_features):
            raise ConfigurationError("tree array 'feature' names a feature outside the input")

    @cached_property
    def _plan(self) -> tuple[np.ndarray, list[int], np.ndarray]:
        """Roots deepest tree first, how many trees are still walking at each step, and the
        children as one array: `children[2 * n]` is the right child, `children[2 * n + 1]` the
        left one (so `2 * n + (x <= threshold)` picks the child)."""
        depths = np.array([self._tree_depth(int(root)) for root in self.roots], dtype=np.int64)
        order = np.argsort(-depths, kind="stable")
        walking = [int((depths > step).sum()) for step in range(self.depth)]
        children = np.column_stack([self.right, self.left]).reshape(-1)
        return self.roots[order], walking, children

    def _tree_depth(self, root: int) -> int:
        deepest, stack = 0, [(root, 0)]
        while stack:
            node, level = stack.pop()
            if self.left[node] == node and self.right[node] == node:
                deepest = max(deepest, level)
            else:
                stack += [(int(self.left[node]), level + 1), (int(self.right[node]), level + 1)]
        return deepest

    def raw_scores(self, rows: np.ndarray) -> np.ndarray:
        """Log-odds for each row of a (n, n_features) array."""
        matrix = np.asarray(rows, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[1] != self.n_features:
            raise ValueError(f"expected rows of {self.n_features} features, got shape {matrix.shape}")
        roots, walking, children = self._plan
        node = np.broadcast_to(roots, (len(matrix), len(roots))).copy()
        flat = matrix.ravel()
        row_start = (np.arange(len(matrix)) * self.n_features)[:, None]
        feature, threshold = self.feature, self.threshold
        for trees in walking:
            active = node[:, :trees]
            values = flat.take(row_start + feature.take(active))
            node[:, :trees] = children.take(2 * active + (values <= threshold.take(active)))
        scores: np.ndarray = self.value[node].sum(axis=1) + self.base
        return scores

    def probabilities(self, rows: np.ndarray) -> np.ndarray:
        """Probability of the positive class for each row."""
        scores = self.raw_scores(rows)
        result: np.ndarray = 1.0 / (1.0 + np.exp(-scores))
        return result

    def save(self, path: Path | str) -> None:
        """Write the `.npz` file that `load_ensemble` reads."""
        np.savez_compressed(
            path,
            **{name: getattr(self, name) for name in _ARRAYS},
            depth=np.int32(self.depth),
            base=np.float64(self.base),
            n_features=np.int32(self.n_features),
        )


def load_ensemble(path: Path | str) -> TreeEnsemble:
    """Read a tree ensemble from an `.npz` file (no pickles)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in _ARRAYS}
            scalars = (int(data["depth"]), float(data["base"]), int(data["n_features"]))
    except (OSError, KeyError, ValueError) as exc:
        raise ConfigurationError(f"cannot read tree ensemble {path}: {exc}") from exc
    return TreeEnsemble(
        feature=arrays["feature"].astype(np.int32),
        threshold=arrays["threshold"].astype(np.float64),
        left=arrays["left"].astype(np.int32),
        right=arrays["right"].astype(np.int32),
        value=arrays["value"].astype(np.float64),
        roots=arrays["roots"].astype(np.int32),
        depth=scalars[0],
        base=scalars[1],
        n_features=scalars[2],
    )
