"""GPTCache under test: the same entries and queries, through GPTCache's own server.

GPTCache is optional (`pip install gptcache sqlalchemy`, or the `bench` extra); without it
the comparison is skipped with a message.
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from modelcache.bench.measure import Api, Options, RunResult, measure_server
from modelcache.bench.servers import ServerProcess, base_env, free_port
from modelcache.bench.workload import Workload, vector_batches

__all__ = ["gptcache_version", "run_gptcache"]

_FILL_BATCH = 1000

#: The two GPTCache configurations compared: FAISS's default threads (all cores) and one thread.
CONFIGS = {"default": 0, "FAISS 1 thread": 1}


def gptcache_version() -> str | None:
    """The installed GPTCache version, or None if it (or its SQLite layer) is missing."""
    try:
        version = importlib.metadata.version("gptcache")
        importlib.metadata.version("sqlalchemy")
    except importlib.metadata.PackageNotFoundError:
        return None
    return version


def fill(data_dir: Path, workload: Workload, vectors: np.ndarray, size: int, max_size: int) -> float:
    """GPTCache's bulk import (`DataManager.import_data`) in batches of 1,000; entries per second."""
    from modelcache.bench.gptcache_server import data_manager

    manager = data_manager(str(data_dir), max_size)
    texts = workload.texts(size)
    started = time.perf_counter()
    for start, batch in vector_batches(vectors, size, _FILL_BATCH):
        stop = start + len(batch)
        manager.import_data(
            texts[start:stop],
            [workload.answer(i) for i in range(start, stop)],
            list(batch),
            [None] * len(batch),
        )
    manager.close()
    return size / (time.perf_counter() - started)


def _is_hit(body: bytes) -> bool:
    return json.loads(body).get("answer") not in (None, "")


def api(workload: Workload, tag: str, inserts: int) -> Api:
    return Api(
        ready_path="/",
        query_path="/get",
        query_bodies=[json.dumps({"prompt": q}).encode() for q in workload.queries],
        is_hit=_is_hit,
        insert_path="/put",
        insert_bodies=[
            json.dumps({"prompt": q, "answer": f"new answer {i}"}).encode()
            for i, q in enumerate(workload.new_questions(tag, inserts))
        ],
    )


def run_gptcache(
    data_dir: Path,
    config: str,
    size: int,
    real: int,
    fill_rate: float,
    max_size: int,
    embed_threads: int,
    workload: Workload,
    options: Options,
    log: Callable[[str], None],
) -> RunResult:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "modelcache.bench.gptcache_server",
        f"--data-dir={data_dir}",
        f"--port={port}",
        f"--max-size={max_size}",
        f"--embed-threads={embed_threads}",
        f"--faiss-threads={CONFIGS[config]}",
    ]
    server = ServerProcess(command, base_env(), port, "/", data_dir.parent / f"gptcache-{port}.log")
    result = RunResult("GPTCache", config, size, real, fill_rate=fill_rate)
    calls = api(workload, f"GPTCache {config}", options.inserts)
    return measure_server(server, calls, options, result, log)
