"""Behaviour every storage combination must have, through the library API."""

from __future__ import annotations

import numpy as np
import pytest

from modelcache import Cache, InvalidRequest, Settings
from modelcache.embedding.use import UseEmbedder
from tests.questions import TEN_QUESTIONS

SYSTEM = {
    "role": "system",
    "content": "你是一个AI代码助手, 你必须提供中立的、无害的答案帮助用户解决代码相关的问题",
}
ANSWER = "你好,我是智能助手,请问有什么能帮您!"


def ask(text: str, system: dict[str, str] | None = SYSTEM) -> list[dict[str, str]]:
    return [system, {"role": "user", "content": text}] if system else [{"role": "user", "content": text}]


def test_insert_then_exact_paraphrase_unrelated(cache: Cache, tenant: str):
    [entry_id] = cache.insert(tenant, [(ask("你是谁?"), ANSWER)])
    exact = cache.query(tenant, ask("你是谁?"))
    assert exact.hit and exact.answer == ANSWER and exact.id == entry_id and exact.score == 1.0
    paraphrase = cache.query(tenant, ask("你是什么人?"))
    assert paraphrase.hit and paraphrase.answer == ANSWER and paraphrase.question == "你是谁?"
    assert paraphrase.score is not None and 0.8 <= paraphrase.score < 1.0
    assert not cache.query(tenant, ask("今天天气怎么样?")).hit


def test_context_must_match(cache: Cache, tenant: str):
    cache.insert(tenant, [(ask("你是谁?"), ANSWER)])
    assert not cache.query(tenant, ask("你是谁?", system=None)).hit
    assert not cache.query(tenant, ask("你是谁?", {"role": "system", "content": "You are a pirate."})).hit
    follow_up = [
        {"role": "user", "content": "Who is Barack Obama?"},
        {"role": "user", "content": "How old is he?"},
    ]
    cache.insert(tenant, [(follow_up, "He was born in 1961.")])
    other = [
        {"role": "user", "content": "Who is Taylor Swift?"},
        {"role": "user", "content": "How old is he?"},
    ]
    assert not cache.query(tenant, other).hit
    same = [
        {"role": "user", "content": "Who is Barack Obama?"},
        {"role": "user", "content": "How old is he now?"},
    ]
    assert cache.query(tenant, same).answer == "He was born in 1961."


def test_tenants_are_isolated(cache: Cache, tenant: str):
    other = tenant + "1"
    [mine] = cache.insert(tenant, [(ask("你是谁?"), ANSWER)])
    assert not cache.query(other, ask("你是谁?")).hit
    assert not cache.query(other, ask("你是什么人?")).hit
    assert cache.remove(other, [mine]) == []
    cache.insert(other, [(ask("你是谁?"), "other answer")])
    assert cache.truncate(other) == 1
    assert cache.query(tenant, ask("你是谁?")).answer == ANSWER
    assert cache.entries(other, [mine]) == []


def test_every_chat_info_item_is_inserted(cache: Cache, tenant: str):
    questions = ["如何用Python读取文件?", "What is a closure in JavaScript?", "怎样在Go里开goroutine?"]
    ids = cache.insert(tenant, [(ask(q), f"answer {i}") for i, q in enumerate(questions)])
    assert len(set(ids)) == 3
    for i, q in enumerate(questions):
        assert cache.query(tenant, ask(q)).answer == f"answer {i}"


def test_same_conversation_again_replaces_the_answer(cache: Cache, tenant: str):
    [first] = cache.insert(tenant, [(ask("你是谁?"), "old")])
    [second] = cache.insert(tenant, [(ask("你是谁?"), "new")])
    assert first == second
    assert cache.query(tenant, ask("你是什么人?")).answer == "new"
    assert len(cache.entries(tenant, [first])) == 1


def test_remove_by_id_and_truncate(cache: Cache, tenant: str):
    ids = cache.insert(tenant, [(ask("你是谁?"), ANSWER), (ask("如何用Python读取文件?"), "open()")])
    assert cache.remove(tenant, [ids[0], 999_999_999, 2**63 - 1]) == [ids[0]]
    assert not cache.query(tenant, ask("你是谁?")).hit
    assert cache.query(tenant, ask("如何用Python读取文件?")).hit
    assert cache.truncate(tenant) == 1
    assert not cache.query(tenant, ask("如何用Python读取文件?")).hit
    cache.insert(tenant, [(ask("你是谁?"), ANSWER)])
    assert cache.query(tenant, ask("你是谁?")).hit


def test_register_is_idempotent_and_stores_thresholds(cache: Cache, tenant: str):
    assert cache.register(tenant) is True
    assert cache.register(tenant) is False
    cache.insert(tenant, [(ask("你是谁?"), ANSWER)])
    assert cache.query(tenant, ask("你是什么人?")).hit
    cache.register(tenant, threshold_short=0.95)
    assert not cache.query(tenant, ask("你是什么人?")).hit
    assert cache.query(tenant, ask("你是什么人?"), threshold=0.5).hit


def test_hit_counts_and_query_log(cache: Cache, tenant: str):
    [entry_id] = cache.insert(tenant, [(ask("你是谁?"), ANSWER)])
    for text in ["你是谁?", "你是什么人?", "今天天气怎么样?"]:
        cache.query(tenant, ask(text))
    cache.flush()
    [entry] = cache.entries(tenant, [entry_id])
    assert entry.hit_count == 2 and entry.last_hit_at is not None


def test_invalid_library_input_changes_nothing(cache: Cache, tenant: str):
    cache.insert(tenant, [(ask("你是谁?"), ANSWER)])
    with pytest.raises(InvalidRequest):
        cache.insert(tenant, [(ask("好的问题"), "ok"), ([{"role": "robot", "content": "x"}], "bad")])
    with pytest.raises(InvalidRequest):
        cache.query("bad tenant!", ask("你是谁?"))
    for bad_ids in ([-1], [2**63], ["1"], [True]):
        with pytest.raises(InvalidRequest):
            cache.remove(tenant, bad_ids)  # type: ignore[list-item]
    assert cache.remove(tenant, np.array([2**40])) == []  # numpy ids are ids
    assert not cache.query(tenant, ask("好的问题")).hit
    assert cache.query(tenant, ask("你是谁?")).hit


def test_data_survives_a_restart(settings: Settings, use_embedder: UseEmbedder, tenant: str):
    with Cache(settings, embedder=use_embedder) as first:
        first.insert(tenant, [(ask("你是谁?"), ANSWER)])
    with Cache(settings, embedder=use_embedder) as second:
        assert second.query(tenant, ask("你是什么人?")).answer == ANSWER


def test_precise_preset_keeps_second_embeddings_and_rejects_a_false_hit(
    settings: Settings, use_embedder: UseEmbedder, tenant: str
):
    """The verifier's second embeddings round-trip through the row store; the false hit the
    cosine thresholds serve ("reverse" for "sort") is rejected, the paraphrase still hits."""
    items = [(ask(q, None), f"answer {i}") for i, q in enumerate(TEN_QUESTIONS)]
    false_hit = ask("How can I reverse a list in Python?", None)
    with Cache(settings, embedder=use_embedder) as plain:
        plain.insert(tenant + "c", items)
        assert plain.query(tenant + "c", false_hit).answer == "answer 0"  # what precise must prevent
    with Cache(settings.model_copy(update={"preset": "precise"}), embedder=use_embedder) as cache:
        assert cache.second_stage is not None
        ids = cache.insert(tenant, items)
        stored = cache.entries(tenant, ids)
        assert all(e.second_embedding is not None and e.second_embedding.shape == (384,) for e in stored)
        assert all(abs(float(np.linalg.norm(e.second_embedding)) - 1) < 1e-3 for e in stored)  # type: ignore[arg-type]
        assert cache.query(tenant, ask("How do I sort a Python list?", None)).answer == "answer 0"
        assert not cache.query(tenant, false_hit).hit


def test_default_preset_vetoes_a_confident_false_hit_in_a_small_tenant(
    settings: Settings, use_embedder: UseEmbedder, tenant: str
):
    """One entry: the cosine thresholds would serve "sort" for "reverse" (USE cosine 0.83);
    the verifier's veto refuses it and still lets paraphrases through. Without the veto the
    same tenant serves the false hit."""
    reverse = "How do I reverse a list in Python?"
    with Cache(settings.model_copy(update={"preset": "default"}), embedder=use_embedder) as cache:
        cache.insert(tenant, [(ask(reverse, None), "Use reversed() or list[::-1].")])
        sort = cache.query(tenant, ask("How do I sort a list in Python?", None))
        assert not sort.hit, sort
        paraphrase = cache.query(tenant, ask("How can I reverse a Python list?", None))
        assert paraphrase.hit and paraphrase.question == reverse
    loose = settings.model_copy(update={"preset": "default", "verifier_veto": False})
    with Cache(loose, embedder=use_embedder) as cache:
        assert cache.query(tenant, ask("How do I sort a list in Python?", None)).question == reverse


def test_default_preset_stores_second_embeddings_from_the_first_entry(
    settings: Settings, use_embedder: UseEmbedder, tenant: str
):
    """`default` decides a small tenant by cosine, but stores e5 vectors from the first entry
    on, so the verifier can judge the tenant once it has a full neighbourhood."""
    with Cache(settings.model_copy(update={"preset": "default"}), embedder=use_embedder) as cache:
        [first] = cache.insert(tenant, [(ask("你是谁?"), ANSWER)])
        [entry] = cache.entries(tenant, [first])
        assert entry.second_embedding is not None and entry.second_embedding.shape == (384,)
        assert cache.query(tenant, ask("你是什么人?")).answer == ANSWER  # cosine: one candidate
        items = [(ask(q, None), f"answer {i}") for i, q in enumerate(TEN_QUESTIONS)]
        cache.insert(tenant + "n", items)
        assert not cache.query(tenant + "n", ask("How can I reverse a list in Python?", None)).hit
        assert cache.query(tenant + "n", ask("How do I sort a Python list?", None)).answer == "answer 0"
    strict = settings.model_copy(update={"preset": "default", "verifier_min_candidates": 1})
    with Cache(strict, embedder=use_embedder) as cache:  # the verifier for every tenant, as `precise`
        assert not cache.query(tenant, ask("你是什么人?")).hit
        assert cache.query(tenant, ask("你是谁?")).answer == ANSWER  # exact repeats never reach it
