"""The benchmark's printed output: one table of runs, the goals beside it, and GPTCache ratios."""

from __future__ import annotations

import math
from collections.abc import Sequence

from modelcache.bench.measure import RunResult

__all__ = ["goals", "ratios", "table"]

GOAL_P50_MS = 5.0
GOAL_QPS_32 = 500.0
GOAL_P99_32_MS = 100.0
GOAL_VS_GPTCACHE = 10.0
GOAL_SIZE = 100_000
GOAL_PRESET = "fast"
#: Issue #4: with the default preset (the verifier) a one-client query stays under this at p50.
DEFAULT_P50_MS = 15.0


def _num(value: float, digits: int = 0) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _entries(result: RunResult) -> str:
    if result.real >= result.size:
        return f"{result.size:,}"
    return f"{result.size:,} ({result.real:,} real)"


def table(results: Sequence[RunResult], clients: Sequence[int]) -> list[str]:
    head = ["system", "config", "entries", "fill rows/s", "start-up s", "RSS MiB", "HTTP insert/s"]
    if 1 in clients:
        head += ["p50 ms 1c", "p99 ms 1c"]
    for count in clients:
        head += [f"q/s {count}c"] + ([f"p99 ms {count}c"] if count != 1 else [])
    head += ["hit rate", "other load"]
    lines = [_row(head), "|" + "---|" * len(head)]
    for r in results:
        cells = [r.system, r.config, _entries(r), _num(r.fill_rate), _num(r.startup_s, 1)]
        cells += [_num(r.rss_mb), _num(r.insert_rate)]
        one = r.level(1)
        if 1 in clients:
            cells += [_num(one.p50, 2), _num(one.p99, 2)] if one else ["-", "-"]
        for count in clients:
            level = r.level(count)
            cells.append(_num(level.qps) if level else "-")
            if count != 1:
                cells.append(_num(level.p99, 1) if level else "-")
        first = next(iter(r.levels.values()), None)
        cells.append(_num(first.hit_rate, 2) if first else "-")
        cells.append("-" if math.isnan(r.other_load) else f"{100 * r.other_load:.0f}%")
        lines.append(_row(cells))
    return lines


def _ratio(ours: float, theirs: float) -> float:
    return ours / theirs if theirs and not math.isnan(theirs) else float("nan")


def ratios(results: Sequence[RunResult], clients: Sequence[int]) -> list[str]:
    """ours / theirs for every ModelCache run against every GPTCache run at the same size."""
    pairs = [
        (ours, theirs)
        for ours in results
        if ours.system == "ModelCache"
        for theirs in results
        if theirs.system == "GPTCache" and theirs.size == ours.size
    ]
    if not pairs:
        return []
    head = ["entries", "ModelCache", "GPTCache"] + [f"q/s {c}c" for c in clients]
    if 1 in clients:
        head.append("p50 1c (lower: faster)")
    lines = [_row(head), "|" + "---|" * len(head)]
    for ours, theirs in pairs:
        cells = [f"{ours.size:,}", ours.config, theirs.config]
        for count in clients:
            mine, other = ours.level(count), theirs.level(count)
            cells.append(_num(_ratio(mine.qps, other.qps), 1) + "x" if mine and other else "-")
        if 1 in clients:
            mine, other = ours.level(1), theirs.level(1)
            cells.append(_num(_ratio(mine.p50, other.p50), 2) + "x" if mine and other else "-")
        lines.append(_row(cells))
    return lines


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def goals(results: Sequence[RunResult]) -> list[str]:
    """Each goal with the figure it is judged on (ModelCache, fast preset, no batch wait)."""
    ours = [r for r in results if r.system == "ModelCache" and r.config == GOAL_PRESET]
    lines = [f"Goals (ModelCache, preset {GOAL_PRESET}, over HTTP):"]
    at_goal = next((r for r in ours if r.size == GOAL_SIZE), None)
    one = at_goal.level(1) if at_goal else None
    if one:
        lines.append(
            f"- query p50 < {GOAL_P50_MS:g} ms at {GOAL_SIZE:,} entries, 1 client: "
            f"{one.p50:.2f} ms -> {_verdict(one.p50 < GOAL_P50_MS)}"
        )
    else:
        lines.append(
            f"- query p50 < {GOAL_P50_MS:g} ms at {GOAL_SIZE:,}, 1 client: not run (--sizes {GOAL_SIZE})"
        )
    for r in ours:
        level = r.level(32)
        if level:
            ok = level.qps >= GOAL_QPS_32 and level.p99 < GOAL_P99_32_MS
            lines.append(
                f"- >= {GOAL_QPS_32:g} q/s with 32 clients, p99 < {GOAL_P99_32_MS:g} ms, at {r.size:,}: "
                f"{level.qps:,.0f} q/s, p99 {level.p99:.1f} ms -> {_verdict(ok)}"
            )
    lines += _gptcache_goals(results, ours)
    for r in results:
        level = r.level(1)
        if r.system == "ModelCache" and r.config == "default" and level:
            lines.append(
                f"- preset default: query p50 < {DEFAULT_P50_MS:g} ms, 1 client, at {r.size:,}: "
                f"{level.p50:.2f} ms -> {_verdict(level.p50 < DEFAULT_P50_MS)}"
            )
    return lines


def _gptcache_goals(results: Sequence[RunResult], ours: Sequence[RunResult]) -> list[str]:
    lines = []
    for mine in ours:
        top = max(mine.levels, default=None)
        if top is None:
            continue
        for theirs in results:
            if theirs.system != "GPTCache" or theirs.size != mine.size:
                continue
            other = theirs.level(top)
            if other is None:
                continue
            ratio = _ratio(mine.levels[top].qps, other.qps)
            if theirs.config == "default":
                goal, ok = f">= {GOAL_VS_GPTCACHE:g}x", ratio >= GOAL_VS_GPTCACHE
            else:
                goal, ok = "ahead of", ratio > 1.0
            lines.append(
                f"- {goal} GPTCache ({theirs.config}) query throughput at {mine.size:,}, {top} clients "
                f"({mine.config}): {ratio:.1f}x -> {_verdict(ok)}"
            )
    return lines
