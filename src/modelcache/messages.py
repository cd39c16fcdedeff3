"""How a conversation becomes a cache key.

A conversation is a list of messages (system prompt, earlier turns, the new question).
The key has two parts that are compared differently:

- the *question*: the last user message. Only this text is embedded, so a long system
  prompt or a long history never drowns the question, and paraphrases of it can hit;
- the *context*: every system message and the earlier user turns (and, if configured,
  the earlier assistant turns). It is reduced to a fingerprint of its normalised text,
  and a stored entry can only be returned for a query whose context fingerprint is equal.
  The same question under another system prompt, or a follow-up ("how old is he?")
  after another conversation, therefore never hits.

Assistant turns are left out of the context by default: they are the model's replies to
the user turns already in the key, and LLM replies vary from call to call.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["ROLES", "CacheKey", "Message", "build_key", "normalize_text", "text_length"]

ROLES = ("system", "user", "assistant")

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_CJK_CHAR = re.compile(f"[{_CJK}]")
_WORD = re.compile(f"[^\\W{_CJK}]+")


@dataclass(frozen=True)
class Message:
    role: str
    content: str


@dataclass(frozen=True)
class CacheKey:
    """The parts of a conversation that decide what it may hit."""

    question: str
    context: tuple[Message, ...]
    context_hash: str
    key_hash: str


def normalize_text(text: str) -> str:
    """Unicode NFKC, case-folded, whitespace collapsed: two texts equal here are one text."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def text_length(text: str) -> int:
    """Length used for the short/long threshold: CJK characters plus other words."""
    return len(_CJK_CHAR.findall(text)) + len(_WORD.findall(text))


def _digest(*parts: str) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(part.encode("utf-8"))
        hasher.update(b"\x00")
    return hasher.hexdigest()


def build_key(messages: Sequence[Message], *, include_assistant: bool = False) -> CacheKey:
    """Split a validated conversation into question and context (see module docstring).

    The caller guarantees that the last message is a non-empty user message.
    """
    question = messages[-1].content.strip()
    context = tuple(
        Message(m.role, m.content.strip())
        for m in messages[:-1]
        if m.role != "assistant" or include_assistant
    )
    context_hash = _digest(*(f"{m.role}:{normalize_text(m.content)}" for m in context))
    return CacheKey(
        question=question,
        context=context,
        context_hash=context_hash,
        key_hash=_digest(context_hash, normalize_text(question)),
    )
