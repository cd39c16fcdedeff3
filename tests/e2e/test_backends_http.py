"""The foundation's HTTP checks on every storage combination, replicas, and a vector outage."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import requests

from modelcache import Settings
from modelcache.storage import open_row_store, open_vector_index
from tests.backends import COMBINATIONS, SHARED_COMBINATIONS, combination_id, handle, storage_urls
from tests.e2e.conftest import ServerProcess

SYSTEM = {
    "role": "system",
    "content": "你是一个AI代码助手, 你必须提供中立的、无害的答案帮助用户解决代码相关的问题",
}
ANSWER = "你好,我是智能助手,请问有什么能帮您!"
SERVER_COMBINATIONS = [c for c in COMBINATIONS if c != ("sqlite", "faiss")]


def ask(text: str) -> list[dict[str, str]]:
    return [SYSTEM, {"role": "user", "content": text}]


def query(server: ServerProcess, model: str, text: str) -> dict[str, object]:
    body: dict[str, object] = server.post(
        {"type": "query", "scope": {"model": model}, "query": ask(text)}
    ).json()
    return body


def insert(server: ServerProcess, model: str, text: str, answer: str) -> requests.Response:
    return server.post(
        {"type": "insert", "scope": {"model": model}, "chat_info": [{"query": ask(text), "answer": answer}]}
    )


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Vector stores with session consistency show another client's writes within moments."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return check()


def start_server(
    request: pytest.FixtureRequest, combination: tuple[str, str], data_dir: Path, vector_options: str = ""
) -> ServerProcess:
    row_url, vector_url = storage_urls(request, combination)
    # `fast`: these tests are about storage and outages, and check paraphrase hits in tenants of
    # hundreds of templated questions, where the verifier of `default` would (rightly) be strict;
    # the verifier presets are tested on every backend in tests/contract
    return ServerProcess(
        data_dir, row_store=row_url, vector_index=vector_url + vector_options, preset="fast"
    ).start()


@pytest.mark.parametrize("combination", SERVER_COMBINATIONS, ids=combination_id)
def test_foundation_flow_and_restart(
    request: pytest.FixtureRequest, combination: tuple[str, str], tmp_path: Path
):
    model = f"CODEGPT-{uuid.uuid4().hex[:8]}"
    server = start_server(request, combination, tmp_path)
    try:
        assert (
            server.post({"type": "register", "scope": {"model": model}}).json()["response"]
            == "create_success"
        )
        assert insert(server, model, "你是谁?", ANSWER).json()["writeStatus"] == "success"
        assert query(server, model, "你是谁?")["answer"] == ANSWER
        assert query(server, model, "你是什么人?")["answer"] == ANSWER
        assert query(server, model, "今天天气怎么样?")["cacheHit"] is False
        assert query(server, model + "x", "你是谁?")["cacheHit"] is False
        assert requests.get(f"{server.url}/health", timeout=10).json()["status"] == "ok"
    finally:
        assert server.stop()
    server.start()
    try:
        assert query(server, model, "你是什么人?")["answer"] == ANSWER
        res = server.post({"type": "remove", "scope": {"model": model}, "remove_type": "truncate_by_model"})
        assert res.json()["response"]["removed"] == 1
        assert query(server, model, "你是谁?")["cacheHit"] is False
        assert query(server, model, "你是什么人?")["cacheHit"] is False
    finally:
        server.stop()


@pytest.mark.parametrize("combination", SHARED_COMBINATIONS, ids=combination_id)
def test_two_replicas_share_storage(
    request: pytest.FixtureRequest, combination: tuple[str, str], tmp_path: Path
):
    model = f"CODEGPT-{uuid.uuid4().hex[:8]}"
    one = start_server(request, combination, tmp_path / "one")
    two = start_server(request, combination, tmp_path / "two")
    try:
        assert insert(one, model, "你是谁?", ANSWER).status_code == 200
        assert query(two, model, "你是谁?")["answer"] == ANSWER
        assert eventually(lambda: query(two, model, "你是什么人?")["answer"] == ANSWER)
        one.post({"type": "remove", "scope": {"model": model}, "remove_type": "truncate_by_model"})
        assert query(two, model, "你是谁?")["cacheHit"] is False
        assert query(two, model, "你是什么人?")["cacheHit"] is False
        assert insert(two, model, "如何用Python读取文件?", "open()").status_code == 200
        assert eventually(lambda: query(one, model, "怎样用Python读文件?")["answer"] == "open()")
    finally:
        one.stop()
        two.stop()


OUTAGE_COMBINATIONS = [("mysql", "milvus"), ("mysql", "redis"), ("mysql", "pgvector")]


@pytest.mark.parametrize("combination", OUTAGE_COMBINATIONS, ids=combination_id)
def test_vector_server_outage_during_inserts(
    request: pytest.FixtureRequest, combination: tuple[str, str], tmp_path: Path
):
    """Stop the vector server under a stream of inserts: failures are fast 503s, nothing is
    half-written, every acknowledged insert survives, and service resumes without a restart."""
    model = f"fault-{uuid.uuid4().hex[:8]}"
    vector_server = handle(request, combination[1])
    # The stream below writes hundreds of near-identical questions. In an HNSW graph of such a
    # cluster a far-away entry added later can end up with no incoming links, so an exact
    # search algorithm keeps this test about the outage, not about approximate recall.
    algorithm = {"redis": "?algorithm=FLAT"}.get(combination[1], "")
    server = start_server(request, combination, tmp_path, vector_options=algorithm)
    acknowledged: dict[str, str] = {}
    rejected: list[tuple[str, int, dict[str, object]]] = []
    stop = threading.Event()

    def stream() -> None:
        i = 0
        while not stop.is_set():
            question = f"Question number {i}: how do I configure service {uuid.uuid4().hex[:6]}?"
            started = time.monotonic()
            res = insert(server, model, question, f"answer {i}")
            if res.status_code == 200:
                acknowledged[question] = f"answer {i}"
            else:
                seconds = time.monotonic() - started
                rejected.append(
                    (question, res.status_code, res.json() | {"seconds": seconds, "sent": f"answer {i}"})
                )
            i += 1

    writer = threading.Thread(target=stream)
    try:
        writer.start()
        time.sleep(2)
        vector_server.stop()
        time.sleep(3)
        paraphrase = query(server, model, "something never asked before, about llamas")
        health = requests.get(f"{server.url}/health", timeout=30)
        vector_server.start()
        time.sleep(2)
        stop.set()
        writer.join()
        assert rejected, "the outage should have rejected some inserts"
        for _, status, body in rejected:
            assert status == 503 and body["errorCode"] == 303, body
            assert combination[1].split("_")[0] in str(body["errorDesc"]), body
            assert float(body["seconds"]) < 10  # type: ignore[arg-type]
        assert paraphrase["errorCode"] == 203 and paraphrase["cacheHit"] is False
        assert health.status_code == 503 and health.json()["row_store"] == "ok", health.text
        assert health.json()["vector_index"] != "ok"
        last: list[str] = []

        def healthy() -> bool:
            res = requests.get(f"{server.url}/health", timeout=30)
            last.append(res.text)
            return res.status_code == 200

        assert eventually(healthy, timeout=30), last[-3:]
        assert insert(server, model, "What is the capital of France?", "Paris.").status_code == 200
        answers: list[object] = []

        def paris() -> bool:
            answers.append(query(server, model, "Which city is the capital of France?"))
            return bool(answers[-1]["answer"] == "Paris.")  # type: ignore[index]

        assert eventually(paris, timeout=30), answers[-3:]
        for question, answer in acknowledged.items():
            assert query(server, model, question)["answer"] == answer
        for question, _, body in rejected:  # never served, not even to its own exact question
            assert query(server, model, question)["answer"] != body["sent"]
    finally:
        stop.set()
        writer.join()
        server.stop()
    assert_no_orphans(request, combination, model, expected=len(acknowledged) + 1)


def assert_no_orphans(
    request: pytest.FixtureRequest, combination: tuple[str, str], model: str, expected: int
) -> None:
    row_url, vector_url = storage_urls(request, combination)
    settings = Settings(row_store=row_url, vector_index=vector_url)
    rows = open_row_store(settings)
    index = open_vector_index(settings, 512)
    rows.start()
    index.start()
    try:
        row_ids = np.sort(rows.ids(model))
        assert len(row_ids) == expected
        index_ids = index.ids(model)
        if index_ids is not None:
            assert np.array_equal(np.sort(index_ids), row_ids)
        assert eventually(lambda: index.count(model) == expected)
    finally:
        index.close()
        rows.close()
