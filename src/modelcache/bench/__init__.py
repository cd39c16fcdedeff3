"""`modelcache bench`: the real server over HTTP at several sizes, against GPTCache.

    modelcache bench                                   # 10k and 100k entries, both presets, GPTCache
    modelcache bench --sizes 10000 --no-gptcache       # a quick look (about a minute)
    modelcache bench --sizes 10000 100000 1000000 --presets fast default precise   # the full run

The full run takes about 15 minutes on 2 cores (1M: ModelCache only; GPTCache up to
--gptcache-max-size). The first run also embeds the stored questions once into
~/.cache/modelcache-bench: with USE (about 4 minutes for all 137k) and, when a preset with the
verifier (`default`, `precise`) is measured, with e5, whose vectors those presets store with
each row (about 2 minutes per 10k questions). GPTCache comes with the `bench` extra
(`pip install -e '.[bench]'`); without it the comparison is skipped. Without threadpoolctl the
USE model cannot limit its BLAS threads, and OpenBLAS then uses every core for each embedding,
which is much slower on a busy machine: the output says which applied; set
OPENBLAS_NUM_THREADS=1 to get the one thread the settings ask for.

For each size, one tenant is filled with that many entries through the store APIs (real QQP
questions with their USE embeddings, synthetic rows beyond the real ones), then for each preset a
`modelcache serve` process (MODELCACHE_* settings, data in a temp dir, a free 127.0.0.1 port) is
started and measured: start-up time, query latency and throughput with 1, 8 and 32 concurrent
clients (each its own keep-alive connection), resident memory, and inserts over HTTP. GPTCache,
when installed, gets the same entries and queries through its own server. One table is printed,
with the goals and the GPTCache ratios beside it.
"""

from __future__ import annotations

import argparse
import os

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `modelcache bench` options (the heavy modules load only when it runs)."""
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add = parser.add_argument
    add(
        "--sizes",
        type=int,
        nargs="+",
        default=[10_000, 100_000],
        help="entries in the tenant (default 10000 100000)",
    )
    add(
        "--clients",
        type=int,
        nargs="+",
        default=[1, 8, 32],
        help="concurrent clients per level (default 1 8 32)",
    )
    add("--queries", type=int, default=1000, help="queries per client level (default 1000)")
    add("--level-seconds", type=float, default=60, help="stop a level after this long (default 60)")
    add("--query-pool", type=int, default=1000, help="distinct questions asked (default 1000)")
    add("--inserts", type=int, default=300, help="one-entry inserts over HTTP per run (default 300)")
    add(
        "--presets",
        nargs="+",
        default=["fast", "default"],
        help="MODELCACHE_PRESET values (default fast default)",
    )
    add(
        "--batch-wait-ms",
        type=float,
        nargs="+",
        default=[0.0],
        help="MODELCACHE_BATCH_MAX_WAIT_MS values to run for each preset (default 0)",
    )
    add(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="another ModelCache setting for the fill and the server, e.g. vector_index=URL",
    )
    add("--no-gptcache", action="store_true", help="skip the GPTCache comparison")
    add(
        "--gptcache-max-size",
        type=int,
        default=100_000,
        help="compare with GPTCache up to this size (default 100000)",
    )
    add("--dataset", help="pair file or datasets folder (default: $MODELCACHE_DATASETS, ../shared/datasets)")
    add(
        "--embed-threads",
        type=int,
        default=os.cpu_count() or 1,
        help="threads for embedding the stored questions once (cached in ~/.cache/modelcache-bench)",
    )
    add("--json", help="also write every figure to this JSON file")


def run(args: argparse.Namespace) -> int:
    from modelcache.bench.runner import run_bench

    return run_bench(args)
