"""Batching concurrent embeddings changes nothing: same vectors, same cache answers.

With the bundled USE model, texts embedded together in one batch (concurrent callers through
the BatchingEmbedder, with a wait window) must get the vectors they get one at a time, and a
cache that batches must answer every query as one that embeds one text at a time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np

from modelcache import Cache, Settings
from modelcache.embedding import BatchingEmbedder
from modelcache.embedding.use import UseEmbedder

T = TypeVar("T")

STORED = [
    ("What is the capital of France?", "Paris."),
    ("How do I reverse a list in Python?", "Use reversed() or list.reverse()."),
    ("How tall is Mount Everest?", "8,849 metres."),
    ("What is the boiling point of water at sea level?", "100 degrees Celsius."),
    ("Who wrote the play Hamlet?", "William Shakespeare."),
    ("How many continents are there?", "Seven."),
    ("What is the speed of light in a vacuum?", "About 299,792 km per second."),
    ("How do I make a cup of green tea?", "Steep the leaves in 80 °C water for two minutes."),
    ("中国的首都是哪里?", "北京。"),
    ("如何学习编程?", "从一门语言开始,每天练习。"),
    ("What causes rain?", "Water vapour condensing into droplets that grow heavy enough to fall."),
    ("Why is the sky blue?", "Rayleigh scattering of sunlight."),
]

QUERIES = [
    "Which city is the capital of France?",
    "How can I reverse a Python list?",
    "What is the height of Mount Everest?",
    "At what temperature does water boil at sea level?",
    "Who is the author of Hamlet?",
    "How many continents does the Earth have?",
    "How fast does light travel?",
    "How should I brew green tea?",
    "中国首都是什么城市?",
    "怎么学编程?",
    "Why does it rain?",
    "Why does the sky look blue?",
    "What is the best pizza topping?",
    "How do I change a car tyre?",
    "Recommend a good science fiction novel.",
    "今天天气怎么样?",
    "How many legs does a spider have?",
    "What is a prime number?",
    "Explain quantum entanglement simply.",
    "What time zone is Tokyo in?",
    "Is coffee bad for your health?",
    "How do I center a div in CSS?",
    "What is the square root of 144?",
    "Translate 'thank you' into German.",
]

TEXTS = [question for question, _ in STORED] + QUERIES


class CountingEmbedder(UseEmbedder):
    """The real USE model, recording how many texts each model call got."""

    def __init__(self) -> None:
        super().__init__(threads=1)
        self.batch_sizes: list[int] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.batch_sizes.append(len(texts))
        return super().embed(texts)


def concurrently(items: Sequence[str], call: Callable[[str], T]) -> list[T]:
    """Call once per item, all threads released together so the calls overlap."""
    start = threading.Barrier(len(items))

    def run(item: str) -> T:
        start.wait()
        return call(item)

    with ThreadPoolExecutor(max_workers=len(items)) as pool:
        return list(pool.map(run, items))


def test_batched_vectors_equal_one_at_a_time_vectors():
    single = UseEmbedder(threads=1)
    one_at_a_time = np.stack([single.embed([text])[0] for text in TEXTS])

    inner = CountingEmbedder()
    batcher = BatchingEmbedder(inner, max_batch=16, max_wait_s=0.05)
    batcher.load()
    try:
        inner.batch_sizes.clear()  # load() warms the model up
        batched = np.stack(concurrently(TEXTS, lambda text: batcher.embed([text])[0]))
    finally:
        batcher.close()

    assert max(inner.batch_sizes) > 1, f"no call was batched: {inner.batch_sizes}"
    assert len(inner.batch_sizes) < len(TEXTS)
    # the comparison can tell texts apart: a shifted pairing would fail it
    assert not np.allclose(batched, np.roll(one_at_a_time, 1, axis=0), atol=1e-3)
    np.testing.assert_allclose(batched, one_at_a_time, rtol=0, atol=1e-5)


def _cache(tmp_path: Path, name: str, **settings: float) -> Cache:
    # `fast`: cosine decisions only, so every answer depends on the batched USE vectors alone
    # (the verifier of the other presets would add e5, batched separately, to the comparison)
    return Cache(Settings(data_dir=tmp_path / name, query_log_enabled=False, preset="fast", **settings))  # type: ignore[arg-type]


def test_batched_cache_answers_equal_one_at_a_time_answers(tmp_path: Path):
    with _cache(tmp_path, "single", batch_max_size=1) as single:
        for question, answer in STORED:
            single.insert("t", [(question, answer)])
        expected = [single.query("t", query) for query in QUERIES]

    with _cache(tmp_path, "batched", batch_max_size=16, batch_max_wait_ms=50) as batched:
        concurrently([q for q, _ in STORED], lambda q: batched.insert("t", [(q, dict(STORED)[q])]))
        runs_before = batched.embedder.batches_run
        got = concurrently(QUERIES, lambda query: batched.query("t", query))
        batches = batched.embedder.batches_run - runs_before

    assert batches < len(QUERIES), "the concurrent queries were not batched"
    assert sum(r.hit for r in expected) >= len(STORED) - 2, "the data set should mostly hit"
    assert any(not r.hit for r in expected), "the data set should have misses too"
    for query, want, have in zip(QUERIES, expected, got, strict=True):
        assert (have.hit, have.answer, have.question) == (want.hit, want.answer, want.question), query
        if want.hit:
            assert abs(have.score - want.score) < 1e-5, query  # type: ignore[operator]
