"""Train the verifier on pairs/dev only, print cross-validated dev figures, write the weights.

    .venv/bin/python scripts/train_verifier.py [--datasets DIR] [--out DIR] [--folds 5]

Steps (see calibration/verifier.md for the why):

1. Replay every dev pair file with the quality protocol (`modelcache.evaluation`): store every
   distinct `text_a`, ask every `text_b`. A query whose normalised text equals a stored one is
   an exact hit (the cache's key lookup) and is left out. Every other query gets the `TOP_K`
   stored texts nearest by USE (the vector index's model), with their USE and e5 cosines; a
   candidate is labelled 1 when it is in the query's meaning cluster. Each file is also
   replayed *mirrored* (store every `text_b`, ask every `text_a`): more training rows, in the
   same cross-validation groups; figures and operating points come from the forward replay.
2. Per language (en: QQP + GPTCache mock; zh: LCQMC + PAWS-X), two LightGBM models
   over the candidate rows: *fast* (lexical + USE cosine features) and *full* (+ e5 ones).
   Half of the queries also give rows for a random subset of their candidates, featurised
   as if only those had been found, so the model works with fewer than k candidates (small
   tenants, candidates of another context filtered out).
3. Out-of-fold probabilities from grouped K-fold (groups: connected components of the pair
   graph, so no text of a held-out query was seen in training), then per language and length
   class: the full-model threshold, the fast-model threshold of the `fast` preset, and the
   cascade band of the fast model, all on these out-of-fold figures.
4. Final models on all dev rows, exported to numpy tree files + `verifier.json`.

Embeddings are cached under ~/.cache/modelcache-verifier (never in the repository). Seeds
are fixed; LightGBM runs deterministic.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import sys
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelcache.embedding import Embedder
from modelcache.embedding.e5 import E5Embedder
from modelcache.embedding.use import UseEmbedder
from modelcache.evaluation import PairProtocol, cluster_numbers, load_pairs, metrics, protocol_from_pairs
from modelcache.messages import normalize_text, text_length
from modelcache.verifier.features import Profile, detect_language, profile
from modelcache.verifier.trees import TreeEnsemble
from modelcache.verifier.verifier import FAST_FEATURES, FULL_FEATURES, WEIGHTS_DIR, feature_rows

REPO = Path(__file__).resolve().parent.parent
CACHE = Path.home() / ".cache" / "modelcache-verifier"
TOP_K = 10
LONG_CUTOFF = 20
SEED = 7
#: Share of queries that also give a training example with a random subset of their candidates.
SUBSET_SHARE = 0.5
#: Share of queries that also give a sparse-tenant example: their best 1 to SPARSE_KEEP
#: candidates among random far-away stored texts (a small tenant about other things).
SPARSE_SHARE = 0.5
SPARSE_KEEP = 2
#: Questions shorter than this (characters) are not trained on, per file: in zh-lcqmc-dev no
#: pair with a `text_b` under 10 characters is labelled 1 (1,268 pairs, all label 0: a sampling
#: artifact of that file), which would teach the model that short Chinese questions never match.
MIN_TRAINING_LENGTH = {"zh-lcqmc-dev": 10}
#: The files trained on, per language. zh-afqmc-dev is not: its precision stays near 0.1 at
#: every threshold (its pairs barely count as the same question), and it holds nearly all the
#: zh-dev questions under 10 characters (1,055 of 1,067 once LCQMC's are left out), so a model
#: trained on it judges every short question by AFQMC's base rate. Measured on dev
#: (calibration/verifier.md, "Sixth look"): with it, LCQMC questions of 10-13 characters that
#: were never trained on get hit rate 0.317 at the threshold chosen on longer ones, 0.475
#: without its short rows; in cross-validation it also costs LCQMC hit rate at equal precision.
FILES = {
    "en": ("en-qqp-dev", "en-gptcache-mock"),
    "zh": ("zh-lcqmc-dev", "zh-pawsx-dev"),
}
#: Files whose precision the operating points are chosen on.
SELECT_ON = ("en-qqp-dev", "en-gptcache-mock", "zh-lcqmc-dev", "zh-pawsx-dev")
#: Dev precision each (language, length class) aims at, above the acceptance targets on test
#: (en 0.80, zh short 0.92 / 0.70, zh long 0.80) by a margin for the dev -> test shift.
TARGET_PRECISION = {("en", False): 0.85, ("en", True): 0.85, ("zh", False): 0.93, ("zh", True): 0.88}
#: Languages whose two length classes are held to their (equal) target together: the pair of
#: thresholds with the most right hits whose pooled precision reaches it. Per class, the
#: GPTCache mock's long questions (nearly all right) let QQP's long ones through at a
#: threshold of 0.25; held together, QQP-dev gets 0.03 more hit rate at the same precision.
POOLED_CLASSES = ("en",)
#: How far the cascade may fall below the full model on dev (precision, hit rate).
CASCADE_TOLERANCE = (0.003, 0.005)
FLOOR_GRID = np.round(np.arange(0.40, 0.81, 0.02), 2)
GRID = np.round(np.arange(0.05, 0.991, 0.01), 2)
N_FAST = len(FAST_FEATURES)
PARAMS: dict[str, Any] = {
    "objective": "binary",
    "learning_rate": 0.06,
    "num_leaves": 31,
    "min_data_in_leaf": 40,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "seed": SEED,
    "deterministic": True,
    "force_row_wise": True,
    "num_threads": 2,
    "verbose": -1,
}
ROUNDS = 300


# -- data -----------------------------------------------------------------------------------


def datasets_dir(argument: str | None) -> Path:
    """--datasets, else $MODELCACHE_DATASETS, else ../shared/datasets from the repo root."""
    return Path(argument or os.environ.get("MODELCACHE_DATASETS") or REPO.parent / "shared" / "datasets")


def embed_cached(name: str, file_stem: str, texts: list[str]) -> np.ndarray:
    """Embeddings of `texts` by model `name` ('use' or 'e5'), from the cache when there."""
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    path = CACHE / f"{name}-{file_stem}-{digest}.npy"
    if path.exists():
        return np.load(path)
    print(f"embedding {len(texts)} texts of {file_stem} with {name} ...", file=sys.stderr, flush=True)
    model: Embedder = UseEmbedder(threads=2) if name == "use" else E5Embedder(threads=2)
    model.load()
    order = np.argsort([len(t) for t in texts], kind="stable")
    vectors = np.zeros((len(texts), model.dim), np.float32)
    for start in range(0, len(texts), 16):
        rows = order[start : start + 16]
        vectors[rows] = model.embed([texts[i] for i in rows])
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


@dataclass
class Replay:
    """One pair file replayed: per query, the exact hit or the top-k candidates."""

    name: str
    protocol: PairProtocol
    exact: np.ndarray  # (n,) stored index of an exact hit, or -1
    candidates: np.ndarray  # (n, k) stored indexes, best first by USE
    first: np.ndarray  # (n, k) USE cosines
    second: np.ndarray  # (n, k) e5 cosines
    correct: np.ndarray  # (n, k) candidate in the query's cluster
    language: np.ndarray  # (n,) "zh" / "en"
    long: np.ndarray  # (n,) question longer than the cut-off
    component: np.ndarray  # (n,) connected component of the pair graph (CV groups)
    features: np.ndarray  # (n, k, len(FULL_FEATURES)), zeros for exact hits
    extra_features: np.ndarray  # (m, len(FULL_FEATURES)): candidate subsets, training only
    extra_labels: np.ndarray  # (m,)
    extra_query: np.ndarray  # (m,) the query each extra row belongs to
    trainable: np.ndarray  # (n,) False for queries left out of training (MIN_TRAINING_LENGTH)

    @property
    def answerable(self) -> np.ndarray:
        return self.protocol.answerable


def _components(pairs: list[tuple[str, str, int]], queries: list[str]) -> np.ndarray:
    """Connected components of the pair graph, every pair an edge whatever its label,
    numbered by the file's sorted texts: the same numbers for its forward and mirrored replay."""
    texts = sorted({text for a, b, _ in pairs for text in (a, b)})
    _, components = cluster_numbers([(a, b) for a, b, _ in pairs], texts, queries)
    return components


def _nearest(queries: np.ndarray, stored: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = len(queries)
    candidates = np.zeros((n, TOP_K), np.int64)
    cosines = np.zeros((n, TOP_K), np.float32)
    for start in range(0, n, 1024):
        sims = queries[start : start + 1024] @ stored.T
        top = np.argpartition(-sims, TOP_K, axis=1)[:, :TOP_K]
        top_sims = np.take_along_axis(sims, top, axis=1)
        order = np.argsort(-top_sims, axis=1, kind="stable")
        candidates[start : start + 1024] = np.take_along_axis(top, order, axis=1)
        cosines[start : start + 1024] = np.take_along_axis(top_sims, order, axis=1)
    return candidates, cosines


@dataclass
class FarCandidates:
    """Random stored texts for the sparse-tenant rows, with their real cosines to a query."""

    use_queries: np.ndarray  # (n, d) USE embeddings of the queries
    use_stored: np.ndarray  # (m, d)
    e5_queries: np.ndarray
    e5_stored: np.ndarray

    def draw(self, near: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
        """`count` stored indexes outside `near` (the query's top-k), drawn uniformly."""
        if count <= 0:
            return np.zeros(0, np.int64)
        picked = rng.choice(len(self.use_stored), size=min(count * 2, len(self.use_stored)), replace=False)
        return picked[~np.isin(picked, near)][:count].astype(np.int64)

    def cosines(self, query: int, stored: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        use = (self.use_stored[stored] @ self.use_queries[query]).astype(np.float64)
        return use, (self.e5_stored[stored] @ self.e5_queries[query]).astype(np.float64)


def _features(protocol: PairProtocol, exact: np.ndarray, candidates: np.ndarray, first: np.ndarray,
              second: np.ndarray, language: np.ndarray, correct: np.ndarray,
              seed: int, far: FarCandidates) -> tuple[np.ndarray, ...]:  # fmt: skip
    """Feature rows of every non-exact query's k candidates, plus two kinds of extra rows, so
    the model does not depend on always seeing k close neighbours:

    - for a share `SUBSET_SHARE` of the queries, a random subset of 1 to k-1 of its
      candidates (in order), featurised as if only they had been found (candidates dropped
      for another context);
    - for a share `SPARSE_SHARE`, a *sparse tenant*: the best 1 to `SPARSE_KEEP` candidates
      plus up to k - 1 texts drawn at random from the whole store (`far`), with their real
      cosines, as in a small tenant whose other entries are about something else."""
    profiles: dict[tuple[str, str], Profile] = {}

    def get(text: str, lang: str) -> Profile:
        if (text, lang) not in profiles:
            profiles[(text, lang)] = profile(text, "zh" if lang == "zh" else "en")
        return profiles[(text, lang)]

    rng = np.random.default_rng(seed)
    out = np.zeros((*candidates.shape, len(FULL_FEATURES)))
    extra: list[np.ndarray] = []
    extra_labels: list[np.ndarray] = []
    extra_query: list[int] = []
    for i, query in enumerate(protocol.queries):
        if exact[i] >= 0:
            continue
        lang = str(language[i])
        stored = [get(protocol.stored[c], lang) for c in candidates[i]]
        out[i] = feature_rows(get(query, lang), stored, first[i], second[i])
        if rng.random() < SUBSET_SHARE:
            size = int(rng.integers(1, TOP_K))
            keep = np.sort(rng.choice(TOP_K, size=size, replace=False))
            subset = [stored[j] for j in keep]
            extra.append(feature_rows(get(query, lang), subset, first[i, keep], second[i, keep]))
            extra_labels.append(correct[i, keep])
            extra_query += [i] * size
        if rng.random() < SPARSE_SHARE:
            keep_count = int(rng.integers(1, SPARSE_KEEP + 1))
            others = far.draw(candidates[i], int(rng.integers(0, TOP_K - keep_count + 1)), rng)
            ids = np.concatenate([candidates[i, :keep_count], others])
            use_cos, e5_cos = far.cosines(i, ids)
            order = np.argsort(-use_cos, kind="stable")
            ids, use_cos, e5_cos = ids[order], use_cos[order], e5_cos[order]
            rows = [get(protocol.stored[c], lang) for c in ids]
            extra.append(feature_rows(get(query, lang), rows, use_cos, e5_cos))
            extra_labels.append(protocol.stored_cluster[ids] == protocol.query_cluster[i])
            extra_query += [i] * len(ids)
    width = len(FULL_FEATURES)
    return (
        out,
        np.concatenate(extra) if extra else np.zeros((0, width)),
        np.concatenate(extra_labels) if extra_labels else np.zeros(0, bool),
        np.array(extra_query, np.int64),
    )


def replay(path: Path, *, with_features: bool = True, mirrored: bool = False) -> Replay:
    """Replay one pair file (see module docstring, step 1); `mirrored`: store every `text_b`
    and ask every `text_a`."""
    pairs = load_pairs(path)
    if mirrored:
        pairs = [(b, a, label) for a, b, label in pairs]
    protocol = protocol_from_pairs(pairs)
    texts = sorted(set(protocol.stored) | set(protocol.queries))
    row = {t: i for i, t in enumerate(texts)}
    stored_rows = np.array([row[t] for t in protocol.stored])
    query_rows = np.array([row[t] for t in protocol.queries])
    use, e5 = embed_cached("use", path.stem, texts), embed_cached("e5", path.stem, texts)
    by_norm: dict[str, int] = {}
    for i, text in enumerate(protocol.stored):
        by_norm.setdefault(normalize_text(text), i)
    exact = np.array([by_norm.get(normalize_text(q), -1) for q in protocol.queries])
    candidates, first = _nearest(use[query_rows], use[stored_rows])
    second = np.einsum("nd,nkd->nk", e5[query_rows], e5[stored_rows][candidates]).astype(np.float32)
    language = np.array([detect_language(q) for q in protocol.queries])
    correct = protocol.stored_cluster[candidates] == protocol.query_cluster[:, None]
    if with_features:
        seed = SEED + zlib.crc32((path.stem + ("~mirrored" if mirrored else "")).encode())
        far = FarCandidates(use[query_rows], use[stored_rows], e5[query_rows], e5[stored_rows])
        features, extra, extra_labels, extra_query = _features(
            protocol, exact, candidates, first, second, language, correct, seed, far
        )
    else:
        features, extra = np.zeros((0, 0, 0)), np.zeros((0, 0))
        extra_labels, extra_query = np.zeros(0, bool), np.zeros(0, np.int64)
    return Replay(
        name=path.stem,
        protocol=protocol,
        exact=exact,
        candidates=candidates,
        first=first,
        second=second,
        correct=correct,
        language=language,
        long=np.array([text_length(q) > LONG_CUTOFF for q in protocol.queries]),
        component=_components(pairs, protocol.queries),
        features=features,
        extra_features=extra,
        extra_labels=extra_labels,
        extra_query=extra_query,
        trainable=np.array([len(q) >= MIN_TRAINING_LENGTH.get(path.stem, 0) for q in protocol.queries]),
    )


# -- models -----------------------------------------------------------------------------------


@dataclass
class Rows:
    """One language's training rows: per query (k candidates) and the extra subset rows."""

    features: np.ndarray  # (queries, k, F)
    labels: np.ndarray  # (queries, k)
    groups: np.ndarray  # (queries,) CV group
    trainable: np.ndarray  # (queries,)
    extra_features: np.ndarray  # (m, F)
    extra_labels: np.ndarray  # (m,)
    extra_groups: np.ndarray  # (m,)


def _rows(reps: list[Replay], language: str, n_features: int) -> Rows:
    """Candidate rows of the non-exact queries in `language`, with their CV groups."""
    parts: list[list[np.ndarray]] = [[], [], [], [], [], [], []]
    for rep in reps:
        scored = (rep.exact < 0) & (rep.language == language)
        groups = np.char.add(f"{rep.name}:", rep.component.astype(str))
        extra = scored[rep.extra_query] & rep.trainable[rep.extra_query]
        for part, value in zip(parts, (
            rep.features[scored][:, :, :n_features], rep.correct[scored], groups[scored],
            rep.trainable[scored], rep.extra_features[extra][:, :n_features], rep.extra_labels[extra],
            groups[rep.extra_query[extra]],
        ), strict=True):  # fmt: skip
            part.append(value)
    return Rows(*(np.concatenate(part) for part in parts))


def fit(rows: Rows, queries: np.ndarray | None = None) -> Any:
    """LightGBM on the candidate rows of `queries` (default all) and their extra rows."""
    import lightgbm

    chosen = np.arange(len(rows.groups)) if queries is None else queries
    chosen = chosen[rows.trainable[chosen]]
    extra = np.isin(rows.extra_groups, rows.groups[chosen])
    width = rows.features.shape[-1]
    features = np.concatenate([rows.features[chosen].reshape(-1, width), rows.extra_features[extra]])
    labels = np.concatenate([rows.labels[chosen].reshape(-1), rows.extra_labels[extra]])
    return lightgbm.train(PARAMS, lightgbm.Dataset(features, labels.astype(float)), ROUNDS)


def out_of_fold(
    reps: list[Replay], n_features: int, folds: int, mirrored: Sequence[Replay] = ()
) -> list[np.ndarray]:
    """Per replay of `reps`, (n, k) out-of-fold probabilities (0 for exact hits): grouped
    K-fold, one model per language, trained on the rows of `reps` and of their `mirrored`
    replays (whose rows share their groups, so a held-out text is never trained on)."""
    from sklearn.model_selection import GroupKFold

    out = [np.zeros(rep.correct.shape) for rep in reps]
    for language in FILES:
        rows = _rows([*reps, *mirrored], language, n_features)
        scored = sum(int(((rep.exact < 0) & (rep.language == language)).sum()) for rep in reps)
        probabilities = np.zeros(rows.labels[:scored].shape)
        for train, held_out in GroupKFold(folds).split(rows.features, groups=rows.groups):
            model = fit(rows, train)
            held_out = held_out[held_out < scored]  # the rows of `reps` come first
            flat = rows.features[held_out].reshape(-1, n_features)
            probabilities[held_out] = model.predict(flat).reshape(len(held_out), -1)
        start = 0
        for rep, full in zip(reps, out, strict=True):
            scored = (rep.exact < 0) & (rep.language == language)
            full[scored] = probabilities[start : start + scored.sum()]
            start += scored.sum()
    return out


def ensemble_from_lightgbm(model: Any, n_features: int) -> TreeEnsemble:
    """Flatten a LightGBM booster (numerical `<=` splits only) into a TreeEnsemble."""
    feature: list[int] = []
    threshold: list[float] = []
    left: list[int] = []
    right: list[int] = []
    value: list[float] = []
    depth = 0

    def add(node: dict[str, Any], level: int) -> int:
        nonlocal depth
        index = len(feature)
        feature.append(0)
        threshold.append(np.inf)
        left.append(index)
        right.append(index)
        value.append(0.0)
        if "leaf_value" in node:
            value[index] = float(node["leaf_value"])
            depth = max(depth, level)
            return index
        if node["decision_type"] != "<=":
            raise SystemExit(f"unsupported split {node['decision_type']}")
        feature[index] = int(node["split_feature"])
        threshold[index] = float(node["threshold"])
        left[index] = add(node["left_child"], level + 1)
        right[index] = add(node["right_child"], level + 1)
        return index

    roots = [add(tree["tree_structure"], 0) for tree in model.dump_model()["tree_info"]]
    return TreeEnsemble(
        feature=np.array(feature, np.int32),
        threshold=np.array(threshold, np.float64),
        left=np.array(left, np.int32),
        right=np.array(right, np.int32),
        value=np.array(value, np.float64),
        roots=np.array(roots, np.int32),
        depth=depth,
        base=0.0,
        n_features=n_features,
    )


# -- decisions and operating points -------------------------------------------------------------


@dataclass
class Points:
    """Per query: the operating point that applies to it."""

    threshold: np.ndarray
    band_low: np.ndarray
    band_high: np.ndarray
    fast_threshold: np.ndarray


def decide(
    rep: Replay, fast: np.ndarray, full: np.ndarray, points: Points, floor: float, mode: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hit, returned stored index and 'unsure' (needed e5) per query, for one mode:
    'full' (full model on every query), 'fast' (fast model alone), 'cascade'."""
    rows = np.arange(len(rep.exact))
    exact = rep.exact >= 0
    looked = ~exact & (rep.first[:, 0] >= floor)
    fast_best, full_best = fast.argmax(1), full.argmax(1)
    p_fast, p_full = fast[rows, fast_best], full[rows, full_best]
    unsure = np.zeros(len(rows), bool)
    if mode == "full":
        hit, pick = looked & (p_full >= points.threshold), full_best
    elif mode == "fast":
        hit, pick = looked & (p_fast >= points.fast_threshold), fast_best
    else:
        unsure = looked & (p_fast >= points.band_low) & (p_fast < points.band_high)
        sure_hit = looked & ~unsure & (p_fast >= points.band_high)
        hit = sure_hit | (unsure & (p_full >= points.threshold))
        pick = np.where(unsure, full_best, fast_best)
    returned = np.where(exact, rep.exact, rep.candidates[rows, pick])
    return exact | hit, returned, unsure


def file_metrics(
    rep: Replay, hit: np.ndarray, returned: np.ndarray, mask: np.ndarray | None = None
) -> dict[str, Any]:
    m = np.ones(len(hit), bool) if mask is None else mask
    return metrics(hit[m], rep.protocol.correct(returned)[m], rep.answerable[m])


def _pooled(results: list[tuple[Replay, np.ndarray, np.ndarray, np.ndarray]]) -> dict[str, Any]:
    hit = np.concatenate([h[m] for _, h, _, m in results])
    correct = np.concatenate([r.protocol.correct(ret)[m] for r, _, ret, m in results])
    answerable = np.concatenate([r.answerable[m] for r, _, _, m in results])
    return metrics(hit, correct, answerable)


def lowest_reaching(curve: list[tuple[float, dict[str, Any]]], target: float) -> float:
    """Lowest threshold from which precision stays at or above `target` (thresholds with hits)."""
    chosen = curve[-1][0]
    for threshold, m in reversed(curve):
        if m["hits"] and m["precision"] < target:
            break
        chosen = threshold
    return chosen


def points_for(reps: list[Replay], chosen: dict[tuple[str, bool], dict[str, Any]]) -> list[Points]:
    """Per replay, the operating point of each query's language and length class."""
    out = []
    for rep in reps:
        keys = list(zip(rep.language.tolist(), rep.long.tolist(), strict=True))
        out.append(
            Points(
                threshold=np.array([chosen[k]["threshold"] for k in keys]),
                band_low=np.array([chosen[k]["band"][0] for k in keys]),
                band_high=np.array([chosen[k]["band"][1] for k in keys]),
                fast_threshold=np.array([chosen[k]["fast_threshold"] for k in keys]),
            )
        )
    return out


def _uniform(rep: Replay, threshold: float, band: tuple[float, float], fast_threshold: float) -> Points:
    def full(value: float) -> np.ndarray:
        return np.full(len(rep.exact), value)

    return Points(full(threshold), full(band[0]), full(band[1]), full(fast_threshold))


class ClassPool:
    """The selection files' queries of one language and length class, with their OOF scores."""

    def __init__(
        self, reps: list[Replay], fast: list[np.ndarray], full: list[np.ndarray], key: tuple[str, bool]
    ):
        self.parts = [
            (rep, f, g, (rep.language == key[0]) & (rep.long == key[1]) & rep.trainable)
            for rep, f, g in zip(reps, fast, full, strict=True)
            if rep.name in SELECT_ON
        ]
        self.size = sum(int(m.sum()) for *_, m in self.parts)

    def run(self, mode: str, floor: float, threshold: float = 1.0, band: tuple[float, float] = (0.0, 1.0),
            fast_threshold: float = 1.0) -> tuple[dict[str, Any], int]:  # fmt: skip
        results, unsure_count = [], 0
        for rep, fast, full, mask in self.parts:
            points = _uniform(rep, threshold, band, fast_threshold)
            hit, returned, unsure = decide(rep, fast, full, points, floor, mode)
            results.append((rep, hit, returned, mask))
            unsure_count += int((unsure & mask).sum())
        return _pooled(results), unsure_count


Curve = list[tuple[float, dict[str, Any]]]


def curves(pool: ClassPool, floor: float) -> tuple[Curve, Curve]:
    """The pool's figures at every threshold of the full model, and of the fast model alone."""
    full_curve = [(float(t), pool.run("full", floor, threshold=float(t))[0]) for t in GRID]
    fast_curve = [(float(t), pool.run("fast", floor, fast_threshold=float(t))[0]) for t in GRID]
    return full_curve, fast_curve


def most_right_hits(class_curves: Sequence[Curve], target: float) -> list[float]:
    """One threshold per curve (length class): the combination with the most right hits whose
    pooled precision reaches `target` (the highest thresholds where none does)."""
    best = (-1, [curve[-1][0] for curve in class_curves])
    for combination in itertools.product(*class_curves):
        hits = sum(int(m["hits"]) for _, m in combination)
        right = sum(round(m["precision"] * m["hits"]) for _, m in combination)
        if hits and right >= target * hits and right > best[0]:
            best = (right, [threshold for threshold, _ in combination])
    return best[1]


def choose_thresholds(pools: Sequence[ClassPool], targets: Sequence[float], pooled: bool,
                      floor: float) -> list[tuple[float, float]]:  # fmt: skip
    """Per pool (length class), the full and the fast model's threshold: each the lowest from
    which the class's precision stays at or above its target or, `pooled`, the combination
    with the most right hits at the (equal) target over all classes together."""
    full_curves, fast_curves = zip(*(curves(pool, floor) for pool in pools), strict=True)
    if not pooled:
        return [
            (lowest_reaching(full, target), lowest_reaching(fast, target))
            for full, fast, target in zip(full_curves, fast_curves, targets, strict=True)
        ]
    if len(set(targets)) != 1:
        raise SystemExit(f"classes held together need one target, not {targets}")
    full_thresholds = most_right_hits(full_curves, targets[0])
    fast_thresholds = most_right_hits(fast_curves, targets[0])
    return list(zip(full_thresholds, fast_thresholds, strict=True))


def choose_points(pool: ClassPool, threshold: float, fast_threshold: float, floor: float) -> dict[str, Any]:
    """The operating point of one class: its thresholds and the narrowest-in-use band."""
    reference = pool.run("full", floor, threshold=threshold)[0]
    best: tuple[int, tuple[float, float]] = (pool.size + 1, (0.0, 1.0))
    for low in GRID:
        for high in GRID[low < GRID]:
            band = (float(low), float(high))
            m, unsure = pool.run("cascade", floor, threshold=threshold, band=band)
            if (
                unsure < best[0]
                and m["precision"] >= reference["precision"] - CASCADE_TOLERANCE[0]
                and m["hit_rate"] >= reference["hit_rate"] - CASCADE_TOLERANCE[1]
            ):
                best = (unsure, band)
    return {"threshold": threshold, "band": list(best[1]), "fast_threshold": fast_threshold}


def choose_floor(pools: list[ClassPool]) -> float:
    """Highest first-cosine floor that loses at most 0.5 % of the full model's correct
    semantic hits (at threshold 0.5), pooled over every selection query."""

    def correct_hits(floor: float) -> int:
        total = 0
        for pool in pools:
            for rep, fast, full, mask in pool.parts:
                hit, returned, _ = decide(rep, fast, full, _uniform(rep, 0.5, (0, 1), 1), floor, "full")
                total += int((hit & mask & (rep.exact < 0) & rep.protocol.correct(returned)).sum())
        return total

    base = correct_hits(0.0)
    return float(max(f for f in FLOOR_GRID if correct_hits(float(f)) >= 0.995 * base))


# -- main -----------------------------------------------------------------------------------------


def report(reps: list[Replay], fast: list[np.ndarray], full: list[np.ndarray], points: list[Points],
           floor: float) -> dict[str, Any]:  # fmt: skip
    """Print and return per-file figures of the three modes."""
    figures: dict[str, Any] = {}
    print(f"{'file':<18} {'mode':<8} {'precision':>9} {'hit rate':>9} {'false hit':>9} {'unsure':>7}")
    for rep, f, g, p in zip(reps, fast, full, points, strict=True):
        figures[rep.name] = {}
        for mode in ("full", "fast", "cascade"):
            hit, returned, unsure = decide(rep, f, g, p, floor, mode)
            m = file_metrics(rep, hit, returned)
            m["unsure_fraction"] = float(unsure.mean())
            figures[rep.name][mode] = m
            print(
                f"{rep.name:<18} {mode:<8} {m['precision']:>9.3f} {m['hit_rate']:>9.3f} "
                f"{m['false_hit_rate']:>9.3f} {m['unsure_fraction']:>7.3f}"
            )
    return figures


def export(reps: list[Replay], out: Path) -> dict[str, dict[str, str]]:
    """Final models on all dev rows, one per language and kind; checked against LightGBM."""
    files: dict[str, dict[str, str]] = {}
    for language in FILES:
        files[language] = {}
        for kind, n_features in (("fast", N_FAST), ("full", len(FULL_FEATURES))):
            rows = _rows(reps, language, n_features)
            model = fit(rows)
            ensemble = ensemble_from_lightgbm(model, n_features)
            sample = rows.features.reshape(-1, n_features)[:: max(1, rows.labels.size // 5000)]
            gap = np.abs(ensemble.probabilities(sample) - model.predict(sample)).max()
            if gap > 1e-9:
                raise SystemExit(f"exported {language}-{kind} model differs from LightGBM by {gap}")
            name = f"{language}-{kind}.npz"
            ensemble.save(out / name)
            files[language][f"{kind}_model"] = name
            print(
                f"wrote {out / name} ({(out / name).stat().st_size // 1024} KiB, {len(ensemble.roots)} trees)"
            )
    return files


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--datasets", help="data set folder (default $MODELCACHE_DATASETS or ../shared/datasets)"
    )
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="weights folder")
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args(argv)
    started = time.time()
    datasets = datasets_dir(args.datasets)
    paths = [datasets / "pairs" / "dev" / f"{stem}.tsv" for files in FILES.values() for stem in files]
    reps = [replay(path) for path in paths]
    mirrored = [replay(path, mirrored=True) for path in paths]
    print(f"replayed {len(reps)} dev files in {time.time() - started:.0f} s", file=sys.stderr)
    fast = out_of_fold(reps, N_FAST, args.folds, mirrored)
    full = out_of_fold(reps, len(FULL_FEATURES), args.folds, mirrored)
    print(f"cross-validated in {time.time() - started:.0f} s", file=sys.stderr)
    keys = list(TARGET_PRECISION)
    pools = {key: ClassPool(reps, fast, full, key) for key in keys}
    floor = choose_floor(list(pools.values()))
    chosen = {}
    for language in FILES:
        classes = [(language, False), (language, True)]
        thresholds = choose_thresholds(
            [pools[key] for key in classes],
            [TARGET_PRECISION[key] for key in classes],
            language in POOLED_CLASSES,
            floor,
        )
        for key, (threshold, fast_threshold) in zip(classes, thresholds, strict=True):
            chosen[key] = choose_points(pools[key], threshold, fast_threshold, floor)
    for key in keys:
        print(f"{key[0]} {'long' if key[1] else 'short'} ({pools[key].size} queries): {chosen[key]}")
    print(f"floor {floor}; dev figures, {args.folds}-fold grouped cross-validation:")
    figures = report(reps, fast, full, points_for(reps, chosen), floor)
    args.out.mkdir(parents=True, exist_ok=True)
    models = export([*reps, *mirrored], args.out)
    config = {
        "version": 1,
        "first_model": "use",
        "second_model": "e5",
        "top_k": TOP_K,
        "long_text_cutoff": LONG_CUTOFF,
        "floor": floor,
        "features": list(FULL_FEATURES),
        "fast_features": N_FAST,
        "languages": {
            language: {
                **models[language],
                **{
                    ("long" if is_long else "short"): {
                        "target_precision": TARGET_PRECISION[(language, is_long)],
                        **chosen[(language, is_long)],
                    }
                    for is_long in (False, True)
                },
            }
            for language in FILES
        },
        "trained_on": [rep.name for rep in reps] + [f"{rep.name} (mirrored)" for rep in mirrored],
        "dev_cross_validated": figures,
    }
    with (args.out / "verifier.json").open("w", encoding="utf-8") as handle:
        json.dump(config, handle, indent=1)
        handle.write("\n")
    print(f"done in {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
