"""The presets over HTTP: the real server process started with MODELCACHE_PRESET."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import ServerProcess
from tests.questions import TEN_QUESTIONS

pytestmark = pytest.mark.e2e


def query(server: ServerProcess, text: str) -> dict[str, object]:
    body = {"type": "query", "scope": {"model": "presets"}, "query": [{"role": "user", "content": text}]}
    response = server.post(body)
    assert response.status_code == 200, response.text
    result: dict[str, object] = response.json()
    return result


@pytest.mark.parametrize("preset", ["default", "precise"])
def test_presets_decide_hits_differently(tmp_path: Path, preset: str):
    """Both serve repeats and a close paraphrase; only `precise` refuses "reverse" for "sort"."""
    server = ServerProcess(tmp_path, preset=preset).start(timeout=120)
    try:
        chat_info = [
            {"query": [{"role": "user", "content": text}], "answer": f"a{i}"}
            for i, text in enumerate(TEN_QUESTIONS)
        ]
        inserted = server.post({"type": "insert", "scope": {"model": "presets"}, "chat_info": chat_info})
        assert inserted.status_code == 200 and len(inserted.json()["ids"]) == len(TEN_QUESTIONS)
        assert query(server, TEN_QUESTIONS[3])["answer"] == "a3"
        assert query(server, "How do I sort a Python list?")["answer"] == "a0"
        reverse = query(server, "How can I reverse a list in Python?")
        assert reverse["cacheHit"] is (preset == "default")
        health = server.post({"type": "query", "scope": {"model": "presets"}, "query": "今天天气怎么样?"})
        assert health.status_code == 200 and health.json()["cacheHit"] is False
    finally:
        assert server.stop()
