"""Replay pair files through the shipped verifier, as the cache would run it.

    .venv/bin/python scripts/eval_verifier.py [--split dev|test] [--mode cascade|fast|full]
                                              [--datasets DIR] [--weights DIR] [--top-k K] [FILE_STEM ...]

For every pair file (default: every file of the split) the quality protocol is replayed:
store every distinct `text_a`, ask every `text_b`. Per query: an exact (normalised) match
is a hit; otherwise the top-k stored questions by USE cosine go to `Verifier.judge`; when it
answers *unsure*, the query's e5 cosines to those candidates (the entries' stored second
embeddings) are computed and `judge` runs again with them. Printed per file: precision of
hits, hit rate on answerable queries, false-hit rate on unanswerable ones, the share of
queries that needed the second model (unsure), and the verifier's own time per query.

Embeddings come from the cache that `train_verifier.py` fills (~/.cache/modelcache-verifier).
`--split test` is for reporting only: nothing may be tuned on what it prints.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_verifier import datasets_dir, file_metrics, replay

from modelcache.verifier.verifier import Verifier

DEFAULT_FILES = {
    "dev": ("en-qqp-dev", "en-gptcache-mock", "zh-lcqmc-dev", "zh-afqmc-dev", "zh-pawsx-dev"),
    "test": ("en-qqp-test", "zh-lcqmc-test", "zh-oppo-test", "zh-pawsx-test"),
}


def evaluate(path: Path, verifier: Verifier, mode: str, top_k: int = 10) -> dict[str, float]:
    """Replay one file through the verifier; metrics plus unsure share and timings. `top_k`
    below 10 hands the verifier only the nearest `top_k` candidates (as a small tenant would)."""
    rep = replay(path, with_features=False)
    stored = rep.protocol.stored
    hit = rep.exact >= 0
    returned = np.where(hit, rep.exact, 0)
    unsure = np.zeros(len(hit), bool)
    first_ms: list[float] = []
    second_ms: list[float] = []
    for i, question in enumerate(rep.protocol.queries):
        if hit[i]:
            continue
        candidates = [stored[c] for c in rep.candidates[i, :top_k]]
        first, second = rep.first[i, :top_k], rep.second[i, :top_k]
        started = time.perf_counter()
        verdict = verifier.judge(question, candidates, first, second if mode == "full" else None)
        first_ms.append((time.perf_counter() - started) * 1000)
        if verdict.unsure:
            unsure[i] = True
            started = time.perf_counter()
            verdict = verifier.judge(question, candidates, first, second)
            second_ms.append((time.perf_counter() - started) * 1000)
        if verdict.index is not None:
            hit[i] = True
            returned[i] = rep.candidates[i, verdict.index]
    m = file_metrics(rep, hit, returned)
    return {
        **m,
        "unsure_fraction": float(unsure.mean()),
        "first_look_ms_p50": float(np.median(first_ms)) if first_ms else 0.0,
        "second_look_ms_p50": float(np.median(second_ms)) if second_ms else 0.0,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="*", help="pair file stems (default: every file of the split)")
    parser.add_argument("--split", choices=("dev", "test"), default="dev")
    parser.add_argument("--mode", choices=("cascade", "fast", "full"), default="cascade")
    parser.add_argument(
        "--datasets", help="data set folder (default $MODELCACHE_DATASETS or ../shared/datasets)"
    )
    parser.add_argument("--weights", type=Path, help="weights folder (default: the shipped one)")
    parser.add_argument("--top-k", type=int, default=10, help="candidates handed to the verifier (1-10)")
    args = parser.parse_args(argv)
    verifier = (Verifier(args.weights) if args.weights else Verifier()).load()
    verifier.mode = "fast" if args.mode == "fast" else "cascade"
    folder = datasets_dir(args.datasets) / "pairs" / args.split
    print(f"{args.split} split, mode {args.mode}, top-{args.top_k} candidates")
    print(
        f"{'file':<18} {'precision':>9} {'hit rate':>9} {'false hit':>9} {'unsure':>7} "
        f"{'1st ms':>7} {'2nd ms':>7}"
    )
    for stem in args.files or DEFAULT_FILES[args.split]:
        m = evaluate(folder / f"{stem}.tsv", verifier, args.mode, args.top_k)
        print(
            f"{stem:<18} {m['precision']:>9.3f} {m['hit_rate']:>9.3f} {m['false_hit_rate']:>9.3f} "
            f"{m['unsure_fraction']:>7.3f} {m['first_look_ms_p50']:>7.2f} {m['second_look_ms_p50']:>7.2f}"
        )


if __name__ == "__main__":
    main()
