"""Quality benchmark: replay labelled pair files through a real server, over HTTP.

    .venv/bin/python -m benchmarks.quality [FILES...] [--png quality.png] [--preset fast]
                                           [--url http://127.0.0.1:PORT]

Protocol (datasets/README.md, `modelcache.evaluation`): store every distinct `text_a` (its
answer identifies it), then ask every `text_b`. Texts joined by a label-1 pair
(transitively) or identical form one meaning cluster; a hit is correct when the returned
entry is in the query's cluster; a query is answerable when some stored text is in its
cluster. Reported: precision of hits, hit rate on answerable queries, false-hit rate on
unanswerable ones.

Each query is sent as is (the server's own decision, the "default" row; the client times
every request, one at a time, for the p50 / p99 table). Under the `fast` preset (cosine
thresholds only) it is sent a second time with `threshold: -1`, which returns the best
same-context candidate and its cosine whatever the threshold, from which the per-threshold
rows and the precision / hit-rate curve are computed. Under `default` and `precise` the
verifier decides whatever the threshold, so there is no sweep: only the default row.
Without --url a `modelcache serve` process with default settings (and `--preset`) is
started on a free loopback port and stopped at the end. Files default to every file in
pairs/test/.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import requests

from modelcache.evaluation import PairProtocol, load_pairs, metrics, protocol_from_pairs
from tests.e2e.conftest import ServerProcess

DATASETS = Path(
    os.environ.get("MODELCACHE_DATASETS", Path(__file__).resolve().parents[2] / "shared/datasets")
)
THRESHOLDS = [0.70, 0.75, 0.80, 0.85, 0.90, 0.95]


def post(session: requests.Session, url: str, body: dict[str, object]) -> dict[str, object]:
    res = session.post(f"{url}/modelcache", json=body, timeout=600)
    res.raise_for_status()
    data: dict[str, object] = res.json()
    return data


def store(session: requests.Session, url: str, tenant: str, texts: Sequence[str]) -> None:
    for start in range(0, len(texts), 100):
        chat_info = [
            {"query": [{"role": "user", "content": text}], "answer": str(start + i)}
            for i, text in enumerate(texts[start : start + 100])
        ]
        post(session, url, {"type": "insert", "scope": {"model": tenant}, "chat_info": chat_info})


def ask(
    session: requests.Session,
    url: str,
    tenant: str,
    questions: Sequence[str],
    threshold: float | None,
    latencies: list[float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(returned stored index or -1, score) per question; each request's seconds are
    appended to `latencies` when given (one client, one request at a time)."""
    returned = np.full(len(questions), -1, np.int64)
    scores = np.full(len(questions), -np.inf)
    for i, question in enumerate(questions):
        body: dict[str, object] = {"type": "query", "scope": {"model": tenant}, "query": question}
        if threshold is not None:
            body["threshold"] = threshold
        started = time.perf_counter()
        result = post(session, url, body)
        if latencies is not None:
            latencies.append(time.perf_counter() - started)
        if result["cacheHit"]:
            returned[i] = int(str(result["answer"]))
            scores[i] = float(result["score"])  # type: ignore[arg-type]
    return returned, scores


def evaluate(url: str, path: Path, *, sweep: bool = True) -> dict[str, object]:
    protocol: PairProtocol = protocol_from_pairs(load_pairs(path))
    tenant = f"quality-{uuid.uuid4().hex[:8]}"
    session = requests.Session()
    store(session, url, tenant, protocol.stored)
    latencies: list[float] = []
    default_returned, _ = ask(session, url, tenant, protocol.queries, None, latencies)
    answerable = protocol.answerable
    hit = default_returned >= 0
    rows = {"default": metrics(hit, protocol.correct(np.maximum(default_returned, 0)) & hit, answerable)}
    ms = np.array(latencies) * 1000
    timing = {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}
    result: dict[str, object] = {
        "rows": rows,
        "curve": [],
        "queries": len(protocol.queries),
        "stored": len(protocol.stored),
        "timing": timing,
    }
    if not sweep:
        post(session, url, {"type": "remove", "scope": {"model": tenant}, "remove_type": "truncate_by_model"})
        return result
    best, scores = ask(session, url, tenant, protocol.queries, -1.0)
    post(session, url, {"type": "remove", "scope": {"model": tenant}, "remove_type": "truncate_by_model"})
    correct_best = protocol.correct(np.maximum(best, 0)) & (best >= 0)
    curve = []
    for threshold in np.round(np.arange(0.50, 1.0001, 0.01), 2):
        row = metrics(scores >= threshold, correct_best, answerable)
        if row["hits"]:
            curve.append((float(threshold), row["precision"], row["hit_rate"]))
        if float(threshold) in THRESHOLDS:
            rows[f"cosine >= {threshold:.2f}"] = row
    result["curve"] = curve
    return result


def plot(results: dict[str, dict[str, object]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 5))
    for name, result in results.items():
        curve = result["curve"]
        [line] = axes.plot([c[2] for c in curve], [c[1] for c in curve], label=name)  # type: ignore[index,union-attr]
        default = result["rows"]["default"]  # type: ignore[index]
        axes.scatter([default["hit_rate"]], [default["precision"]], marker="o", color=line.get_color())
    axes.set_xlabel("hit rate on answerable queries")
    axes.set_ylabel("precision of hits")
    axes.set_title("ModelCache precision / hit rate (curve: cosine threshold; dot: default)")
    axes.grid(True, alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--url", help="a running server (default: start one with default settings)")
    parser.add_argument("--png", type=Path, help="write the precision / hit-rate curves here")
    parser.add_argument("--preset", default="default", help="the started server's preset (default: default)")
    args = parser.parse_args()
    files = args.files or sorted((DATASETS / "pairs" / "test").glob("*.tsv"))
    server = None
    if args.url is None:
        data_dir = Path(tempfile.mkdtemp(prefix="mc-quality-"))
        server = ServerProcess(data_dir, preset=args.preset).start(timeout=180)
    url = args.url or server.url  # type: ignore[union-attr]
    sweep = args.preset == "fast"
    try:
        results = {path.stem: evaluate(url, path, sweep=sweep) for path in files}
    finally:
        if server is not None:
            server.stop()
    print("| file | setting | precision | hit rate | false-hit rate | hits / queries |")
    print("|---|---|---|---|---|---|")
    for name, result in results.items():
        for setting, row in result["rows"].items():  # type: ignore[union-attr]
            print(
                f"| {name} | {setting} | {row['precision']:.3f} | {row['hit_rate']:.3f} | "
                f"{row['false_hit_rate']:.3f} | {row['hits']:,} / {row['queries']:,} |"
            )
    print()
    print("| file | stored | queries | query p50 ms | query p99 ms |")
    print("|---|---|---|---|---|")
    for name, result in results.items():
        timing = result["timing"]
        print(
            f"| {name} | {result['stored']:,} | {result['queries']:,} | "  # type: ignore[str-format]
            f"{timing['p50_ms']:.2f} | {timing['p99_ms']:.2f} |"  # type: ignore[index]
        )
    if args.png and sweep:
        plot(results, args.png)
        print(f"curves written to {args.png}")


if __name__ == "__main__":
    main()
