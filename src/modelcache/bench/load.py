"""Closed-loop HTTP load: N clients, each on its own keep-alive connection, one request at a time.

Standard library only (`http.client` and threads), so the benchmark adds no dependency. The
clients run in the benchmark's own process, on the same machine as the server under test.
"""

from __future__ import annotations

import http.client
import itertools
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["Connection", "LoadResult", "percentile", "run_load", "sequential"]

_HEADERS = {"Content-Type": "application/json"}


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (median for 0.5); NaN for no samples."""
    if not samples:
        return float("nan")
    if fraction == 0.5:
        return float(statistics.median(samples))
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


class Connection:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1; reconnects once if the server closed it."""

    def __init__(self, port: int, timeout: float = 300.0):
        self.port = port
        self.timeout = timeout
        self._conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        try:
            return self._send(method, path, body)
        except (ConnectionError, http.client.HTTPException):
            self._conn.close()
            self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            return self._send(method, path, body)

    def _send(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        self._conn.request(method, path, body, _HEADERS)
        response = self._conn.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        self._conn.close()


@dataclass(frozen=True)
class LoadResult:
    clients: int
    latencies_ms: list[float]
    seconds: float
    hits: int
    errors: int

    @property
    def count(self) -> int:
        return len(self.latencies_ms)

    @property
    def qps(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0

    @property
    def p50(self) -> float:
        return percentile(self.latencies_ms, 0.5)

    @property
    def p99(self) -> float:
        return percentile(self.latencies_ms, 0.99)

    @property
    def hit_rate(self) -> float:
        return self.hits / self.count if self.count else float("nan")


def run_load(
    port: int,
    path: str,
    bodies: Sequence[bytes],
    is_hit: Callable[[bytes], bool],
    *,
    clients: int,
    max_requests: int,
    max_seconds: float,
) -> LoadResult:
    """Send up to `max_requests` requests (cycling through `bodies`) from `clients` threads.

    Stops early once `max_seconds` have passed; every request sent is counted.
    """
    ticket = itertools.count()
    lock = threading.Lock()
    latencies: list[float] = []
    counts = {"hits": 0, "errors": 0}
    start_together = threading.Barrier(clients + 1)
    deadline: list[float] = []

    def client() -> None:
        conn = Connection(port)
        mine: list[float] = []
        hits = errors = 0
        start_together.wait()
        while (i := next(ticket)) < max_requests and time.perf_counter() < deadline[0]:
            body = bodies[i % len(bodies)]
            started = time.perf_counter()
            try:
                status, data = conn.request("POST", path, body)
            except (OSError, http.client.HTTPException):
                errors += 1
                break
            mine.append((time.perf_counter() - started) * 1000)
            if status != 200:
                errors += 1
            elif is_hit(data):
                hits += 1
        conn.close()
        with lock:
            latencies.extend(mine)
            counts["hits"] += hits
            counts["errors"] += errors

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    deadline.append(began + max_seconds)
    start_together.wait()
    for thread in threads:
        thread.join()
    return LoadResult(clients, latencies, time.perf_counter() - began, counts["hits"], counts["errors"])


def sequential(port: int, path: str, bodies: Sequence[bytes]) -> tuple[float, int]:
    """Send each body once from one connection; returns (seconds, non-200 responses)."""
    conn = Connection(port)
    errors = 0
    started = time.perf_counter()
    for body in bodies:
        status, _ = conn.request("POST", path, body)
        errors += status != 200
    seconds = time.perf_counter() - started
    conn.close()
    return seconds, errors
