"""Multi-turn benchmark: do follow-up questions hit only after the conversation they belong to?

    .venv/bin/python -m benchmarks.multiturn [--datasets DIR] [--presets fast default precise]

Data: `<datasets>/multiturn/*.json`, conversations of a main query, its response, a follow-up
query and its response. Every conversation is stored twice, as `[user: main] -> response`
and `[user: main, assistant: response, user: follow-up] -> follow-up response`. Then:

- *same conversation*: the follow-up asked after its own main query must return its own answer;
- *other conversation*: the follow-up asked after another conversation's main query (the next
  one in the list) must not return the follow-up answer cached after a different main query;
- *no context*: the follow-up asked alone must not return an answer cached inside a conversation;
- *long system prompt*: with the same ~1,000-character system prompt on every entry, half of
  the main queries are stored; the other half (different questions) must not hit anything.

Each check is run with ModelCache's key (question embedded alone, context matched exactly) and,
for comparison, with the original ModelCache's key: the whole conversation concatenated into
one embedded text, a hit at the same cosine threshold.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modelcache import Cache, Settings

DATASETS = Path(
    os.environ.get("MODELCACHE_DATASETS", Path(__file__).resolve().parents[2] / "shared/datasets")
)
LONG_SYSTEM_PROMPT = (
    "You are a careful, friendly assistant for a large company. Answer in clear, correct English. "
    "Keep answers short unless the user asks for detail, never invent facts, say when you are unsure, "
    "refuse harmful requests politely, do not give legal, medical or financial advice beyond general "
    "information, and follow the company's style guide: plain words, short sentences, no jargon, no "
    "emojis, and numbered lists for steps. "
) * 3


@dataclass(frozen=True)
class Conversation:
    main: str
    response: str
    follow_up: str
    follow_up_response: str


def load_conversations(directory: Path) -> list[Conversation]:
    seen: dict[tuple[str, str], Conversation] = {}
    for path in sorted(directory.glob("*.json")):
        for item in json.loads(path.read_text(encoding="utf-8")):
            values = {key.lower().replace("-", " "): value for key, value in item.items()}
            conversation = Conversation(
                values["main query"],
                values["main query response"],
                values["follow up query"],
                values["follow up query response"],
            )
            seen.setdefault((conversation.main, conversation.follow_up), conversation)
    return list(seen.values())


def follow_up_messages(c: Conversation, main: str, system: str | None = None) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": system}] if system else []
    return [*messages, {"role": "user", "content": main}, {"role": "assistant", "content": c.response},
            {"role": "user", "content": c.follow_up}]  # fmt: skip


def split_mains(conversations: list[Conversation]) -> tuple[list[str], list[str]]:
    """Every other distinct main query is stored; the rest are asked and must miss."""
    mains = list(dict.fromkeys(c.main for c in conversations))
    return mains[::2], mains[1::2]


def rate(flags: Sequence[bool]) -> float:
    return float(np.mean(flags)) if flags else 0.0


def modelcache_checks(conversations: list[Conversation], settings: Settings) -> dict[str, float]:
    others = conversations[1:] + conversations[:1]
    with Cache(settings) as cache:
        tenant, prompted = "multiturn", "multiturn-prompted"
        cache.insert(tenant, [([{"role": "user", "content": c.main}], c.response) for c in conversations])
        cache.insert(tenant, [(follow_up_messages(c, c.main), c.follow_up_response) for c in conversations])
        system = {"role": "system", "content": LONG_SYSTEM_PROMPT}
        stored, unseen = split_mains(conversations)
        cache.insert(prompted, [([system, {"role": "user", "content": main}], "stored") for main in stored])
        same = [
            cache.query(tenant, follow_up_messages(c, c.main)).answer == c.follow_up_response
            for c in conversations
        ]
        other = [
            cache.query(tenant, follow_up_messages(c, o.main)).answer == c.follow_up_response
            for c, o in zip(conversations, others, strict=True)
            if o.main != c.main
        ]
        alone = [cache.query(tenant, c.follow_up).answer == c.follow_up_response for c in conversations]
        drowned = [cache.query(prompted, [system, {"role": "user", "content": main}]).hit for main in unseen]
    return {"same": rate(same), "other": rate(other), "alone": rate(alone), "drowned": rate(drowned)}


def concatenated_checks(conversations: list[Conversation], settings: Settings) -> dict[str, float]:
    """The original key: all turns joined into one text; nearest stored text, same threshold."""
    from modelcache.embedding import open_embedder

    embedder = open_embedder(settings)
    embedder.load()
    others = conversations[1:] + conversations[:1]

    def text(messages: list[dict[str, str]]) -> str:
        return "\n".join(m["content"] for m in messages)

    def embed(texts: list[str]) -> np.ndarray:
        return np.concatenate([embedder.embed(texts[i : i + 64]) for i in range(0, len(texts), 64)])

    threshold = settings.threshold_long
    stored = embed([text(follow_up_messages(c, c.main)) for c in conversations])
    same_q = embed([text(follow_up_messages(c, c.main)) for c in conversations])
    other_q = embed([text(follow_up_messages(c, o.main)) for c, o in zip(conversations, others, strict=True)])
    alone_q = embed([c.follow_up for c in conversations])
    stored_mains, unseen_mains = split_mains(conversations)
    prompted = embed([f"{LONG_SYSTEM_PROMPT}\n{main}" for main in stored_mains])
    prompted_q = embed([f"{LONG_SYSTEM_PROMPT}\n{main}" for main in unseen_mains])

    def returns_own(queries: np.ndarray, table: np.ndarray) -> list[bool]:
        sims = queries @ table.T
        return [bool(sims[i].argmax() == i and sims[i, i] >= threshold) for i in range(len(queries))]

    distinct = [o.main != c.main for c, o in zip(conversations, others, strict=True)]
    return {
        "same": rate(returns_own(same_q, stored)),
        "other": rate([f for f, d in zip(returns_own(other_q, stored), distinct, strict=True) if d]),
        "alone": rate(returns_own(alone_q, stored)),
        "drowned": rate(list((prompted_q @ prompted.T).max(axis=1) >= threshold)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", type=Path, default=DATASETS)
    parser.add_argument("--presets", nargs="+", default=["default"], help="ModelCache presets to run")
    args = parser.parse_args()
    conversations = load_conversations(args.datasets / "multiturn")
    ours = {
        preset: modelcache_checks(
            conversations,
            Settings(data_dir=Path(tempfile.mkdtemp(prefix="mc-multiturn-")), preset=preset),
        )
        for preset in args.presets
    }
    original = concatenated_checks(conversations, Settings())
    labels = {
        "same": "follow-up after its own conversation returns its answer (higher: better)",
        "other": "follow-up after another main query returns the answer cached after its own (lower: better)",
        "alone": "follow-up asked alone returns an in-conversation answer (lower: better)",
        "drowned": "under one long system prompt, a question never stored hits (lower: better)",
    }
    print(f"{len(conversations)} conversations from {args.datasets / 'multiturn'}\n")
    columns = " | ".join(f"ModelCache key, {preset}" for preset in ours)
    print(f"| check | {columns} | concatenated key (original) |")
    print("|---|" + "---|" * len(ours) + "---|")
    for key, label in labels.items():
        figures = " | ".join(f"{checks[key]:.3f}" for checks in ours.values())
        print(f"| {label} | {figures} | {original[key]:.3f} |")


if __name__ == "__main__":
    main()
