"""The `modelcache` command: serve, calibrate, rebuild-index, import, bench."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence

from modelcache.errors import ModelCacheError
from modelcache.settings import Settings

__all__ = ["main"]


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from modelcache.server import create_app

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = Settings(**overrides)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level)
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from modelcache.calibration import calibrate_files

    settings = Settings()
    report = calibrate_files(
        settings, args.pairs, tolerance=args.tolerance, target_precision=args.target_precision
    )
    if args.tenant:
        from modelcache.cache import Cache

        with Cache(settings) as cache:
            cache.register(
                args.tenant,
                threshold_short=report["threshold_short"],
                threshold_long=report["threshold_long"],
            )
        report["applied_to_tenant"] = args.tenant
    text = json.dumps(report, indent=2, ensure_ascii=False)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    print(text)
    return 0


def _rebuild(args: argparse.Namespace) -> int:
    from modelcache.cache import Cache

    with Cache(Settings()) as cache:
        for tenant in args.tenant or cache.rows.tenants():
            print(f"{tenant}: {cache.rebuild_index(tenant)} vectors")
    return 0


def _import(args: argparse.Namespace) -> int:
    from pathlib import Path

    from modelcache.bulk import detect_format, import_file, validate_file
    from modelcache.cache import Cache
    from modelcache.tenants import validate_tenant

    path = Path(args.file)
    fmt = detect_format(path, args.format)
    validate_tenant(args.tenant)
    total = validate_file(path, fmt)  # before anything is opened: a bad file changes nothing
    with Cache(Settings()) as cache:
        report = import_file(cache, path, args.tenant, fmt=fmt, batch=args.batch, validated=total)
    print(
        f"imported {report.rows:,} rows into tenant {args.tenant!r} in {report.seconds:.1f} s "
        f"({report.rows_per_second:,.0f} rows/s)"
    )
    return 0


def _bench(args: argparse.Namespace) -> int:
    from modelcache.bench import run

    return run(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelcache", description="A semantic cache for LLM answers.")
    parser.add_argument("--config", help="settings file (TOML); same as MODELCACHE_CONFIG")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the HTTP API")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(run=_serve)

    calibrate = commands.add_parser("calibrate", help="choose similarity thresholds from labelled pairs")
    calibrate.add_argument("pairs", nargs="+", help="TSV files with text_a, text_b, label")
    calibrate.add_argument(
        "--tolerance",
        type=float,
        default=0.01,
        help="accept thresholds whose F1 is within this fraction of the best (default 0.01)",
    )
    calibrate.add_argument(
        "--target-precision",
        type=float,
        help="instead of F1: the lowest threshold whose precision reaches this",
    )
    calibrate.add_argument("--output", help="also write the report to this JSON file")
    calibrate.add_argument(
        "--tenant", help="store the chosen thresholds for this tenant (in the configured row store)"
    )
    calibrate.set_defaults(run=_calibrate)

    rebuild = commands.add_parser("rebuild-index", help="rebuild vector indexes from the rows")
    rebuild.add_argument("--tenant", action="append", help="tenant to rebuild (default: all)")
    rebuild.set_defaults(run=_rebuild)

    bulk = commands.add_parser(
        "import",
        help="insert question/answer pairs from a JSONL or TSV file",
        description="Validate the whole file first (nothing is written if any line is bad), then "
        'insert it in batches. JSONL lines: {"question": ..., "answer": ...} or '
        '{"query": [messages], "answer": ...}; TSV lines: question<TAB>answer. With the '
        "embedded SQLite + FAISS default, stop the server on the same data_dir first.",
    )
    bulk.add_argument("file", help="a .jsonl or .tsv file")
    bulk.add_argument("--tenant", required=True, help="the tenant (scope.model) to store into")
    bulk.add_argument("--batch", type=int, default=256, help="rows per insert (default 256)")
    bulk.add_argument("--format", choices=["jsonl", "tsv"], help="default: from the file's extension")
    bulk.set_defaults(run=_import)

    from modelcache.bench import add_arguments

    bench = commands.add_parser(
        "bench",
        help="latency, throughput, start-up and memory of the real server, against GPTCache",
        description="Benchmark `modelcache serve` over HTTP (see `modelcache bench --help`).",
    )
    add_arguments(bench)
    bench.set_defaults(run=_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.config:
        os.environ["MODELCACHE_CONFIG"] = args.config
    try:
        code: int = args.run(args)
    except ModelCacheError as exc:
        print(f"modelcache: {exc.message}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
