"""`modelcache import`, run the way users run it, on a temporary data dir."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import faiss
import numpy as np

from modelcache import Cache, Settings
from modelcache.bulk import import_file
from modelcache.storage.faiss_index import FaissIndex

MODELCACHE = str(Path(sys.executable).parent / "modelcache")

SYSTEM = {"role": "system", "content": "You are a cooking assistant."}

JSONL = [
    {"question": "What is the capital of France?", "answer": "Paris."},
    {"question": "How tall is Mount Everest?", "answer": "8,849 metres."},
    {"query": [SYSTEM, {"role": "user", "content": "How long do I boil an egg?"}], "answer": "Nine minutes."},
    {"query": "How do I reverse a list in Python?", "answer": "Use list.reverse() or reversed()."},
]

TSV = "question\tanswer\nWho wrote Hamlet?\tShakespeare.\n\nWhat is the boiling point of water?\t100 °C.\n"


def run_import(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"MODELCACHE_DATA_DIR": str(tmp_path / "data"), "PATH": str(Path(sys.executable).parent)}
    return subprocess.run([MODELCACHE, "import", *args], capture_output=True, text=True, env=env)


def ask(tmp_path: Path, tenant: str, query: object) -> tuple[bool, str]:
    with Cache(Settings(data_dir=tmp_path / "data")) as cache:
        result = cache.query(tenant, query)  # type: ignore[arg-type]
    return result.hit, result.answer


def stored_ids(tmp_path: Path, tenant: str) -> list[int]:
    with Cache(Settings(data_dir=tmp_path / "data")) as cache:
        return list(cache.rows.ids(tenant))


def test_jsonl_import_is_queryable(tmp_path: Path):
    source = tmp_path / "faq.jsonl"
    source.write_text("\n".join(json.dumps(item) for item in JSONL) + "\n\n", encoding="utf-8")
    done = run_import(tmp_path, str(source), "--tenant", "faq", "--batch", "3")
    assert done.returncode == 0, done.stderr
    assert "imported 4 rows into tenant 'faq'" in done.stdout and "rows/s" in done.stdout
    assert "4/4 rows" in done.stderr  # the progress line
    assert ask(tmp_path, "faq", "Which city is the capital of France?") == (True, "Paris.")
    assert ask(tmp_path, "faq", "How can I reverse a Python list?")[1] == "Use list.reverse() or reversed()."
    # chat style keeps its system prompt in the key: same prompt hits, none misses
    assert ask(tmp_path, "faq", [SYSTEM, {"role": "user", "content": "How long do I boil an egg?"}]) == (
        True,
        "Nine minutes.",
    )
    assert ask(tmp_path, "faq", "How long do I boil an egg?")[0] is False
    assert ask(tmp_path, "other", "What is the capital of France?")[0] is False


def test_tsv_import_with_header(tmp_path: Path):
    source = tmp_path / "faq.tsv"
    source.write_text(TSV, encoding="utf-8")
    done = run_import(tmp_path, str(source), "--tenant", "team-a")
    assert done.returncode == 0, done.stderr
    assert "imported 2 rows" in done.stdout
    assert ask(tmp_path, "team-a", "Who wrote Hamlet?") == (True, "Shakespeare.")
    assert len(stored_ids(tmp_path, "team-a")) == 2


def test_bad_file_is_rejected_with_line_numbers_and_nothing_stored(tmp_path: Path):
    lines = [
        json.dumps(JSONL[0]),
        json.dumps(JSONL[1]),
        '{"question": "unterminated',
        json.dumps({"question": "no answer here"}),
        json.dumps({"query": [{"role": "assistant", "content": "hi"}], "answer": "x"}),
        json.dumps(JSONL[3]),
    ]
    source = tmp_path / "bad.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    done = run_import(tmp_path, str(source), "--tenant", "faq", "--batch", "1")
    assert done.returncode == 2
    assert "3 bad line(s), nothing imported" in done.stderr
    assert "line 3: not valid JSON" in done.stderr
    assert 'line 4: needs an "answer"' in done.stderr
    assert "line 5: " in done.stderr and "user" in done.stderr
    assert "line 1:" not in done.stderr and "line 6:" not in done.stderr
    assert stored_ids(tmp_path, "faq") == []


def test_bad_tsv_line_and_unknown_format(tmp_path: Path):
    source = tmp_path / "pairs.tsv"
    source.write_text("What is 2+2?\t4\ntext_a\ttext_b\t1\n", encoding="utf-8")
    done = run_import(tmp_path, str(source), "--tenant", "faq")
    assert done.returncode == 2
    assert "line 2: expected 2 tab-separated fields (question, answer), found 3" in done.stderr
    assert stored_ids(tmp_path, "faq") == []
    other = tmp_path / "faq.csv"
    other.write_text("a,b\n", encoding="utf-8")
    done = run_import(tmp_path, str(other), "--tenant", "faq")
    assert done.returncode == 2 and "--format" in done.stderr


class SlowTrainingIndex(FaissIndex):
    """Training of the approximate index takes a while, as it does at a million entries."""

    def _trained_ivf(self, vectors: np.ndarray, cells: int) -> tuple[faiss.IndexIVFFlat, faiss.IndexFlatIP]:
        time.sleep(1.0)
        return super()._trained_ivf(vectors, cells)


def test_import_waits_for_the_approximate_index(tmp_path: Path):
    """Crossing faiss_approx_above starts a background IVF build; an import returns only once
    it is done, so closing the cache saves the IVF instead of abandoning the build."""
    source = tmp_path / "many.tsv"
    source.write_text("".join(f"question number {i}\tanswer {i}\n" for i in range(120)), encoding="utf-8")
    settings = Settings(data_dir=tmp_path / "data", faiss_approx_above=50)
    index = SlowTrainingIndex(tmp_path / "data" / "faiss", 512, approx_above=50)
    with Cache(settings, vector_index=index) as cache:
        report = import_file(cache, source, "big", fmt="tsv", batch=40, progress=False)
        assert report.rows == 120
        assert index.cells("big") > 0
