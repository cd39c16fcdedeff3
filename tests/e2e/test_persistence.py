"""Restarts, lost index files and SIGTERM, on the real server process."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

from tests.e2e.conftest import ServerProcess

SYSTEM = {"role": "system", "content": "You are a helpful assistant."}


def ask(text: str) -> list[dict[str, str]]:
    return [SYSTEM, {"role": "user", "content": text}]


def insert(server: ServerProcess, model: str, items: dict[str, str]) -> list[int]:
    chat_info = [{"query": ask(q), "answer": a} for q, a in items.items()]
    res = server.post({"type": "insert", "scope": {"model": model}, "chat_info": chat_info})
    assert res.status_code == 200, res.text
    ids: list[int] = res.json()["ids"]
    return ids


def answer(server: ServerProcess, model: str, text: str) -> str | None:
    body = server.post({"type": "query", "scope": {"model": model}, "query": ask(text)}).json()
    return body["answer"] if body["cacheHit"] else None


ITEMS = {
    "What is the capital of France?": "Paris.",
    "How do I reverse a list in Python?": "Use reversed() or list[::-1].",
    "如何用Python读取文件?": "with open(path) as f: ...",
}


def test_restart_keeps_data_and_lost_index_files_are_rebuilt(tmp_path: Path):
    models = [f"m-{uuid.uuid4().hex[:6]}" for _ in range(2)]
    server = ServerProcess(tmp_path).start()
    try:
        for model in models:
            insert(server, model, ITEMS)
    finally:
        assert server.stop()
    faiss_files = sorted((tmp_path / "faiss").glob("*.faiss"))
    assert len(faiss_files) == 2

    server.start()
    try:
        for model in models:
            assert answer(server, model, "What's the capital city of France?") == "Paris."
    finally:
        server.stop()
    assert "rebuilding" not in server.log_text(), "saved index files should load as they are"

    faiss_files[0].unlink()
    faiss_files[1].write_bytes(b"garbage")
    server.start()
    try:
        for model in models:
            for question, expected in ITEMS.items():
                assert answer(server, model, question) == expected
            assert (
                answer(server, model, "How can I reverse a Python list?")
                == ITEMS["How do I reverse a list in Python?"]
            )
    finally:
        server.stop()
    assert "rebuilding" in server.log_text()


def test_index_that_disagrees_with_rows_is_rebuilt(tmp_path: Path):
    model = f"m-{uuid.uuid4().hex[:6]}"
    server = ServerProcess(tmp_path).start()
    try:
        insert(server, model, ITEMS)
    finally:
        server.stop()
    # An index file from before a later insert: rows and vectors now disagree.
    stale = next((tmp_path / "faiss").glob("*.faiss")).read_bytes()
    server.start()
    try:
        insert(server, model, {"What is the tallest mountain?": "Everest."})
    finally:
        server.stop()
    next((tmp_path / "faiss").glob("*.faiss")).write_bytes(stale)
    server.start()
    try:
        assert answer(server, model, "Which mountain is the tallest?") == "Everest."
    finally:
        server.stop()


def test_sigterm_flushes_the_query_log(tmp_path: Path):
    model = f"m-{uuid.uuid4().hex[:6]}"
    # A flush interval far longer than the test: only the shutdown flush can write the log.
    server = ServerProcess(tmp_path, query_log_flush_interval_s=3600, query_log_batch_size=100000).start()
    try:
        [entry_id] = insert(server, model, {"What is the capital of France?": "Paris."})
        for _ in range(5):
            assert answer(server, model, "What is the capital of France?") == "Paris."
        for _ in range(3):
            assert answer(server, model, "How tall is Mount Everest?") is None
    finally:
        assert server.stop()
    with sqlite3.connect(tmp_path / "modelcache.db") as db:
        hits, misses = db.execute(
            "SELECT SUM(hit), SUM(1 - hit) FROM mc_query_log WHERE tenant = ?", (model,)
        ).fetchone()
        [hit_count] = db.execute("SELECT hit_count FROM mc_entries WHERE id = ?", (entry_id,)).fetchone()
    assert (hits, misses, hit_count) == (5, 3, 5)
