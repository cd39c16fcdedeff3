"""Conversation rules over HTTP: system prompts and earlier turns are part of the key."""

from __future__ import annotations

import uuid

from tests.e2e.conftest import ServerProcess

OBAMA = [
    {"role": "user", "content": "Who is Barack Obama?"},
    {"role": "assistant", "content": "Barack Obama was the 44th president of the United States."},
]
SWIFT = [
    {"role": "user", "content": "Who is Taylor Swift?"},
    {"role": "assistant", "content": "Taylor Swift is an American singer-songwriter."},
]
LONG_PROMPT = "You are a helpful assistant. Answer briefly, cite no sources, stay polite. " * 30


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def answer(server: ServerProcess, model: str, messages: list[dict[str, str]]) -> object:
    body = server.post({"type": "query", "scope": {"model": model}, "query": messages}).json()
    return body["answer"] if body["cacheHit"] else None


def insert(server: ServerProcess, model: str, messages: list[dict[str, str]], text: str) -> None:
    res = server.post(
        {"type": "insert", "scope": {"model": model}, "chat_info": [{"query": messages, "answer": text}]}
    )
    assert res.status_code == 200, res.text


def test_follow_up_hits_only_after_its_own_conversation(server: ServerProcess):
    model = f"chat-{uuid.uuid4().hex[:6]}"
    insert(server, model, [*OBAMA, user("How old is he?")], "He was born in 1961.")
    assert answer(server, model, [*OBAMA, user("How old is he?")]) == "He was born in 1961."
    assert answer(server, model, [*OBAMA, user("How old is he now?")]) == "He was born in 1961."
    assert answer(server, model, [*SWIFT, user("How old is he?")]) is None
    assert answer(server, model, [user("How old is he?")]) is None


def test_system_prompt_is_part_of_the_key_but_does_not_drown_the_question(server: ServerProcess):
    model = f"chat-{uuid.uuid4().hex[:6]}"
    system = {"role": "system", "content": LONG_PROMPT}
    insert(server, model, [system, user("What is the capital of France?")], "Paris.")
    assert answer(server, model, [system, user("Which city is the capital of France?")]) == "Paris."
    assert answer(server, model, [system, user("How do I bake sourdough bread?")]) is None
    other = {"role": "system", "content": "You are a pirate. Answer like one."}
    assert answer(server, model, [other, user("What is the capital of France?")]) is None
    assert answer(server, model, [user("What is the capital of France?")]) is None
