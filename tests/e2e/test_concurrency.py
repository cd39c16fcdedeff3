"""Many clients at once: every answer is right and every write lands."""

from __future__ import annotations

import threading
import uuid

from tests.e2e.conftest import ServerProcess


def test_concurrent_inserts_and_queries(server: ServerProcess):
    model = f"busy-{uuid.uuid4().hex[:6]}"
    errors: list[str] = []

    def client(worker: int) -> None:
        for i in range(25):
            question = f"Worker {worker} asks question {i}: what is item {uuid.uuid4().hex[:8]}?"
            answer = f"answer {worker}-{i}"
            chat_info = [{"query": [{"role": "user", "content": question}], "answer": answer}]
            res = server.post({"type": "insert", "scope": {"model": model}, "chat_info": chat_info})
            if res.status_code != 200:
                errors.append(f"insert {res.status_code} {res.text}")
                continue
            body = server.post(
                {"type": "query", "scope": {"model": model}, "query": [{"role": "user", "content": question}]}
            ).json()
            if body.get("answer") != answer:
                errors.append(f"query for {question!r} returned {body}")

    threads = [threading.Thread(target=client, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    res = server.post({"type": "remove", "scope": {"model": model}, "remove_type": "truncate_by_model"})
    assert res.json()["response"]["removed"] == 200
