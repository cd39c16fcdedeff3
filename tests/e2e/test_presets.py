"""The presets over HTTP: the real server process started with MODELCACHE_PRESET."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import ServerProcess
from tests.questions import TEN_QUESTIONS

pytestmark = pytest.mark.e2e


def query(server: ServerProcess, model: str, text: str) -> dict[str, object]:
    body = {"type": "query", "scope": {"model": model}, "query": [{"role": "user", "content": text}]}
    response = server.post(body)
    assert response.status_code == 200, response.text
    result: dict[str, object] = response.json()
    return result


def insert(server: ServerProcess, model: str, questions: list[str]) -> None:
    chat_info = [
        {"query": [{"role": "user", "content": q}], "answer": f"a{i}"} for i, q in enumerate(questions)
    ]
    inserted = server.post({"type": "insert", "scope": {"model": model}, "chat_info": chat_info})
    assert inserted.status_code == 200 and len(inserted.json()["ids"]) == len(questions)


@pytest.mark.parametrize("preset", ["default", "precise", "fast"])
def test_presets_decide_hits_differently(tmp_path: Path, preset: str):
    """All serve repeats and a close paraphrase. In a tenant with a full neighbourhood the
    verifier (`default`, `precise`) refuses "reverse" for "sort"; cosine alone (`fast`) serves
    it. In a one-entry tenant `default` falls back to the cosine thresholds and serves the
    quick start's paraphrase, which the verifier on its own (`precise`) refuses."""
    server = ServerProcess(tmp_path, preset=preset).start(timeout=120)
    try:
        insert(server, "presets", TEN_QUESTIONS)
        assert query(server, "presets", TEN_QUESTIONS[3])["answer"] == "a3"
        assert query(server, "presets", "How do I sort a Python list?")["answer"] == "a0"
        reverse = query(server, "presets", "How can I reverse a list in Python?")
        assert reverse["cacheHit"] is (preset == "fast")
        assert query(server, "presets", "今天天气怎么样?")["cacheHit"] is False

        insert(server, "small", ["你是谁?"])
        assert query(server, "small", "你是谁?")["answer"] == "a0"
        assert query(server, "small", "你是什么人?")["cacheHit"] is (preset != "precise")
        assert query(server, "small", "今天天气怎么样?")["cacheHit"] is False
    finally:
        assert server.stop()
