"""MilvusIndex against a real Milvus 2.3.5 standalone and Milvus Lite (tests/backends/milvus.py)."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from modelcache.errors import BackendUnavailable, ConfigurationError, MissingDependency
from modelcache.settings import Settings
from modelcache.storage import VectorIndex, open_vector_index
from modelcache.storage.faiss_index import FaissIndex
from modelcache.storage.milvus import MilvusIndex, MilvusOptions, metric_for_version
from modelcache.tenants import backend_name
from tests.backends import free_port
from tests.backends.milvus import ProcessGroupServer

DIM = 32
#: An unreachable or frozen server must be reported within this many seconds.
FAST_S = 3.0

MakeIndex = Callable[..., MilvusIndex]


def unit_vectors(n: int, seed: int, dim: int = DIM) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def wait_until(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll `check` until it holds (True) or the time is up (False): for other replicas' writes."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def found_ids(index: VectorIndex, tenant: str, vectors: np.ndarray, k: int = 10) -> set[int]:
    ids, _ = index.search(tenant, vectors, k)
    return {int(i) for i in ids.ravel() if i >= 0}


def found_once_ready(index: VectorIndex, tenant: str, vectors: np.ndarray) -> set[int]:
    """`found_ids` once the server answers (a restarted Milvus reloads collections first)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return found_ids(index, tenant, vectors)
        except BackendUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture(params=["milvus_server", "milvus_lite_server"])
def server(request: pytest.FixtureRequest) -> ProcessGroupServer:
    handle: ProcessGroupServer = request.getfixturevalue(request.param)
    return handle


@pytest.fixture
def make_index(server: ProcessGroupServer) -> Iterator[MakeIndex]:
    """Started indexes on the session server, one per call: each stands for a replica."""
    made: list[MilvusIndex] = []

    def make(query: str = "") -> MilvusIndex:
        index = MilvusIndex.from_url(f"{server.url}{query}", Settings(), DIM)
        made.append(index)
        index.start()
        return index

    yield make
    for index in made:
        index.close()


@pytest.fixture
def index(make_index: MakeIndex) -> MilvusIndex:
    return make_index()


@pytest.fixture
def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def faiss(tmp_path: Path) -> Iterator[FaissIndex]:
    index = FaissIndex(tmp_path, DIM)
    index.start()
    yield index
    index.close()


# -- configuration (no server) -----------------------------------------------------------


def test_url_options_are_parsed():
    url = "milvus://alice:p%40ss@db.example:19531?consistency=strong&timeout=2.5"
    assert MilvusIndex.from_url(url, Settings(), 8).options == MilvusOptions(
        "db.example", 19531, "alice", "p@ss", "Strong", 2.5
    )
    assert MilvusIndex.from_url("milvus://db.example", Settings(), 8).options == MilvusOptions("db.example")
    assert MilvusOptions("::1").uri == "http://[::1]:19530"


@pytest.mark.parametrize(
    "url",
    [
        "milvus://",
        "milvus://db?consistency=Weak",
        "milvus://db?timeout=0",
        "milvus://db?timeout=soon",
        "milvus://db?timeout=1&timeout=2",
        "milvus://db?index=FLAT",
        "milvus://db/other_database",
        "milvus://db:99999",
    ],
)
def test_bad_urls_are_refused(url: str):
    with pytest.raises(ConfigurationError):
        MilvusIndex.from_url(url, Settings(), 8)


def test_registered_by_scheme():
    index = open_vector_index(Settings(vector_index="milvus://127.0.0.1:19530"), 8)
    assert isinstance(index, MilvusIndex)
    assert isinstance(index, VectorIndex)
    assert (index.name, index.local, index.dim) == ("milvus", False, 8)


@pytest.mark.parametrize(
    ("version", "metric"),
    [
        ("v2.2.14", "IP"),
        ("2.1.0", "IP"),
        ("v2.3.5-lite", "COSINE"),
        ("milvus_lite-3.2.2", "COSINE"),
        ("", "COSINE"),
    ],
)
def test_metric_follows_server_version(version: str, metric: str):
    assert metric_for_version(version) == metric


def test_missing_pymilvus_names_the_extra(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "pymilvus", None)
    with pytest.raises(MissingDependency, match=r"modelcache\[milvus\]"):
        MilvusIndex.from_url("milvus://127.0.0.1", Settings(), 8).start()


def test_unreachable_server_fails_fast():
    index = MilvusIndex.from_url(f"milvus://127.0.0.1:{free_port()}?timeout=2", Settings(), 8)
    started = time.monotonic()
    with pytest.raises(BackendUnavailable):
        index.start()
    with pytest.raises(BackendUnavailable):
        index.search("gpt", unit_vectors(1, 0, 8), 3)
    assert time.monotonic() - started < FAST_S


# -- one index ---------------------------------------------------------------------------


def test_search_ranks_and_scores_like_numpy_cosine(index: MilvusIndex, tenant: str):
    stored = unit_vectors(200, seed=1)
    ids = np.arange(1000, 1200, dtype=np.int64)
    index.add(tenant, ids, stored)
    queries = np.vstack([unit_vectors(5, seed=2), stored[[0, 99, 199]]])
    found, scores = index.search(tenant, queries, 10)
    assert found.shape == scores.shape == (8, 10)
    assert (found.dtype, scores.dtype) == (np.int64, np.float32)
    cosine = queries @ stored.T
    order = np.argsort(-cosine, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(found, ids[order])
    np.testing.assert_allclose(scores, np.take_along_axis(cosine, order, axis=1), atol=1e-5)
    np.testing.assert_allclose(scores[5:, 0], 1.0, atol=1e-5)
    assert index.count(tenant) == 200
    np.testing.assert_array_equal(index.ids(tenant), ids)


def test_empty_slots_and_missing_tenants_look_like_faiss(index: MilvusIndex, faiss: FaissIndex, tenant: str):
    stored, queries = unit_vectors(3, seed=3), unit_vectors(2, seed=4)
    for backend in (index, faiss):
        backend.add(tenant, np.array([7, 8, 9]), stored)
    (ids, scores), (faiss_ids, faiss_scores) = (b.search(tenant, queries, 5) for b in (index, faiss))
    np.testing.assert_array_equal(ids, faiss_ids)
    np.testing.assert_allclose(scores, faiss_scores, atol=1e-5)
    assert (ids[:, 3:] == -1).all() and (scores[:, 3:] == np.finfo(np.float32).min).all()
    for name, asked in ((f"{tenant}-none", queries), (tenant, queries[:0])):  # no tenant; no queries
        for k in (1, 4):
            got, want = index.search(name, asked, k), faiss.search(name, asked, k)
            for mine, theirs in zip(got, want, strict=True):
                np.testing.assert_array_equal(mine, theirs)
                assert mine.dtype == theirs.dtype


def test_missing_tenant_is_not_created_by_reads(index: MilvusIndex, tenant: str):
    ids, scores = index.search(tenant, unit_vectors(2, seed=5), 4)
    np.testing.assert_array_equal(ids, np.full((2, 4), -1))
    np.testing.assert_array_equal(scores, np.zeros((2, 4)))
    assert index.count(tenant) == 0
    np.testing.assert_array_equal(index.ids(tenant), np.zeros(0, np.int64))
    index.delete(tenant, np.array([1, 2]))
    assert index.ensure_tenant(tenant) is True  # so nothing above created it
    assert index.ensure_tenant(tenant) is False


def test_delete_is_seen_at_once(index: MilvusIndex, tenant: str):
    stored = unit_vectors(20, seed=6)
    ids = np.arange(1, 21, dtype=np.int64)
    index.add(tenant, ids, stored)
    index.delete(tenant, np.array([3, 7, 11, 999_999]))
    index.delete(tenant, np.array([], dtype=np.int64))
    assert found_ids(index, tenant, stored[[2, 6, 10]], k=20).isdisjoint({3, 7, 11})
    assert index.count(tenant) == 17
    np.testing.assert_array_equal(index.ids(tenant), np.setdiff1d(ids, [3, 7, 11]))
    index.add(tenant, np.array([3]), stored[[2]])  # an insert after a delete is seen too
    assert int(index.search(tenant, stored[[2]], 1)[0][0, 0]) == 3


def test_drop_tenant(index: MilvusIndex, tenant: str):
    stored = unit_vectors(5, seed=7)
    index.add(tenant, np.arange(5), stored)
    index.drop_tenant(tenant)
    assert found_ids(index, tenant, stored) == set()
    assert index.count(tenant) == 0
    index.drop_tenant(tenant)  # dropping what is gone is fine
    assert index.ensure_tenant(tenant) is True
    index.add(tenant, np.array([42]), stored[[0]])
    assert found_ids(index, tenant, stored) == {42}


def test_tenants_gpt_and_gpt1_are_isolated(index: MilvusIndex):
    for tenant in ("gpt", "gpt1"):
        index.drop_tenant(tenant)
    assert backend_name("gpt") != backend_name("gpt1")
    gpt, gpt1 = unit_vectors(5, seed=8), unit_vectors(5, seed=9)
    same_ids = np.arange(1, 6, dtype=np.int64)
    index.add("gpt", same_ids, gpt)
    index.add("gpt1", same_ids, gpt1)
    ids, scores = index.search("gpt", gpt1, 5)  # gpt1's vectors find gpt's, never themselves
    cosine = gpt1 @ gpt.T
    order = np.argsort(-cosine, axis=1)
    np.testing.assert_array_equal(ids, same_ids[order])
    np.testing.assert_allclose(scores, np.take_along_axis(cosine, order, axis=1), atol=1e-5)
    index.delete("gpt1", np.array([1, 2]))
    assert (index.count("gpt"), index.count("gpt1")) == (5, 3)
    index.drop_tenant("gpt")
    assert (index.count("gpt"), index.count("gpt1")) == (0, 3)
    assert found_ids(index, "gpt1", gpt1) == {3, 4, 5}
    index.drop_tenant("gpt1")


def test_wrong_dimension_is_a_configuration_error(
    index: MilvusIndex, server: ProcessGroupServer, tenant: str
):
    with pytest.raises(ConfigurationError):
        index.add(tenant, np.array([1]), unit_vectors(1, seed=10, dim=DIM + 1))
    index.ensure_tenant(tenant)
    other = MilvusIndex.from_url(server.url, Settings(), DIM * 2)
    other.start()
    try:
        with pytest.raises(ConfigurationError, match="dimensional"):
            other.ensure_tenant(tenant)
    finally:
        other.close()


def test_collection_left_without_index_is_completed(index: MilvusIndex, tenant: str):
    """As a process that died between creating the collection and its index leaves it."""
    from pymilvus import DataType, MilvusClient

    raw = MilvusClient(uri=index.options.uri, timeout=5, dedicated=True)
    schema = raw.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=DIM)
    raw.create_collection(backend_name(tenant), schema=schema, timeout=30)
    raw.close()
    assert index.ensure_tenant(tenant) is False
    stored = unit_vectors(3, seed=14)
    index.add(tenant, np.arange(1, 4), stored)
    assert found_ids(index, tenant, stored) == {1, 2, 3}


# -- replicas ----------------------------------------------------------------------------


def test_two_replicas_see_each_others_inserts_and_drops(make_index: MakeIndex, tenant: str):
    one, two = make_index(), make_index()
    stored = unit_vectors(10, seed=11)
    one.add(tenant, np.arange(1, 11), stored)
    assert wait_until(lambda: found_ids(two, tenant, stored) == set(range(1, 11)))
    two.drop_tenant(tenant)  # `one` still remembers the collection as loaded
    one.add(tenant, np.array([5]), stored[[4]])  # finds it gone and creates it again
    assert found_ids(one, tenant, stored) == {5}
    assert wait_until(lambda: found_ids(two, tenant, stored) == {5})
    two.drop_tenant(tenant)
    assert found_ids(one, tenant, stored) == set()  # remembered, gone: nothing, no error
    assert one.count(tenant) == 0
    two.add(tenant, np.array([5, 6]), stored[[4, 5]])
    assert wait_until(lambda: one.count(tenant) == 2)
    two.delete(tenant, np.array([5]))
    assert wait_until(lambda: found_ids(one, tenant, stored) == {6})


REPLICA = """
import sys, time
import numpy as np
from modelcache.settings import Settings
from modelcache.storage.milvus import MilvusIndex

url, tenant, wanted, dim = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
index = MilvusIndex.from_url(url, Settings(), dim)
index.start()
probe = np.zeros((1, dim), np.float32)
probe[0, 0] = 1.0
index.search(tenant, probe, 1)  # the collection is found and remembered before timing
print("ready", flush=True)
sys.stdin.readline()  # the other process has inserted
started = time.monotonic()
while time.monotonic() - started < 10:
    if index.search(tenant, probe, 1)[0][0, 0] == wanted:
        print(f"seen after {time.monotonic() - started:.3f} s", flush=True)
        break
    time.sleep(0.01)
else:
    print("not seen in 10 s", flush=True)
index.close()
"""


def test_replica_in_another_process_sees_inserts(index: MilvusIndex, tenant: str, server: ProcessGroupServer):
    index.ensure_tenant(tenant)
    command = [sys.executable, "-c", REPLICA, server.url, tenant, "77", str(DIM)]
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as replica:
        assert replica.stdin is not None and replica.stdout is not None
        assert replica.stdout.readline().strip() == "ready"
        vector = np.zeros((1, DIM), np.float32)
        vector[0, 0] = 1.0
        index.add(tenant, np.array([77]), vector)
        replica.stdin.write("\n")
        replica.stdin.flush()
        report = replica.stdout.readline().strip()
    print(f"{server.url}: other process {report}")
    assert report.startswith("seen after"), report


# -- faults ------------------------------------------------------------------------------


def test_server_down_fails_fast_and_the_same_index_recovers(
    server: ProcessGroupServer, make_index: MakeIndex, tenant: str
):
    index = make_index()
    stored = unit_vectors(4, seed=12)
    index.add(tenant, np.arange(1, 5), stored)
    server.stop()
    try:
        started = time.monotonic()
        for action in (
            lambda: index.search(tenant, stored, 2),
            lambda: index.add(tenant, np.array([9]), stored[[0]]),
            lambda: index.delete(tenant, np.array([1])),
            lambda: index.count(tenant),
            index.ping,
            lambda: make_index(),
        ):
            with pytest.raises(BackendUnavailable):
                action()
        assert time.monotonic() - started < FAST_S
    finally:
        server.start()
    assert found_once_ready(index, tenant, stored) == {1, 2, 3, 4}  # acknowledged writes survived
    index.add(tenant, np.array([9]), stored[[0]])
    assert index.count(tenant) == 5
    index.ping()


def test_frozen_server_times_out_and_recovers(server: ProcessGroupServer, make_index: MakeIndex, tenant: str):
    index = make_index("?timeout=1.5")
    stored = unit_vectors(3, seed=13)
    index.add(tenant, np.arange(1, 4), stored)
    server.pause()
    try:
        started = time.monotonic()
        with pytest.raises(BackendUnavailable):
            index.search(tenant, stored, 2)
        assert time.monotonic() - started < FAST_S
    finally:
        server.resume()
    assert found_once_ready(index, tenant, stored) == {1, 2, 3}
