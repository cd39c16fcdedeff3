"""Small tenants, dev only: who should decide a hit when a tenant holds only a few entries?

    .venv/bin/python scripts/eval_small_tenants.py [--datasets DIR] [--folds 5] [--views 3]

The quality protocol's tenants hold thousands of entries; a new application's tenant holds a
handful. This replays the selection files of `scripts/train_verifier.py` as small tenants: for
every query that is not an exact repeat, `--views` tenants of its 1 to 2 nearest stored texts
(by USE) plus 0 to 7 texts drawn at random from the whole store, with their real cosines (the
sparse-tenant rows of the training script, at most 9 entries: under `verifier_min_candidates`).
Each tenant is decided by:

- `cosine`: the cosine thresholds of the default settings (0.80 short / 0.74 long), as
  `default` decided small tenants until now;
- `cosine+veto@t`: the same hit, unless the full verifier model gives the chosen entry a
  probability under t;
- `verifier`: the shipped cascade alone (what `precise` does).

Every probability is out of fold: grouped K-fold as in the training script (groups are the
pair graph's connected components), so no text of a held-out query was trained on. Figures are
precision of hits, hit rate on the tenants that hold a right answer, false-hit rate on the
others, and the share of the cosine rule's right hits the rule keeps.

`--write` stores the veto levels the `default` preset applies in small tenants
(`modelcache/verifier/weights/small_tenants.json`), one per language and model: the highest
level of the grid that keeps at least `KEEP` of the cosine rule's right hits, pooled over the
language's selection files (the rule was fixed before the first run of this script). The
`fast` levels apply where a candidate has no stored e5 vector. Chinese gets no veto (level 0,
its figures are printed all the same): the zh models never saw a short positive pair (no
LCQMC-dev pair under 10 characters is labelled 1, see calibration/verifier.md), and they give
short hand-written paraphrases such as `你是什么人?` for `你是谁?` (0.08) or `中国首都是什么城市?`
for `中国的首都是哪里?` (0.001) less than hard negatives, so a zh veto would take hits that
are right and that the original ModelCache's own example relies on.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import train_verifier as tv

from modelcache.messages import text_length
from modelcache.verifier.features import Profile, profile
from modelcache.verifier.verifier import FULL_FEATURES, WEIGHTS_DIR, feature_rows

#: The default settings' cosine thresholds and length cut-off (modelcache.settings).
COSINE_SHORT, COSINE_LONG, CUTOFF = 0.80, 0.74, 20
MAX_OTHERS = 7
VETOES = (0.02, 0.05, 0.10, 0.15, 0.20, 0.30)
KEEP = 0.95
#: Fast probabilities from which the veto keeps a cosine hit without asking e5, and how far
#: that may fall below the full-model veto on every cosine hit (precision, share of right hits).
SURE = (0.30, 0.40, 0.50, 0.60, 0.70, 0.80, 0.90)
SURE_TOLERANCE = (0.005, 0.005)
VETOED = ("en",)
OUT = WEIGHTS_DIR / "small_tenants.json"


class Views:
    """Small-tenant views of one replay: candidates, cosines, labels and features per view."""

    def __init__(self, rep: tv.Replay, use: np.ndarray, e5: np.ndarray, count: int, seed: int):
        protocol = rep.protocol
        texts = sorted(set(protocol.stored) | set(protocol.queries))
        row = {t: i for i, t in enumerate(texts)}
        stored_rows = np.array([row[t] for t in protocol.stored])
        query_rows = np.array([row[t] for t in protocol.queries])
        far = tv.FarCandidates(use[query_rows], use[stored_rows], e5[query_rows], e5[stored_rows])
        rng = np.random.default_rng(seed)
        profiles: dict[tuple[str, str], Profile] = {}

        def get(text: str, lang: str) -> Profile:
            if (text, lang) not in profiles:
                profiles[(text, lang)] = profile(text, "zh" if lang == "zh" else "en")
            return profiles[(text, lang)]

        self.query: list[int] = []
        self.first: list[np.ndarray] = []
        self.correct: list[np.ndarray] = []
        self.features: list[np.ndarray] = []
        for i, question in enumerate(protocol.queries):
            if rep.exact[i] >= 0:
                continue
            lang = str(rep.language[i])
            for _ in range(count):
                keep = int(rng.integers(1, tv.SPARSE_KEEP + 1))
                others = far.draw(rep.candidates[i], int(rng.integers(0, MAX_OTHERS + 1)), rng)
                ids = np.concatenate([rep.candidates[i, :keep], others])
                use_cos, e5_cos = far.cosines(i, ids)
                order = np.argsort(-use_cos, kind="stable")
                ids, use_cos, e5_cos = ids[order], use_cos[order], e5_cos[order]
                stored = [get(protocol.stored[c], lang) for c in ids]
                self.query.append(i)
                self.first.append(use_cos)
                self.correct.append(protocol.stored_cluster[ids] == protocol.query_cluster[i])
                self.features.append(feature_rows(get(question, lang), stored, use_cos, e5_cos))
        self.fast = [np.zeros(len(c)) for c in self.correct]
        self.full = [np.zeros(len(c)) for c in self.correct]


def cross_validated(reps: list[tv.Replay], mirrored: list[tv.Replay], views: list[Views], folds: int) -> None:
    """Fill every view's fast and full probabilities from the fold model that did not see it
    (trained, like the shipped models, on the forward and the mirrored replays)."""
    from sklearn.model_selection import GroupKFold

    for language in tv.FILES:
        for n_features, attribute in ((tv.N_FAST, "fast"), (len(FULL_FEATURES), "full")):
            rows = tv._rows([*reps, *mirrored], language, n_features)
            for train, held_out in GroupKFold(folds).split(rows.features, groups=rows.groups):
                model = tv.fit(rows, train)
                unseen = set(rows.groups[held_out].tolist())
                for rep, view in zip(reps, views, strict=True):
                    groups = np.char.add(f"{rep.name}:", rep.component.astype(str))
                    picked = [
                        v for v, q in enumerate(view.query)
                        if rep.language[q] == language and groups[q] in unseen
                    ]  # fmt: skip
                    if not picked:
                        continue
                    flat = np.concatenate([view.features[v][:, :n_features] for v in picked])
                    predicted = model.predict(flat)
                    start = 0
                    for v in picked:
                        size = len(view.correct[v])
                        getattr(view, attribute)[v] = predicted[start : start + size]
                        start += size


Raw = tuple[bool, bool, bool, float, float]
Rows = list[tuple[bool, bool, bool]]


def decisions(rep: tv.Replay, view: Views, config: dict[str, Any]) -> tuple[Rows, Rows, list[Raw]]:
    """Per view, (hit, right, answerable) of the cosine rule and of the verifier alone, and
    the raw material of every veto: the cosine rule's hit, whether its choice is right,
    answerable, and the fast and full probabilities of its choice."""
    cosine: Rows = []
    verifier: Rows = []
    raw: list[Raw] = []
    floor = float(config["floor"])
    for v, q in enumerate(view.query):
        question = rep.protocol.queries[q]
        first, correct = view.first[v], view.correct[v]
        answerable = bool(correct.any())
        limit = COSINE_LONG if text_length(question) > CUTOFF else COSINE_SHORT
        cosine_hit = bool(first[0] >= limit)
        cosine.append((cosine_hit, cosine_hit and bool(correct[0]), answerable))
        raw.append((cosine_hit, bool(correct[0]), answerable, float(view.fast[v][0]), float(view.full[v][0])))
        length_class = "long" if text_length(question) > CUTOFF else "short"
        point = config["languages"][str(rep.language[q])][length_class]
        hit, pick = False, 0
        if first[0] >= floor:
            fast, full = view.fast[v], view.full[v]
            p_fast = float(fast.max())
            if point["band"][0] <= p_fast < point["band"][1]:
                pick = int(full.argmax())
                hit = bool(full[pick] >= point["threshold"])
            else:
                pick = int(fast.argmax())
                hit = p_fast >= point["band"][1]
        verifier.append((hit, hit and bool(correct[pick]), answerable))
    return cosine, verifier, raw


def vetoed(raw: list[Raw], level: float, sure: float) -> tuple[Rows, int]:
    """A veto on the cosine rule's hits: a hit stays when the fast probability reaches `sure`
    (no e5 asked) or the full model's reaches `level`. `sure=inf` is the full model alone,
    `level=inf` the fast look alone. Also: how many hits needed e5."""
    rows, calls = [], 0
    for cosine_hit, right, answerable, fast, full in raw:
        calls += cosine_hit and fast < sure
        hit = cosine_hit and (fast >= sure or full >= level)
        rows.append((hit, hit and right, answerable))
    return rows, calls


def rules(cosine: Rows, verifier: Rows, raw: list[Raw]) -> dict[str, Rows]:
    """Every rule of the table, in print order."""
    out = {"cosine": cosine, "verifier": verifier}
    out.update({f"cosine+veto@{t:.2f}": vetoed(raw, t, math.inf)[0] for t in VETOES})
    out.update({f"cosine+fastveto@{t:.2f}": vetoed(raw, math.inf, t)[0] for t in VETOES})
    return out


def summary(rows: list[tuple[bool, bool, bool]], cosine_right: int) -> str:
    hit = np.array([r[0] for r in rows])
    right = np.array([r[1] for r in rows])
    answerable = np.array([r[2] for r in rows])
    hits = int(hit.sum())
    precision = right.sum() / hits if hits else float("nan")
    hit_rate = (hit & answerable & right).sum() / max(int(answerable.sum()), 1)
    false_rate = (hit & ~answerable).sum() / max(int((~answerable).sum()), 1)
    kept = right.sum() / max(cosine_right, 1)
    return f"{precision:9.3f} {hit_rate:9.3f} {false_rate:9.3f} {kept:9.3f} {hits:7d}"


def choose_sure(raw: list[Raw], level: float) -> float:
    """The lowest `SURE` whose precision and right hits stay within `SURE_TOLERANCE` of the
    full-model veto at `level` on every cosine hit."""
    reference, _ = vetoed(raw, level, math.inf)
    reference_right, reference_hits = sum(r[1] for r in reference), sum(r[0] for r in reference)
    for sure in SURE:
        rows, _ = vetoed(raw, level, sure)
        right, hits = sum(r[1] for r in rows), sum(r[0] for r in rows)
        close = right / max(hits, 1) >= reference_right / max(reference_hits, 1) - SURE_TOLERANCE[0]
        if close and right >= (1 - SURE_TOLERANCE[1]) * reference_right:
            return sure
    return 1.0


def veto_level(decided: dict[str, Rows], prefix: str, cosine_right: int) -> float:
    """The highest veto of the grid that keeps `KEEP` of the cosine rule's right hits (0: none)."""
    kept = [
        t for t in VETOES if sum(r[1] for r in decided[f"cosine+{prefix}@{t:.2f}"]) >= KEEP * cosine_right
    ]
    return max(kept, default=0.0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--datasets", help="data set folder (default $MODELCACHE_DATASETS or ../shared/datasets)"
    )
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--views", type=int, default=3, help="small tenants per query")
    parser.add_argument("--write", action="store_true", help=f"write the chosen veto levels to {OUT.name}")
    args = parser.parse_args(argv)
    datasets = tv.datasets_dir(args.datasets)
    config = json.loads((WEIGHTS_DIR / "verifier.json").read_text(encoding="utf-8"))
    reps, mirrored, views = [], [], []
    for files in tv.FILES.values():
        for stem in files:
            path = datasets / "pairs" / "dev" / f"{stem}.tsv"
            rep = tv.replay(path)
            mirrored.append(tv.replay(path, mirrored=True))
            texts = sorted(set(rep.protocol.stored) | set(rep.protocol.queries))
            use, e5 = tv.embed_cached("use", stem, texts), tv.embed_cached("e5", stem, texts)
            reps.append(rep)
            views.append(Views(rep, use, e5, args.views, tv.SEED + 1 + zlib.crc32(stem.encode())))
    cross_validated(reps, mirrored, views, args.folds)
    header = ("file", "rule", "precision", "hit rate", "false hit", "kept", "hits")
    print("{:<18} {:<22} {:>9} {:>9} {:>9} {:>9} {:>7}".format(*header))
    pooled: dict[str, tuple[Rows, Rows, list[Raw]]] = {}
    for rep, view in zip(reps, views, strict=True):
        if rep.name not in tv.SELECT_ON:
            continue
        cosine, verifier, raw = decisions(rep, view, config)
        cosine_right = sum(r[1] for r in cosine)
        for rule, rows in rules(cosine, verifier, raw).items():
            print(f"{rep.name:<18} {rule:<22} {summary(rows, cosine_right)}")
        pooled_cosine, pooled_verifier, pooled_raw = pooled.setdefault(rep.name[:2], ([], [], []))
        pooled_cosine.extend(cosine)
        pooled_verifier.extend(verifier)
        pooled_raw.extend(raw)
    levels: dict[str, dict[str, float]] = {}
    for language, (cosine, verifier, raw) in pooled.items():
        name = f"{language} (pooled)"
        cosine_right = sum(r[1] for r in cosine)
        decided = rules(cosine, verifier, raw)
        for rule, rows in decided.items():
            print(f"{name:<18} {rule:<22} {summary(rows, cosine_right)}")
        levels[language] = {
            model: veto_level(decided, prefix, cosine_right) if language in VETOED else 0.0
            for model, prefix in (("full", "veto"), ("fast", "fastveto"))
        }
        level = levels[language]["full"]
        cosine_hits = sum(r[0] for r in cosine)
        for sure in SURE:
            rows, calls = vetoed(raw, level, sure)
            rule = f"veto@{level:.2f} sure@{sure:.2f}"
            share = calls / max(cosine_hits, 1)
            print(f"{name:<18} {rule:<22} {summary(rows, cosine_right)}  e5 on {share:.0%}")
        levels[language]["sure"] = choose_sure(raw, level) if level > 0 else 0.0
    print(f"veto levels keeping >= {KEEP:.0%} of the cosine rule's right hits: {levels}")
    if args.write:
        note = f"scripts/eval_small_tenants.py, {args.folds}-fold grouped cross-validation on pairs/dev"
        OUT.write_text(
            json.dumps({"version": 1, "chosen_by": note, "keep": KEEP, "veto": levels}, indent=1) + "\n"
        )
        print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
