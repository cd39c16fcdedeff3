"""The library API: `Cache` with insert / query / remove / register.

The HTTP server is a thin layer over this class. All methods are blocking and thread-safe;
the server runs them in a thread pool.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelcache.embedding import BatchingEmbedder, Embedder, embedder_named, open_embedder
from modelcache.errors import ConfigurationError, InvalidRequest, ModelCacheError
from modelcache.messages import CacheKey, Message, build_key
from modelcache.querylog import QueryLogWriter
from modelcache.schemas import parse_conversation, parse_ids
from modelcache.settings import Settings
from modelcache.similarity import Candidate, Thresholds, choose, same_context
from modelcache.storage import (
    Entry,
    NewEntry,
    QueryLogRecord,
    RowStore,
    VectorIndex,
    open_row_store,
    open_vector_index,
)
from modelcache.tenants import validate_tenant
from modelcache.verifier import Verifier
from modelcache.verifier.reranker import CrossEncoderReranker, RerankStage
from modelcache.verifier.stage import DecisionStage, SecondStage

__all__ = ["Cache", "QueryResult"]

log = logging.getLogger(__name__)

Conversation = str | Sequence[Message] | Sequence[dict[str, Any]]

_TENANT_SETTINGS_TTL_S = 5.0
_REBUILD_BATCH = 4096


@dataclass(frozen=True)
class QueryResult:
    hit: bool
    answer: str = ""
    question: str = ""
    score: float | None = None
    id: int | None = None
    seconds: float = 0.0


class Cache:
    """A semantic cache over one row store, one vector index and one embedding model.

    Construct, then `start()` (or use as a context manager); `close()` flushes the query
    log and saves local indexes. Parts can be passed in; missing ones come from settings.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        embedder: Embedder | None = None,
        row_store: RowStore | None = None,
        vector_index: VectorIndex | None = None,
        second_stage: DecisionStage | None = None,
    ):
        self.settings = settings or Settings()
        inner = embedder or open_embedder(self.settings)
        self.second_stage = second_stage or _second_stage(self.settings, getattr(inner, "name", "?"))
        # The verifier learned from full top-k neighbourhoods: in the `default` preset a query
        # with fewer same-context candidates (a small tenant) is decided by the cosine
        # thresholds, and the verifier only vetoes a choice it is confident is wrong.
        small_tenants = (
            self.settings.preset == "default" and second_stage is None and not self.settings.reranker
        )
        self._stage_min_candidates = (
            min(self.settings.verifier_min_candidates, self.settings.top_k) if small_tenants else 1
        )
        self._veto: SecondStage | None = None
        if small_tenants and self.settings.verifier_veto and isinstance(self.second_stage, SecondStage):
            self._veto = self.second_stage
        self.embedder = BatchingEmbedder(
            inner,
            max_batch=self.settings.batch_max_size,
            max_wait_s=self.settings.batch_max_wait_ms / 1000,
        )
        self.rows = row_store or open_row_store(self.settings)
        self._given_index = vector_index
        self._index: VectorIndex | None = None
        self.querylog = QueryLogWriter(
            self.rows,
            enabled=self.settings.query_log_enabled,
            batch_size=self.settings.query_log_batch_size,
            flush_interval_s=self.settings.query_log_flush_interval_s,
        )
        self.thresholds = Thresholds(
            self.settings.threshold_short, self.settings.threshold_long, self.settings.long_text_cutoff
        )
        self._tenant_overrides: dict[str, tuple[float, dict[str, Any]]] = {}
        self._overrides_lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def index(self) -> VectorIndex:
        """The vector index; made in `start()`, once the model has told its dimension."""
        if self._index is None:
            raise ConfigurationError("the cache is not started: call start() or use it as a context manager")
        return self._index

    def start(self) -> Cache:
        self.embedder.load()
        if self.second_stage is not None:
            self.second_stage.load()
        self._index = self._given_index or open_vector_index(self.settings, self.embedder.dim)
        self.rows.start()
        self.index.start()
        if self.index.local:
            for tenant in self.rows.tenants():
                self._check_local_index(tenant)
        self.querylog.start()
        return self

    def close(self) -> None:
        try:
            self.querylog.close()
        except ModelCacheError as exc:
            log.error("query log not fully written at shutdown: %s", exc)
        self.embedder.close()
        if self.second_stage is not None:
            self.second_stage.close()
        if self._index is not None:
            self._index.close()
        self.rows.close()

    def __enter__(self) -> Cache:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _check_local_index(self, tenant: str) -> None:
        """Rebuild a tenant's in-process index from the rows if the two disagree."""
        row_ids = self.rows.ids(tenant)
        index_ids = self.index.ids(tenant)
        if index_ids is not None and np.array_equal(np.sort(row_ids), index_ids):
            return
        log.warning(
            "rebuilding the %s index of tenant %r from %d rows", self.index.name, tenant, len(row_ids)
        )
        self.rebuild_index(tenant)

    def rebuild_index(self, tenant: str) -> int:
        """Drop the tenant's vectors and re-add every row's stored embedding."""
        self.index.drop_tenant(tenant)
        self.index.ensure_tenant(tenant)
        added = 0
        for ids, vectors in self.rows.iter_vectors(tenant, _REBUILD_BATCH):
            self.index.add(tenant, ids, vectors)
            added += len(ids)
        return added

    def wait_for_index(self) -> None:
        """Block until background index work (an approximate index's rebuild) is done."""
        wait = getattr(self.index, "wait_for_rebuilds", None)
        if wait is not None:
            wait()

    def health(self) -> dict[str, str]:
        """'ok' or the error, per backend."""
        report = {}
        for label, part in (("row_store", self.rows), ("vector_index", self.index)):
            try:
                part.ping()
                report[label] = "ok"
            except ModelCacheError as exc:
                report[label] = exc.message
        return report

    # -- helpers ---------------------------------------------------------------------------

    def _key(self, conversation: Conversation, code: int) -> CacheKey:
        if isinstance(conversation, str) or not all(isinstance(m, Message) for m in conversation):
            messages = parse_conversation(conversation, code=code)
        else:
            messages = list(conversation)  # type: ignore[arg-type]
        return build_key(messages, include_assistant=self.settings.include_assistant_turns)

    def _tenant_settings(self, tenant: str) -> dict[str, Any]:
        """The tenant's stored overrides, re-read at most every few seconds."""
        now = time.monotonic()
        with self._overrides_lock:
            cached = self._tenant_overrides.get(tenant)
        if cached is None or now - cached[0] > _TENANT_SETTINGS_TTL_S:
            cached = (now, self.rows.tenant_settings(tenant))
            with self._overrides_lock:
                self._tenant_overrides[tenant] = cached
        return cached[1]

    def _thresholds(self, tenant: str) -> Thresholds:
        overrides = self._tenant_settings(tenant)
        return self.thresholds.with_overrides(overrides) if overrides else self.thresholds

    def _explicit_threshold(self, tenant: str, question: str) -> float | None:
        """The tenant's own cosine threshold for this question's length class, if it set one."""
        is_long = self._thresholds(tenant).is_long(question)
        value = self._tenant_settings(tenant).get("threshold_long" if is_long else "threshold_short")
        return None if value is None else float(value)

    # -- operations ------------------------------------------------------------------------

    def query(
        self, tenant: str, conversation: Conversation, *, threshold: float | None = None
    ) -> QueryResult:
        """Look up a conversation; a hit returns the stored answer."""
        started = time.perf_counter()
        validate_tenant(tenant)
        key = self._key(conversation, code=201)
        best = self._exact(tenant, key) or self._nearest(tenant, key, threshold)
        seconds = time.perf_counter() - started
        self.querylog.record(
            QueryLogRecord(
                tenant=tenant,
                question=key.question,
                context_hash=key.context_hash,
                hit=best is not None,
                entry_id=best.entry.id if best else None,
                score=best.score if best else None,
                latency_ms=seconds * 1000,
                created_at=time.time(),
            )
        )
        if best is None:
            return QueryResult(hit=False, seconds=seconds)
        return QueryResult(True, best.entry.answer, best.entry.question, best.score, best.entry.id, seconds)

    def _exact(self, tenant: str, key: CacheKey) -> Candidate | None:
        entry = self.rows.find_by_keys(tenant, [key.key_hash]).get(key.key_hash)
        return Candidate(entry, 1.0) if entry is not None else None

    def _nearest(self, tenant: str, key: CacheKey, threshold: float | None) -> Candidate | None:
        vector = self.embedder.embed([key.question])
        ids, scores = self.index.search(tenant, vector, self.settings.top_k)
        score_of = {int(i): float(s) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0}
        if not score_of:
            return None
        found = self.rows.get(tenant, list(score_of))
        self._drop_orphan_vectors(tenant, set(score_of) - {e.id for e in found})
        candidates = [Candidate(e, score_of[e.id]) for e in found]
        if self.second_stage is not None and len(same_context(key, candidates)) >= self._stage_min_candidates:
            floor = threshold if threshold is not None else self._explicit_threshold(tenant, key.question)
            return self.second_stage.choose(key, candidates, floor)
        limit = threshold if threshold is not None else self._thresholds(tenant).for_text(key.question)
        chosen = choose(key, candidates, limit)
        if chosen is not None and self._veto is not None and self._veto.vetoes(key, candidates, chosen):
            return None
        return chosen

    def _drop_orphan_vectors(self, tenant: str, ids: set[int]) -> None:
        """Vectors whose rows are gone (an undo that could not reach the index) are removed."""
        if not ids:
            return
        try:
            self.index.delete(tenant, np.array(sorted(ids), dtype=np.int64))
        except ModelCacheError as exc:
            log.warning("could not remove orphan vectors %s of %r: %s", sorted(ids), tenant, exc)
        else:
            log.info("removed orphan vectors %s of %r", sorted(ids), tenant)

    def insert(self, tenant: str, items: Iterable[tuple[Conversation, str]]) -> list[int]:
        """Store answers; a conversation already stored gets its answer replaced.

        All or nothing: if any part fails, nothing stored changes. Returns one id per item.
        """
        validate_tenant(tenant)
        pairs = [(self._key(conv, code=301), answer) for conv, answer in items]
        for _, answer in pairs:
            if not isinstance(answer, str):
                raise InvalidRequest("answer must be a string", code=301)
        latest = {key.key_hash: (key, answer) for key, answer in pairs}
        existing = self.rows.find_by_keys(tenant, list(latest))
        fresh = [(key, answer) for key_hash, (key, answer) in latest.items() if key_hash not in existing]
        self.rows.register_tenant(tenant)
        self.index.ensure_tenant(tenant)
        new_ids = self._insert_fresh(tenant, fresh)
        updates = {existing[h].id: answer for h, (_, answer) in latest.items() if h in existing}
        if updates:
            try:
                self.rows.update_answers(tenant, updates)
            except ModelCacheError:
                self._undo_insert(tenant, new_ids)
                raise
        id_of = {key.key_hash: i for (key, _), i in zip(fresh, new_ids, strict=True)}
        id_of.update({h: e.id for h, e in existing.items()})
        return [id_of[key.key_hash] for key, _ in pairs]

    def _insert_fresh(self, tenant: str, fresh: list[tuple[CacheKey, str]]) -> list[int]:
        """Write rows, then vectors; if the vectors fail, remove the rows again."""
        if not fresh:
            return []
        questions = [key.question for key, _ in fresh]
        vectors = self.embedder.embed(questions)
        seconds = self.second_stage.embed_for_storage(questions) if self.second_stage else [None] * len(fresh)
        ids = self.rows.insert(
            [
                NewEntry(
                    tenant,
                    key.question,
                    answer,
                    _context_json(key),
                    key.context_hash,
                    key.key_hash,
                    vector,
                    second,
                )
                for (key, answer), vector, second in zip(fresh, vectors, seconds, strict=True)
            ]
        )
        try:
            self.index.add(tenant, np.asarray(ids, dtype=np.int64), vectors)
        except BaseException:
            self._undo_insert(tenant, ids, vectors_added=False)
            raise
        return ids

    def _undo_insert(self, tenant: str, ids: list[int], *, vectors_added: bool = True) -> None:
        try:
            if vectors_added:
                self.index.delete(tenant, np.asarray(ids, dtype=np.int64))
            self.rows.delete(tenant, ids)
        except ModelCacheError as exc:  # the original error is the one the caller needs
            log.error("could not undo a failed insert of ids %s in %r: %s", ids, tenant, exc)

    def remove(self, tenant: str, ids: Sequence[int]) -> list[int]:
        """Delete the tenant's entries with these ids; return the ids that existed."""
        validate_tenant(tenant)
        ids = parse_ids(ids)
        deleted = self.rows.delete(tenant, ids)
        self.index.delete(tenant, np.asarray(ids, dtype=np.int64))
        return deleted

    def truncate(self, tenant: str) -> int:
        """Delete every entry of the tenant; return how many there were."""
        validate_tenant(tenant)
        removed = self.rows.delete_tenant_rows(tenant)
        self.index.drop_tenant(tenant)
        return removed

    def register(
        self, tenant: str, *, threshold_short: float | None = None, threshold_long: float | None = None
    ) -> bool:
        """Create the tenant ahead of first use; True if it was new. Thresholds are stored."""
        validate_tenant(tenant)
        created = self.rows.register_tenant(tenant)
        self.index.ensure_tenant(tenant)
        overrides = {
            name: value
            for name, value in (("threshold_short", threshold_short), ("threshold_long", threshold_long))
            if value is not None
        }
        if overrides:
            self.rows.set_tenant_settings(tenant, {**self.rows.tenant_settings(tenant), **overrides})
            with self._overrides_lock:
                self._tenant_overrides.pop(tenant, None)
        return created

    def entries(self, tenant: str, ids: Sequence[int]) -> list[Entry]:
        """Stored rows (answer, hit count, ...) of the tenant with these ids."""
        validate_tenant(tenant)
        return sorted(self.rows.get(tenant, ids), key=lambda e: e.id)

    def flush(self) -> None:
        """Write pending query-log records and hit counts now."""
        self.querylog.flush()


def _context_json(key: CacheKey) -> str:
    return json.dumps([{"role": m.role, "content": m.content} for m in key.context], ensure_ascii=False)


def _second_stage(settings: Settings, first_model: str) -> DecisionStage | None:
    """The second stage the settings ask for: a reranker, the verifier, or none.

    The verifier was trained on the bundled USE model's cosines: with another first model
    its features mean something else, so the cache falls back to cosine thresholds.
    """
    if settings.reranker:
        if settings.preset == "fast":
            raise ConfigurationError("the fast preset runs no second stage: unset reranker or pick a preset")
        reranker = CrossEncoderReranker(settings.reranker, threads=settings.embed_threads)
        return RerankStage(
            reranker, threshold=settings.reranker_threshold, min_cosine=settings.reranker_min_cosine
        )
    if settings.preset == "fast":
        return None
    if first_model != "use":
        log.warning(
            "the %s preset's verifier needs the bundled 'use' embedder; with %r the cache uses"
            " cosine thresholds only",
            settings.preset,
            first_model,
        )
        return None
    second = embedder_named("e5", settings.embed_threads)
    return SecondStage(
        Verifier(mode="cascade"),
        second,
        max_batch=settings.batch_max_size,
        max_wait_s=settings.batch_max_wait_ms / 1000,
    )
