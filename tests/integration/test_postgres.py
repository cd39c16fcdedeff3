"""PostgresRowStore against the machine's PostgreSQL, PgvectorIndex against PostgreSQL 18 + pgvector."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelcache.errors import BackendUnavailable, ConfigurationError, InvalidRequest
from modelcache.settings import Settings
from modelcache.storage import open_row_store, open_vector_index
from modelcache.storage.base import Entry, NewEntry, QueryLogRecord, RowStore
from modelcache.storage.faiss_index import FaissIndex
from modelcache.storage.pgvector import PgvectorIndex, table_name
from modelcache.storage.postgres import PostgresRowStore
from modelcache.storage.sqlite import SQLiteRowStore
from tests.backends import free_port
from tests.backends.postgres import PgvectorServer, PostgresServer

DIM = 16
FAST_S = 5.0
LONG_A, LONG_B = "a" * 63 + "b", "a" * 63 + "c"
INDEX_TENANTS = ("gpt", "gpt1", "GPT", LONG_A, LONG_B)
UNICODE_TEXTS = [
    "你好，世界",
    "emoji 🤖🚀 and a ZWJ family 👩‍👩‍👧",
    "e\u0301 combining, ﬁ ligature, Ω",
    "עברית ومرحبا",
    "quotes ' \" ` and back\\slash %s %(x)s $1",
    "'; DROP TABLE mc_entries; --",
    "line\nbreak\ttab\r\n",
    "\U0010fffd plane 16",
]


def unit_vectors(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def new_entry(tenant: str, key: str, *, question: str = "", answer: str = "", seed: int = 0) -> NewEntry:
    return NewEntry(
        tenant=tenant,
        question=question or f"question {key}",
        answer=answer or f"answer {key}",
        context="[]",
        context_hash="c" * 64,
        key_hash=key,
        embedding=unit_vectors(1, seed=seed)[0],
    )


def plain(entry: Entry) -> tuple[Any, ...]:
    """An entry without its clock times, for comparisons."""
    return (
        entry.id, entry.tenant, entry.question, entry.answer, entry.context, entry.context_hash,
        entry.key_hash, entry.embedding.tobytes(), entry.hit_count, entry.last_hit_at is None,
    )  # fmt: skip


def fetch(server: PostgresServer | PgvectorServer, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    with server.connect() as conn:
        return list(conn.execute(sql, params).fetchall())


def raises_fast(call: Callable[[], object]) -> float:
    """Seconds until `call` raised BackendUnavailable."""
    began = time.monotonic()
    with pytest.raises(BackendUnavailable):
        call()
    return time.monotonic() - began


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def store(postgres_server: PostgresServer) -> Iterator[PostgresRowStore]:
    row_store = PostgresRowStore(postgres_server.url)
    row_store.start()
    with postgres_server.connect() as conn:
        conn.execute("TRUNCATE mc_entries, mc_tenants, mc_query_log RESTART IDENTITY")
    yield row_store
    row_store.close()


@pytest.fixture
def index(pgvector_server: PgvectorServer) -> Iterator[PgvectorIndex]:
    vector_index = PgvectorIndex(pgvector_server.url, DIM)
    vector_index.start()
    for tenant in INDEX_TENANTS:
        vector_index.drop_tenant(tenant)
    yield vector_index
    vector_index.close()


# -- row store -------------------------------------------------------------------------------


def test_schema_is_created_once_and_start_is_idempotent(
    store: PostgresRowStore, postgres_server: PostgresServer
) -> None:
    again = PostgresRowStore(postgres_server.url)
    again.start()
    again.close()
    where = "WHERE table_name = 'mc_entries'"
    columns = dict(
        fetch(postgres_server, f"SELECT column_name, data_type FROM information_schema.columns {where}")
    )
    indexes = [
        r[0] for r in fetch(postgres_server, "SELECT indexdef FROM pg_indexes WHERE tablename = 'mc_entries'")
    ]
    assert columns["id"] == "bigint" and columns["embedding"] == "bytea"
    assert any("(tenant, key_hash)" in definition for definition in indexes)
    assert isinstance(store, RowStore)


def test_a_table_from_before_second_embeddings_gets_the_column(
    store: PostgresRowStore, postgres_server: PostgresServer
) -> None:
    """Start-up adds the verifier's column to an older table; its rows read back without one."""
    with postgres_server.connect() as conn:
        conn.execute("ALTER TABLE mc_entries DROP COLUMN second_embedding")
        conn.execute(
            "INSERT INTO mc_entries (tenant, question, answer, context, context_hash, key_hash, embedding,"
            " created_at) VALUES ('gpt', 'q', 'a', '[]', 'c', 'k', %s, 1.0)",
            (unit_vectors(1)[0].tobytes(),),
        )
    upgraded = PostgresRowStore(postgres_server.url)
    upgraded.start()
    try:
        [old] = upgraded.find_by_keys("gpt", ["k"]).values()
        assert old.second_embedding is None
        second = np.arange(3, dtype=np.float32)
        [new_id] = upgraded.insert([replace(new_entry("gpt", "k2"), second_embedding=second)])
        [new] = upgraded.get("gpt", [new_id])
        assert new.second_embedding is not None and new.second_embedding.tolist() == [0.0, 1.0, 2.0]
    finally:
        upgraded.close()


def test_tenants_register_list_and_settings(store: PostgresRowStore) -> None:
    names = ["gpt_x", "gpt1", "gpt", "GPT", "b", "a-b", "a.b", "a:b", "Z9"]
    assert [store.register_tenant(name) for name in names] == [True] * len(names)
    assert store.register_tenant("gpt") is False
    assert store.tenants() == sorted(names)  # code point order, as SQLite gives it
    assert store.tenant_settings("gpt") == {} and store.tenant_settings("unknown") == {}
    store.set_tenant_settings("gpt", {"threshold_short": 0.9, "note": "ü"})
    store.set_tenant_settings("new", {"threshold_long": 0.7})
    assert store.tenant_settings("gpt") == {"threshold_short": 0.9, "note": "ü"}
    assert store.tenant_settings("gpt1") == {}
    assert "new" in store.tenants() and store.tenant_settings("new") == {"threshold_long": 0.7}
    store.set_tenant_settings("gpt", {})
    assert store.tenant_settings("gpt") == {}


def test_unicode_and_embeddings_round_trip_exactly(store: PostgresRowStore) -> None:
    special = np.array([0.0, -0.0, 1e-45, -3.4028235e38, np.pi, 1 / 3, 7.0, -1.5], dtype=np.float32)
    entries = [
        NewEntry("gpt", text, text[::-1], f'[{{"role": "user", "content": "{i}"}}]', f"c{i}", f"k{i}", vec)
        for i, (text, vec) in enumerate(zip(UNICODE_TEXTS, [special, *unit_vectors(7)], strict=True))
    ]
    ids = store.insert(entries)
    assert ids == sorted(ids) and len(set(ids)) == len(entries)
    got = {entry.id: entry for entry in store.get("gpt", ids)}
    for entry_id, sent in zip(ids, entries, strict=True):
        back = got[entry_id]
        assert (back.question, back.answer, back.context) == (sent.question, sent.answer, sent.context)
        assert back.embedding.dtype == np.float32 and back.embedding.tobytes() == sent.embedding.tobytes()
        assert back.hit_count == 0 and back.last_hit_at is None and abs(back.created_at - time.time()) < 60


def test_tenants_are_isolated(store: PostgresRowStore) -> None:
    gpt = store.insert([new_entry("gpt", "same", answer="gpt's"), new_entry("gpt", "k2")])
    gpt1 = store.insert([new_entry("gpt1", "same", answer="gpt1's")])
    assert store.get("gpt", gpt1) == [] and store.get("gpt1", gpt) == []
    assert store.find_by_keys("gpt", ["same"])["same"].answer == "gpt's"
    assert store.find_by_keys("gpt1", ["same", "k2"]).keys() == {"same"}
    store.update_answers("gpt", {gpt1[0]: "overwritten"})
    assert store.get("gpt1", gpt1)[0].answer == "gpt1's"
    assert store.delete("gpt", gpt1) == [] and store.count("gpt1") == 1
    assert [ids.tolist() for ids, _ in store.iter_vectors("gpt", 10)] == [gpt]
    assert store.delete_tenant_rows("gpt") == 2
    assert store.count("gpt") == 0 and store.ids("gpt1").tolist() == gpt1


def test_find_by_keys_returns_the_newest_entry_per_key(store: PostgresRowStore) -> None:
    old, new = store.insert([new_entry("gpt", "k", answer="old"), new_entry("gpt", "k", answer="new")])
    found = store.find_by_keys("gpt", ["k", "missing"])
    assert found.keys() == {"k"} and found["k"].id == new > old and found["k"].answer == "new"
    many = store.insert([new_entry("gpt", f"key-{i}") for i in range(1200)])  # more than one chunk
    keys = [f"key-{i}" for i in range(1200)]
    assert {key: entry.id for key, entry in store.find_by_keys("gpt", keys).items()} == dict(
        zip(keys, many, strict=True)
    )
    assert sorted(e.id for e in store.get("gpt", many)) == many
    assert store.find_by_keys("gpt", []) == {} and store.get("gpt", []) == []


def test_update_answers_hits_and_deletes(store: PostgresRowStore) -> None:
    a, b, c = store.insert([new_entry("gpt", key) for key in "abc"])
    store.update_answers("gpt", {a: "new answer"})
    store.add_hits({a: 2, b: 1}, at=1234.5)
    store.add_hits({a: 1}, at=1300.0)
    rows = {e.id: e for e in store.get("gpt", [a, b, c])}
    assert rows[a].answer == "new answer" and rows[b].answer == "answer b"
    assert (rows[a].hit_count, rows[a].last_hit_at) == (3, 1300.0)
    assert (rows[b].hit_count, rows[b].last_hit_at) == (1, 1234.5)
    assert (rows[c].hit_count, rows[c].last_hit_at) == (0, None)
    assert store.delete("gpt", [c, a, 999_999]) == [a, c]
    assert store.delete("gpt", [a]) == [] and store.ids("gpt").tolist() == [b]
    store.register_tenant("gpt")
    assert store.delete_tenant_rows("gpt") == 1 and store.delete_tenant_rows("gpt") == 0
    assert "gpt" in store.tenants()


def test_iter_vectors_in_batches(store: PostgresRowStore) -> None:
    entries = [new_entry("gpt", f"k{i}", seed=i) for i in range(25)]
    ids = store.insert(entries)
    batches = list(store.iter_vectors("gpt", 10))
    assert [len(batch_ids) for batch_ids, _ in batches] == [10, 10, 5]
    assert np.concatenate([batch_ids for batch_ids, _ in batches]).tolist() == ids
    vectors = np.concatenate([vectors for _, vectors in batches])
    assert vectors.dtype == np.float32 and np.array_equal(vectors, np.stack([e.embedding for e in entries]))
    assert list(store.iter_vectors("other", 10)) == []


def test_query_log_and_nul_characters(store: PostgresRowStore, postgres_server: PostgresServer) -> None:
    records = [
        QueryLogRecord("gpt", "hi\x00there", "c" * 64, True, 7, 0.93, 1.5, 1000.0),
        QueryLogRecord("gpt1", "你好", "d" * 64, False, None, None, 2.0, 1001.0),
    ]
    store.write_query_log(records)
    columns = "tenant, question, hit, entry_id, score, latency_ms, created_at"
    rows = fetch(postgres_server, f"SELECT {columns} FROM mc_query_log ORDER BY id")
    assert rows == [
        ("gpt", "hi\ufffdthere", True, 7, 0.93, 1.5, 1000.0),
        ("gpt1", "你好", False, None, None, 2.0, 1001.0),
    ]
    with pytest.raises(InvalidRequest):
        store.insert([new_entry("gpt", "ok"), new_entry("gpt", "bad", answer="nul\x00")])
    assert store.count("gpt") == 0


def test_concurrent_inserts_from_eight_threads(store: PostgresRowStore) -> None:
    results: dict[int, list[int]] = {}
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            ids: list[int] = []
            for batch in range(10):
                ids += store.insert([new_entry("gpt", f"t{n}-b{batch}-{i}") for i in range(5)])
            results[n] = ids
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    every = [i for ids in results.values() for i in ids]
    assert len(every) == len(set(every)) == 400 and store.count("gpt") == 400
    assert all(ids == sorted(ids) for ids in results.values())
    assert sorted(every) == store.ids("gpt").tolist()


def test_unreachable_server_fails_fast() -> None:
    row_store = PostgresRowStore(f"postgresql://postgres@127.0.0.1:{free_port()}/test")
    assert raises_fast(row_store.start) < FAST_S
    assert raises_fast(row_store.ping) < FAST_S  # not started
    vector_index = PgvectorIndex(f"pgvector://postgres@127.0.0.1:{free_port()}/test", DIM)
    assert raises_fast(vector_index.start) < FAST_S


def test_silent_server_times_out() -> None:
    """A port that accepts connections but never answers: the connect timeout (3 s) applies."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        row_store = PostgresRowStore(f"postgresql://postgres@127.0.0.1:{silent.getsockname()[1]}/test")
        assert 2.0 < raises_fast(row_store.start) < FAST_S


def test_registry_and_url_schemes(postgres_server: PostgresServer) -> None:
    tail = postgres_server.url.split("://", 1)[1]
    for scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        row_store = open_row_store(Settings(row_store=f"{scheme}://{tail}"))
        assert isinstance(row_store, PostgresRowStore)
        row_store.start()
        row_store.ping()
        row_store.close()
    assert isinstance(open_vector_index(Settings(vector_index=f"pgvector://{tail}"), DIM), PgvectorIndex)
    with pytest.raises(ConfigurationError):
        PostgresRowStore(f"postgresql://{tail}?no_such_option=1").start()


def scenario(store: RowStore) -> list[Any]:
    """The same calls on any row store; the results must not depend on the backend."""
    out: list[Any] = [store.register_tenant("gpt"), store.register_tenant("gpt"), store.register_tenant("G")]
    ids = store.insert([new_entry("gpt", "k", seed=1), new_entry("gpt", "k", seed=2), new_entry("G", "x")])
    store.update_answers("gpt", {ids[0]: "changed", ids[2]: "not mine"})
    store.add_hits({ids[1]: 3}, 99.0)
    store.set_tenant_settings("gpt", {"threshold_short": 0.5})
    out += [ids, store.tenants(), store.tenant_settings("gpt"), store.count("gpt"), store.ids("G").tolist()]
    out += [{k: plain(e) for k, e in store.find_by_keys("gpt", ["k", "nope"]).items()}]
    out += [sorted(plain(e) for e in store.get("gpt", [*ids, 42]))]
    out += [store.delete("gpt", [ids[0], ids[2], 42]), store.delete_tenant_rows("G"), store.tenants()]
    return out


def test_same_results_as_sqlite(store: PostgresRowStore, tmp_path: Path) -> None:
    sqlite = SQLiteRowStore(tmp_path / "rows.db")
    sqlite.start()
    try:
        assert scenario(store) == scenario(sqlite)
    finally:
        sqlite.close()


def test_recovers_from_killed_connections(store: PostgresRowStore, postgres_server: PostgresServer) -> None:
    """Connections the server ended are noticed before use and replaced: no request fails."""
    store.insert([new_entry("gpt", "k")])
    kill = (
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    for pause in (0.0, 1.2):  # just used, and idle long enough to be pinged anyway
        assert fetch(postgres_server, kill)[0][0] >= 1
        time.sleep(pause)
        assert store.count("gpt") == 1


def test_row_store_recovers_after_server_restart(pgvector_server: PgvectorServer) -> None:
    row_store = PostgresRowStore(pgvector_server.row_url)
    row_store.start()
    try:
        row_store.register_tenant("gpt")
        pgvector_server.stop()
        try:
            assert raises_fast(lambda: row_store.count("gpt")) < FAST_S
            assert raises_fast(lambda: row_store.count("gpt")) < FAST_S
        finally:
            pgvector_server.start()
        assert "gpt" in row_store.tenants()
        pgvector_server.stop()  # a restart between two calls fails neither
        pgvector_server.start()
        assert "gpt" in row_store.tenants()
    finally:
        row_store.close()


# -- pgvector ----------------------------------------------------------------------------------


def test_search_matches_numpy_cosine(index: PgvectorIndex) -> None:
    vectors = unit_vectors(300, seed=1)
    ids = np.arange(1000, 1300, dtype=np.int64)
    assert index.ensure_tenant("gpt") is True and index.ensure_tenant("gpt") is False
    index.add("gpt", ids[:150], vectors[:150])
    index.add("gpt", ids[150:], vectors[150:])
    queries = unit_vectors(5, seed=2)
    found_ids, scores = index.search("gpt", queries, 10)
    assert found_ids.shape == scores.shape == (5, 10)
    assert found_ids.dtype == np.int64 and scores.dtype == np.float32
    cosine = queries @ vectors.T
    best = np.argsort(-cosine, axis=1)[:, :10]
    assert np.array_equal(found_ids, ids[best])
    np.testing.assert_allclose(scores, np.take_along_axis(cosine, best, axis=1), atol=1e-5)
    assert index.count("gpt") == 300 and np.array_equal(index.ids("gpt"), ids)


def test_hnsw_index_on_cosine_distance(index: PgvectorIndex, pgvector_server: PgvectorServer) -> None:
    index.ensure_tenant("GPT")
    sql = "SELECT indexdef FROM pg_indexes WHERE tablename = %s"
    definitions = [row[0] for row in fetch(pgvector_server, sql, (table_name("GPT"),))]
    assert any("USING hnsw (embedding vector_cosine_ops)" in d for d in definitions)


def test_padding_delete_drop_and_upsert(index: PgvectorIndex) -> None:
    vectors = unit_vectors(3, seed=3)
    index.add("gpt", np.array([1, 2, 3]), vectors)
    found_ids, scores = index.search("gpt", vectors[:1], 5)
    assert found_ids[0, 0] == 1 and found_ids[0, 3:].tolist() == [-1, -1]
    assert scores[0, 0] == pytest.approx(1.0, abs=1e-5) and np.all(scores[0, 3:] == np.finfo(np.float32).min)
    index.delete("gpt", np.array([1, 99]))
    index.delete("gpt", np.array([], dtype=np.int64))
    assert 1 not in index.search("gpt", vectors[:1], 5)[0] and index.ids("gpt").tolist() == [2, 3]
    index.add("gpt", np.array([2]), vectors[:1])  # same id again: replaced, not duplicated
    assert index.count("gpt") == 2 and index.search("gpt", vectors[:1], 1)[0].tolist() == [[2]]
    index.drop_tenant("gpt")
    index.drop_tenant("gpt")
    assert index.count("gpt") == 0 and index.ids("gpt").tolist() == []
    assert index.search("gpt", vectors, 4)[0].tolist() == [[-1] * 4] * 3


def test_missing_tenant_is_empty_and_not_created(index: PgvectorIndex) -> None:
    found_ids, scores = index.search("gpt1", unit_vectors(2), 3)
    assert found_ids.tolist() == [[-1] * 3] * 2 and scores.tolist() == [[0.0] * 3] * 2
    index.delete("gpt1", np.array([1]))
    assert index.count("gpt1") == 0 and index.ids("gpt1").tolist() == []
    assert index.ensure_tenant("gpt1") is True


@pytest.mark.parametrize(("a", "b"), [("gpt", "gpt1"), ("gpt", "GPT"), (LONG_A, LONG_B)])
def test_tenants_are_isolated_in_the_index(index: PgvectorIndex, a: str, b: str) -> None:
    assert table_name(a) != table_name(b) and len(table_name(LONG_A)) <= 63
    vectors = unit_vectors(4, seed=4)
    index.add(a, np.array([1, 2]), vectors[:2])
    index.add(b, np.array([3, 4]), vectors[:2])
    assert set(index.search(a, vectors[:2], 4)[0].ravel()) == {1, 2, -1}
    index.delete(b, np.array([1, 2]))
    index.drop_tenant(b)
    assert index.count(a) == 2 and index.count(b) == 0


def test_same_results_as_faiss(index: PgvectorIndex, tmp_path: Path) -> None:
    faiss = FaissIndex(tmp_path, DIM)
    faiss.start()
    try:
        vectors, queries = unit_vectors(40, seed=5), unit_vectors(3, seed=6)
        for backend in (faiss, index):
            backend.add("gpt", np.arange(40), vectors)
            backend.delete("gpt", np.arange(0, 40, 3))
        for k in (1, 5, 30):
            (faiss_ids, faiss_scores), (pg_ids, pg_scores) = (
                b.search("gpt", queries, k) for b in (faiss, index)
            )
            assert np.array_equal(pg_ids, faiss_ids)
            np.testing.assert_allclose(pg_scores, faiss_scores, atol=1e-5)
        assert np.array_equal(index.ids("gpt"), faiss.ids("gpt"))
        assert [b.count("gpt") for b in (faiss, index)] == [26, 26]
        for backend in (faiss, index):
            assert backend.search("gpt9", queries, 2)[0].tolist() == [[-1, -1]] * 3, backend.name
    finally:
        faiss.close()


def test_index_recovers_after_server_restart(index: PgvectorIndex, pgvector_server: PgvectorServer) -> None:
    vectors = unit_vectors(5, seed=7)
    index.add("gpt", np.arange(5), vectors)
    before = index.search("gpt", vectors, 3)
    pgvector_server.stop()
    try:
        assert raises_fast(lambda: index.search("gpt", vectors, 3)) < FAST_S
        assert raises_fast(lambda: index.add("gpt", np.array([9]), vectors[:1])) < FAST_S
        assert raises_fast(index.ping) < FAST_S
    finally:
        pgvector_server.start()
    after = index.search("gpt", vectors, 3)
    assert np.array_equal(after[0], before[0]) and np.allclose(after[1], before[1])
    assert index.count("gpt") == 5


def test_server_without_pgvector_is_a_configuration_error(postgres_server: PostgresServer) -> None:
    with postgres_server.connect() as conn:
        if conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone():
            pytest.skip("this PostgreSQL has pgvector")
    tail = postgres_server.url.split("://", 1)[1]
    with pytest.raises(ConfigurationError, match="pgvector"):
        PgvectorIndex(f"pgvector://{tail}", DIM).start()


def test_dimensions_pgvector_cannot_index_are_refused() -> None:
    for dim in (0, 2001):
        with pytest.raises(ConfigurationError):
            PgvectorIndex("pgvector://u@127.0.0.1:1/db", dim)
