"""ModelCache under test: fill one tenant through the store APIs, then serve it over HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from modelcache.bench.measure import Api, Options, RunResult, measure_server
from modelcache.bench.servers import ServerProcess, base_env, free_port, modelcache_command
from modelcache.bench.workload import Workload, vector_batches
from modelcache.messages import Message, build_key
from modelcache.settings import Settings
from modelcache.storage import NewEntry, open_row_store, open_vector_index

__all__ = ["TENANT", "fill", "run_modelcache"]

TENANT = "bench"
_FILL_BATCH = 1000


def fill(
    settings: Settings, workload: Workload, vectors: np.ndarray, size: int, second: np.ndarray | None = None
) -> float:
    """Write `size` entries (rows, then vectors) in batches of 1,000; returns entries per second.

    Embeddings are precomputed, so this is the storage's own speed, as `Cache.insert` writes it,
    including any index building it sets off. `second`: the e5 vectors the verifier presets
    store with each row (synthetic rows get random ones), or None for rows without.
    """
    rows, index = open_row_store(settings), open_vector_index(settings, vectors.shape[1])
    rows.start()
    index.start()
    try:
        rows.register_tenant(TENANT)
        index.ensure_tenant(TENANT)
        texts = workload.texts(size)
        started = time.perf_counter()
        second_batches = vector_batches(second, size, _FILL_BATCH) if second is not None else None
        for start, batch_vectors in vector_batches(vectors, size, _FILL_BATCH):
            batch_second = next(second_batches)[1] if second_batches else [None] * len(batch_vectors)
            batch = []
            for offset, (vector, vector_2) in enumerate(zip(batch_vectors, batch_second, strict=True)):
                text = texts[start + offset]
                key = build_key([Message("user", text)])
                answer = workload.answer(start + offset)
                batch.append(
                    NewEntry(TENANT, text, answer, "[]", key.context_hash, key.key_hash, vector, vector_2)
                )
            ids = rows.insert(batch)
            index.add(TENANT, np.asarray(ids, dtype=np.int64), batch_vectors)
        _settle(index)
        rate = size / (time.perf_counter() - started)
    finally:
        index.close()
        rows.close()
    return rate


def _settle(index: object) -> None:
    """Wait for index work running in the background (FAISS trains its IVF index in a thread
    once a tenant grows past `faiss_approx_above`), so the server starts on the index it will
    keep and the figures are not taken during a rebuild. Counted in the fill time."""
    wait = getattr(index, "wait_for_rebuilds", None)
    if callable(wait):
        wait()


def _is_hit(body: bytes) -> bool:
    return bool(json.loads(body).get("cacheHit"))


def api(workload: Workload, tag: str, inserts: int) -> Api:
    def query(text: str) -> bytes:
        return json.dumps(
            {"type": "query", "scope": {"model": TENANT}, "query": [{"role": "user", "content": text}]}
        ).encode()

    def insert(i: int, text: str) -> bytes:
        item = {"query": [{"role": "user", "content": text}], "answer": f"new answer {i}"}
        return json.dumps({"type": "insert", "scope": {"model": TENANT}, "chat_info": [item]}).encode()

    return Api(
        ready_path="/welcome",
        query_path="/modelcache",
        query_bodies=[query(q) for q in workload.queries],
        is_hit=_is_hit,
        insert_path="/modelcache",
        insert_bodies=[insert(i, q) for i, q in enumerate(workload.new_questions(tag, inserts))],
    )


def run_modelcache(
    data_dir: Path,
    settings: dict[str, str],
    config: str,
    size: int,
    real: int,
    fill_rate: float,
    workload: Workload,
    options: Options,
    log: Callable[[str], None],
) -> RunResult:
    """One `modelcache serve` process on the filled data dir, with these MODELCACHE_* settings."""
    port = free_port()
    env = base_env(**{**settings, "data_dir": data_dir, "host": "127.0.0.1", "port": port})
    server = ServerProcess(modelcache_command(), env, port, "/welcome", data_dir / f"server-{port}.log")
    result = RunResult("ModelCache", config, size, real, fill_rate=fill_rate)
    calls = api(workload, f"ModelCache {config}", options.inserts)
    return measure_server(server, calls, options, result, log)
