import numpy as np

from modelcache.messages import Message, build_key
from modelcache.similarity import Candidate, Thresholds, choose
from modelcache.storage import Entry


def entry(entry_id: int, context_hash: str) -> Entry:
    return Entry(
        entry_id,
        "t",
        "q",
        f"answer {entry_id}",
        "[]",
        context_hash,
        "k",
        np.zeros(2, np.float32),
        0,
        0.0,
        None,
    )


KEY = build_key([Message("system", "s"), Message("user", "question")])


def test_thresholds_by_length():
    t = Thresholds(short=0.9, long=0.7, cutoff=3)
    assert t.for_text("one two three") == 0.9
    assert t.for_text("one two three four") == 0.7
    assert t.with_overrides({"threshold_short": 0.5}).for_text("hi") == 0.5


def test_choose_takes_the_best_candidate_of_the_same_context():
    other = Candidate(entry(1, "another-context"), 0.99)
    weaker = Candidate(entry(2, KEY.context_hash), 0.85)
    stronger = Candidate(entry(3, KEY.context_hash), 0.90)
    assert choose(KEY, [other, weaker, stronger], 0.8) == stronger


def test_choose_misses_below_the_threshold_or_without_the_context():
    assert choose(KEY, [Candidate(entry(1, KEY.context_hash), 0.79)], 0.8) is None
    assert choose(KEY, [Candidate(entry(1, "x"), 1.0)], 0.8) is None
    assert choose(KEY, [], 0.0) is None
