"""RedisVectorIndex against a real Redis 8 with the search module (tests/backends/redis_stack.py)."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from modelcache.errors import BackendUnavailable, ConfigurationError, MissingDependency
from modelcache.settings import Settings
from modelcache.storage import VectorIndex, open_vector_index
from modelcache.storage.redis_vector import RedisVectorIndex
from modelcache.tenants import backend_name
from tests.backends.redis_stack import RedisServer

DIM = 32

MakeIndex = Callable[..., RedisVectorIndex]


def unit_vectors(n: int, seed: int, dim: int = DIM) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def exact_top_k(stored: np.ndarray, ids: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    order = np.argsort(-(queries @ stored.T), axis=1, kind="stable")[:, :k]
    return ids[order]


def keys_of(server: RedisServer, tenant: str) -> list[bytes]:
    client = server.client()
    try:
        return list(client.scan_iter(match=f"{backend_name(tenant)}:*"))
    finally:
        client.close()


@pytest.fixture(params=["HNSW", "FLAT"])
def algorithm(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def make_index(redis_server: RedisServer, algorithm: str) -> Iterator[MakeIndex]:
    """Started indexes on the session server, one per call: each stands for a replica."""
    made: list[RedisVectorIndex] = []

    def make(dim: int = DIM, timeout: float = 5.0) -> RedisVectorIndex:
        url = f"{redis_server.url}?algorithm={algorithm}&timeout={timeout}"
        index = RedisVectorIndex.from_url(url, Settings(), dim)
        index.start()
        made.append(index)
        return index

    yield make
    for index in made:
        index.close()


@pytest.fixture
def index(make_index: MakeIndex) -> RedisVectorIndex:
    return make_index()


@pytest.fixture
def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


# -- configuration -----------------------------------------------------------------------


def test_url_options_are_parsed_and_stripped():
    url = "redis://:secret@db.example:6380/2?algorithm=flat&timeout=2.5&ef_runtime=200"
    index = RedisVectorIndex.from_url(url, Settings(), 8)
    assert (index.url, index.algorithm, index.timeout_s, index.ef_runtime, index.dim) == (
        "redis://:secret@db.example:6380/2",
        "FLAT",
        2.5,
        200,
        8,
    )
    assert "secret" not in index.address
    assert RedisVectorIndex.from_url("rediss://db.example", Settings(), 8).algorithm == "HNSW"


@pytest.mark.parametrize(
    "url",
    [
        "redis://h:1?algorithm=IVF",
        "redis://h:1?timeout=soon",
        "redis://h:1?timeout=0",
        "redis://h:1?ef_runtime=0",
        "redis://h:1?ef_runtime=1.5",
        "redis://h:1?x=1",
        "http://h:1",
    ],
)
def test_bad_url_options_are_configuration_errors(url: str):
    with pytest.raises(ConfigurationError):
        RedisVectorIndex.from_url(url, Settings(), 8)


def test_registered_for_redis_urls():
    for url in ("redis://127.0.0.1:1", "rediss://127.0.0.1:1"):
        index = open_vector_index(Settings(vector_index=url), 8)
        assert isinstance(index, RedisVectorIndex)
        assert isinstance(index, VectorIndex)
        assert index.name == "redis" and not index.local


def test_missing_redis_package_names_the_extra(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(MissingDependency, match=r"modelcache\[redis\]"):
        RedisVectorIndex("redis://127.0.0.1:1", 8).start()


# -- vectors -----------------------------------------------------------------------------


def test_search_orders_by_cosine_like_numpy(index: RedisVectorIndex, tenant: str, algorithm: str):
    stored = unit_vectors(300, seed=1)
    ids = np.random.default_rng(2).permutation(np.arange(1000, 1300)).astype(np.int64)
    assert index.ensure_tenant(tenant)
    index.add(tenant, ids, stored)
    queries = unit_vectors(8, seed=3)
    found, scores = index.search(tenant, queries, 10)
    assert found.shape == scores.shape == (8, 10)
    assert found.dtype == np.int64 and scores.dtype == np.float32
    expected = exact_top_k(stored, ids, queries, 10)
    if algorithm == "FLAT":
        np.testing.assert_array_equal(found, expected)
    else:  # approximate; with EF_RUNTIME 64 it finds (nearly) all of 300
        recall = np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, expected, strict=True)])
        assert recall >= 0.95
    position = {int(i): row for row, i in enumerate(ids)}
    for query, row_ids, row_scores in zip(queries, found, scores, strict=True):
        cosine = stored[[position[int(i)] for i in row_ids]] @ query
        np.testing.assert_allclose(row_scores, cosine, atol=1e-5)
        assert np.all(np.diff(row_scores) <= 1e-6)


def test_a_stored_vector_finds_itself_right_after_add(index: RedisVectorIndex, tenant: str):
    stored = unit_vectors(2000, seed=4)
    ids = np.arange(1, 2001, dtype=np.int64)
    index.add(tenant, ids, stored)  # without ensure_tenant: add creates the index
    assert index.count(tenant) == 2000
    sample = np.arange(0, 2000, 97)
    found, scores = index.search(tenant, stored[sample], 3)
    np.testing.assert_array_equal(found[:, 0], ids[sample])
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)


def test_missing_slots_are_minus_one(index: RedisVectorIndex, tenant: str):
    index.add(tenant, np.array([7, 8, 9]), unit_vectors(3, seed=5))
    found, scores = index.search(tenant, unit_vectors(2, seed=6), 5)
    assert sorted(found[0, :3]) == [7, 8, 9]
    np.testing.assert_array_equal(found[:, 3:], -1)
    assert np.all(scores[:, 3:] < -1)


def test_tenant_without_index_finds_nothing(index: RedisVectorIndex, tenant: str):
    found, scores = index.search(tenant, unit_vectors(3, seed=7), 4)
    np.testing.assert_array_equal(found, np.full((3, 4), -1))
    np.testing.assert_array_equal(scores, np.zeros((3, 4)))
    assert index.count(tenant) == 0
    assert index.ids(tenant) is not None and len(index.ids(tenant)) == 0  # type: ignore[arg-type]
    index.delete(tenant, np.array([1, 2]))
    index.drop_tenant(tenant)


def test_delete(index: RedisVectorIndex, tenant: str):
    stored = unit_vectors(50, seed=8)
    ids = np.arange(100, 150, dtype=np.int64)
    index.add(tenant, ids, stored)
    gone = ids[::5]
    index.delete(tenant, np.append(gone, 99999))
    assert index.count(tenant) == 40
    kept = np.setdiff1d(ids, gone)
    np.testing.assert_array_equal(index.ids(tenant), kept)  # type: ignore[arg-type]
    found, _ = index.search(tenant, stored[::5], 50)
    assert not set(found.ravel().tolist()) & set(gone.tolist())
    assert set(found[0].tolist()) == {*kept.tolist(), -1}


def test_drop_tenant_removes_index_and_keys(index: RedisVectorIndex, tenant: str, redis_server: RedisServer):
    index.add(tenant, np.arange(20), unit_vectors(20, seed=9))
    assert len(keys_of(redis_server, tenant)) == 20
    index.drop_tenant(tenant)
    assert keys_of(redis_server, tenant) == []
    assert index.count(tenant) == 0
    found, _ = index.search(tenant, unit_vectors(1, seed=9), 3)
    np.testing.assert_array_equal(found, -1)
    assert index.ensure_tenant(tenant)
    index.add(tenant, np.array([5]), unit_vectors(1, seed=10))
    assert index.search(tenant, unit_vectors(1, seed=10), 2)[0].tolist() == [[5, -1]]


def test_ensure_tenant_is_idempotent_across_replicas(make_index: MakeIndex, tenant: str):
    first, second = make_index(), make_index()
    assert first.ensure_tenant(tenant)
    assert not first.ensure_tenant(tenant)
    assert not second.ensure_tenant(tenant)  # 'Index already exists' is fine


def test_existing_index_of_another_dimension_is_refused(make_index: MakeIndex, tenant: str):
    make_index().ensure_tenant(tenant)
    with pytest.raises(ConfigurationError, match="dimension"):
        make_index(dim=DIM // 2).ensure_tenant(tenant)


def test_wrong_vector_shape_is_refused(index: RedisVectorIndex, tenant: str):
    with pytest.raises(ConfigurationError):
        index.add(tenant, np.array([1]), unit_vectors(1, seed=11, dim=DIM + 1))
    with pytest.raises(ConfigurationError):
        index.add(tenant, np.array([1, 2]), unit_vectors(1, seed=11))
    with pytest.raises(ConfigurationError):
        index.search(tenant, unit_vectors(1, seed=11, dim=DIM - 1), 3)


# -- tenants -----------------------------------------------------------------------------


def test_tenants_with_overlapping_names_are_isolated(index: RedisVectorIndex, redis_server: RedisServer):
    # `gpt_<hash of gpt>` maps to a backend name that starts with gpt's: only the ':' that
    # ends every key prefix keeps gpt's index from covering its keys.
    lookalike = "gpt_" + backend_name("gpt").rsplit("_", 1)[1]
    assert backend_name(lookalike).startswith(backend_name("gpt"))
    tenants = {"gpt": np.arange(1, 4), "gpt1": np.arange(11, 14), lookalike: np.arange(21, 24)}
    for seed, (name, ids) in enumerate(tenants.items()):
        index.drop_tenant(name)
        index.add(name, ids, unit_vectors(3, seed=20 + seed))
    probe = unit_vectors(3, seed=20 + 1)  # gpt1's own vectors
    for name, ids in tenants.items():
        found, _ = index.search(name, probe, 10)
        assert set(found.ravel().tolist()) - {-1} == set(ids.tolist()), name
        assert index.count(name) == 3
        np.testing.assert_array_equal(index.ids(name), ids)  # type: ignore[arg-type]
        assert len(keys_of(redis_server, name)) == 3
    index.delete("gpt", tenants["gpt1"])
    index.drop_tenant("gpt1")
    assert index.count("gpt") == 3 and index.count(lookalike) == 3
    assert keys_of(redis_server, "gpt1") == []
    assert len(keys_of(redis_server, "gpt")) == 3
    index.drop_tenant("gpt")
    assert index.count(lookalike) == 3 and len(keys_of(redis_server, lookalike)) == 3
    index.drop_tenant(lookalike)


# -- replicas and restarts ---------------------------------------------------------------


def test_replicas_see_each_others_writes_and_drops(make_index: MakeIndex, tenant: str):
    first, second = make_index(), make_index()
    old = unit_vectors(10, seed=30)
    first.add(tenant, np.arange(10), old)
    assert second.search(tenant, old[:1], 1)[0].tolist() == [[0]]
    second.drop_tenant(tenant)
    new = unit_vectors(4, seed=31)
    first.add(tenant, np.arange(100, 104), new)  # `first` still believes the index exists
    assert second.count(tenant) == 4
    found, _ = second.search(tenant, old, 10)
    assert set(found.ravel().tolist()) - {-1} == {100, 101, 102, 103}
    second.drop_tenant(tenant)
    np.testing.assert_array_equal(first.search(tenant, old[:1], 3)[0], -1)
    first.add(tenant, np.array([7]), old[:1])
    assert second.search(tenant, old[:1], 2)[0].tolist() == [[7, -1]]


def test_index_comes_back_after_the_server_loses_everything(
    index: RedisVectorIndex, tenant: str, redis_server: RedisServer
):
    index.add(tenant, np.arange(5), unit_vectors(5, seed=40))
    client = redis_server.client()
    try:
        client.flushall()  # as if the server restarted empty
    finally:
        client.close()
    index.add(tenant, np.array([9]), unit_vectors(1, seed=41))
    assert index.search(tenant, unit_vectors(1, seed=41), 2)[0].tolist() == [[9, -1]]
    assert index.count(tenant) == 1


def _all_operations(index: RedisVectorIndex, tenant: str) -> list[Callable[[], object]]:
    vector = unit_vectors(1, seed=50)
    return [
        index.ping,
        lambda: index.search(tenant, vector, 3),
        lambda: index.add(tenant, np.array([2]), vector),
        lambda: index.ensure_tenant(f"{tenant}-new"),
        lambda: index.delete(tenant, np.array([1])),
        lambda: index.count(tenant),
        lambda: index.ids(tenant),
        lambda: index.drop_tenant(f"{tenant}-new"),
    ]


def test_stopped_server_is_unavailable_fast_then_works_again(redis_server: RedisServer, tenant: str):
    index = RedisVectorIndex.from_url(f"{redis_server.url}?timeout=2", Settings(), DIM)
    index.start()
    vector = unit_vectors(1, seed=50)
    index.add(tenant, np.array([1]), vector)
    redis_server.stop()
    try:
        for operation in _all_operations(index, tenant):
            started = time.monotonic()
            with pytest.raises(BackendUnavailable) as info:
                operation()
            assert time.monotonic() - started < 2.0
            assert info.value.http_status == 503 and info.value.backend == "redis"
    finally:
        redis_server.start()
    assert index.search(tenant, vector, 2)[0].tolist() == [[1, -1]]  # kept across the restart
    index.add(tenant, np.array([2]), unit_vectors(1, seed=51))
    assert index.count(tenant) == 2
    index.close()


def test_server_restart_while_idle_is_invisible(redis_server: RedisServer, tenant: str):
    index = RedisVectorIndex.from_url(redis_server.url, Settings(), DIM)
    index.start()
    vector = unit_vectors(1, seed=55)
    index.add(tenant, np.array([3]), vector)
    redis_server.stop()
    redis_server.start()
    assert index.search(tenant, vector, 1)[0].tolist() == [[3]]  # its pooled connection was stale
    index.close()


def test_hung_server_times_out_then_works_again(redis_server: RedisServer, tenant: str):
    index = RedisVectorIndex.from_url(f"{redis_server.url}?timeout=1", Settings(), DIM)
    index.start()
    vector = unit_vectors(1, seed=60)
    index.add(tenant, np.array([1]), vector)
    redis_server.pause()
    try:
        started = time.monotonic()
        with pytest.raises(BackendUnavailable):
            index.search(tenant, vector, 2)
        assert 0.9 <= time.monotonic() - started < 3.0
    finally:
        redis_server.resume()
    assert index.search(tenant, vector, 2)[0].tolist() == [[1, -1]]
    index.close()
