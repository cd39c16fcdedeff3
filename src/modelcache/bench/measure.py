"""What one server run measures, the same way for every system under test."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from modelcache.bench.load import LoadResult, run_load, sequential
from modelcache.bench.servers import ServerProcess, machine_busy_seconds, process_cpu_seconds

__all__ = ["Api", "Options", "RunResult", "measure_server"]

_WARM_UP = 20


@dataclass(frozen=True)
class Options:
    clients: list[int]
    queries: int
    level_seconds: float
    inserts: int


@dataclass(frozen=True)
class Api:
    """How to talk to one system: its query and insert requests, and what a hit looks like."""

    ready_path: str
    query_path: str
    query_bodies: Sequence[bytes]
    is_hit: Callable[[bytes], bool]
    insert_path: str
    insert_bodies: Sequence[bytes]


@dataclass
class RunResult:
    system: str
    config: str
    size: int
    real: int
    fill_rate: float = float("nan")
    startup_s: float = float("nan")
    rss_mb: float = float("nan")
    insert_rate: float = float("nan")
    #: share of the machine's CPU that other processes used while the queries ran
    other_load: float = float("nan")
    levels: dict[int, LoadResult] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.system} ({self.config})"

    def level(self, clients: int) -> LoadResult | None:
        return self.levels.get(clients)


def measure_server(
    server: ServerProcess, api: Api, options: Options, result: RunResult, log: Callable[[str], None]
) -> RunResult:
    """Start the server, run each client level, then the inserts; always stops the server."""
    try:
        result.startup_s = server.start()
        log(
            f"{result.label} at {result.size:,}: ready in {result.startup_s:.1f} s, "
            f"RSS {server.rss_mb():,.0f} MiB"
        )
        sequential(server.port, api.query_path, api.query_bodies[:_WARM_UP])
        before = _cpu_snapshot(server)
        for clients in options.clients:
            level = run_load(
                server.port,
                api.query_path,
                api.query_bodies,
                api.is_hit,
                clients=clients,
                max_requests=options.queries,
                max_seconds=options.level_seconds,
            )
            result.levels[clients] = level
            log(
                f"  {clients:>3} clients: {level.count:,} queries, {level.qps:,.0f} q/s, "
                f"p50 {level.p50:.1f} ms, p99 {level.p99:.1f} ms, hit rate {level.hit_rate:.2f}, "
                f"errors {level.errors}"
            )
        result.other_load = _other_load(before, _cpu_snapshot(server))
        result.rss_mb = server.rss_mb()
        inserts = api.insert_bodies[: options.inserts]
        if inserts:
            seconds, errors = sequential(server.port, api.insert_path, inserts)
            result.insert_rate = len(inserts) / seconds
            log(f"  {len(inserts)} inserts over HTTP: {result.insert_rate:,.0f}/s, errors {errors}")
    finally:
        server.stop()
    return result


def _cpu_snapshot(server: ServerProcess) -> tuple[float, float, float, float]:
    """(wall, machine busy, server CPU, this process's CPU), in seconds."""
    return time.perf_counter(), machine_busy_seconds(), server.cpu_seconds(), process_cpu_seconds(os.getpid())


def _other_load(before: tuple[float, ...], after: tuple[float, ...]) -> float:
    wall, machine, server, bench = (a - b for a, b in zip(after, before, strict=True))
    return max(0.0, (machine - server - bench) / (wall * (os.cpu_count() or 1)))
