"""Batch embedding calls from concurrent callers into one model call.

Callers on any thread call `embed(texts)` and block; one worker thread takes everything
queued (up to `max_batch` texts), waits at most `max_wait_s` for more if the batch is not
full, runs the model once, and hands each caller its rows. With one caller there is no
wait at all unless `max_wait_s` > 0; under load, requests that arrive while the model
runs form the next batch.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future

import numpy as np

from modelcache.embedding.base import Embedder

__all__ = ["BatchingEmbedder"]

_Job = tuple[Sequence[str], "Future[np.ndarray]"]


class BatchingEmbedder:
    def __init__(self, embedder: Embedder, *, max_batch: int = 32, max_wait_s: float = 0.0):
        self.inner = embedder
        self.name = embedder.name
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self.batches_run = 0

    @property
    def dim(self) -> int:
        """The model's width (known after `load()` for models that read it from their files)."""
        return self.inner.dim

    def load(self) -> None:
        self.inner.load()
        self._worker = threading.Thread(target=self._run, name="embed-batcher", daemon=True)
        self._worker.start()

    def close(self) -> None:
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join()
            self._worker = None

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if self._worker is None:
            return self.inner.embed(texts)
        future: Future[np.ndarray] = Future()
        self._queue.put((texts, future))
        return future.result()

    def _collect(self, first: _Job) -> tuple[list[_Job], bool]:
        jobs, size, stop = [first], len(first[0]), False
        deadline = time.monotonic() + self.max_wait_s
        while size < self.max_batch:
            try:
                timeout = deadline - time.monotonic()
                job = self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                stop = True
                break
            jobs.append(job)
            size += len(job[0])
        return jobs, stop

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            jobs, stop = self._collect(first)
            texts = [text for job_texts, _ in jobs for text in job_texts]
            try:
                vectors = self.inner.embed(texts)
            except Exception as exc:  # noqa: BLE001 - handed to every waiting caller
                for _, future in jobs:
                    future.set_exception(exc)
            else:
                self.batches_run += 1
                start = 0
                for job_texts, future in jobs:
                    future.set_result(vectors[start : start + len(job_texts)])
                    start += len(job_texts)
            if stop:
                return
