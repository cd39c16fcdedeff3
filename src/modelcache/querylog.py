"""Asynchronous, batched writes of the query log and hit counters.

Queries hand records to `QueryLogWriter.record()` and return at once; a worker thread
writes them in batches every `flush_interval_s` or when `batch_size` are waiting. `close()`
drains everything, so a server stopped by SIGTERM loses nothing it already answered. If
the row store is unreachable, records are kept (up to `max_pending`) and retried.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

from modelcache.errors import ModelCacheError
from modelcache.storage.base import QueryLogRecord, RowStore

__all__ = ["QueryLogWriter"]

log = logging.getLogger(__name__)


class QueryLogWriter:
    def __init__(
        self,
        store: RowStore,
        *,
        enabled: bool = True,
        batch_size: int = 256,
        flush_interval_s: float = 0.5,
        max_pending: int = 100_000,
    ):
        self.store = store
        self.enabled = enabled
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.max_pending = max_pending
        self._records: list[QueryLogRecord] = []
        self._hits: Counter[int] = Counter()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._worker = threading.Thread(target=self._run, name="query-log", daemon=True)
        self._worker.start()

    def close(self) -> None:
        """Stop the worker and write everything still pending."""
        self._stop.set()
        self._wake.set()
        if self._worker is not None:
            self._worker.join()
            self._worker = None
        self.flush()

    def record(self, record: QueryLogRecord) -> None:
        with self._lock:
            if record.hit and record.entry_id is not None:
                self._hits[record.entry_id] += 1
            if self.enabled:
                if len(self._records) >= self.max_pending:
                    del self._records[0]
                self._records.append(record)
            full = len(self._records) >= self.batch_size
        if full:
            self._wake.set()

    def flush(self) -> None:
        """Write pending hits and records now; keep them for a retry if the store fails."""
        with self._lock:
            records, self._records = self._records, []
            hits, self._hits = self._hits, Counter()
        try:
            if hits:
                self.store.add_hits(hits, time.time())
                hits = Counter()
            if records:
                self.store.write_query_log(records)
        except ModelCacheError as exc:
            log.warning("query log write failed, will retry: %s", exc)
            with self._lock:
                self._records[:0] = records
                self._hits.update(hits)
            raise

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            try:
                self.flush()
            except ModelCacheError:
                self._stop.wait(self.flush_interval_s)
