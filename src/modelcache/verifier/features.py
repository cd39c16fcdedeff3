"""Pair features for the verifier: pure functions over two question texts.

A text is first turned into a `Profile` (its tokens and the small facts the features
compare), once per text; `lexical_features(query, candidate)` then compares two profiles.
Tokens are words for English and single characters for Chinese (Latin words and numbers
inside Chinese text stay whole), after Unicode NFKC and case folding. Punctuation is not a
token. Every feature is a finite float; `LEXICAL_FEATURES` names them in order:

- `len_ratio`: the shorter token count over the longer.
- `query_tokens`: the query's token count. How much a cosine or an overlap says depends on
  the length (on LCQMC-dev, at one threshold, 10-13-character questions are less precise
  than 14-20-character ones). No training file may teach it "short questions never match":
  the LCQMC-dev questions under 10 characters (all labelled 0, a sampling artifact) are not
  trained on, and AFQMC, whose short questions would stand for all short ones, is not
  trained on either (see scripts/train_verifier.py). Questions shorter than any trained on
  are judged like the shortest trained ones (trees extrapolate flat).
- `uni_jaccard`, `uni_in_candidate`, `uni_in_query`: token-set overlap (Jaccard), and the
  share of the query's tokens found in the candidate and vice versa. The two containments
  are asymmetric on purpose: "how do I sort a list" is contained in "how do I sort a list
  of tuples by the second item", not the reverse.
- `bi_jaccard`, `bi_in_candidate`, `bi_in_query`: the same over adjacent token pairs. Same
  words in another order (PAWS-X style swaps) keep unigram overlap and lose bigrams.
- `tri_jaccard`: overlap of trigrams: character trigrams inside words for English (robust
  to inflection), token trigrams for Chinese (longer runs in the same order).
- `lcs_query`, `lcs_candidate`: longest common token subsequence over each side's length.
- `order_agreement`: tokens that occur exactly once on both sides, read in the query's
  order: the share of them that stays in order in the candidate (1 = same order).
- `same_tokens`: 1 when both token sequences are equal (texts differ only in punctuation,
  case or spacing).
- `numbers_only_query`, `numbers_only_candidate`: numbers (digit runs, and Chinese numeral
  runs) present on one side only; `numbers_mismatch`: 1 when both have numbers that differ.
- `negation_diff`: difference of negation-word counts; `negation_parity`: 1 when one side
  is negated and the other is not (odd difference).
- `qword_mismatch`: question types (what, why, how, where, who, when, which, how many,
  yes/no) on one side only; `qword_first_differs`: 1 when the first question types differ.
- `names_mismatch`: names on one side that are not a token of the other: capitalised words
  (English, not sentence-initial) or Latin-script words (in Chinese).
- `content_only_query`, `content_only_candidate`: tokens that are not stop words and occur
  on one side only; `content_only_max_len`: the length of the longest of them (a proxy for
  how specific the differing word is).

`relative_features` then compares each candidate with the other candidates of the same query
(`RELATIVE_FEATURES`): its `uni_jaccard`, `bi_jaccard` and `lcs_query` minus the best of
them among all candidates (0 for the lexically closest one).
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections import Counter
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = [
    "LEXICAL_FEATURES",
    "RELATIVE_FEATURES",
    "Language",
    "Profile",
    "cjk_share",
    "detect_language",
    "lcs_length",
    "lexical_features",
    "order_agreement",
    "profile",
    "relative_features",
]

Language = Literal["zh", "en"]

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_CJK_CHAR = re.compile(f"[{_CJK}]")
_LATIN_WORD = re.compile(f"[^\\W{_CJK}]+")
_TOKEN = re.compile(f"[{_CJK}]|[^\\W{_CJK}]+(?:'[^\\W{_CJK}]+)?")
_DIGITS = re.compile(r"\d+(?:[.,]\d+)*")
_CN_NUMERAL = re.compile("[零一二两三四五六七八九十百千万亿]+")
_CAPITALISED = re.compile(r"(?<![.?!]\s)(?<!^)\b[A-Z]\w*")

_EN_NEGATIONS = frozenset({"not", "no", "never", "none", "nothing", "nobody", "without", "cannot", "nor"})
_ZH_NEGATIONS = "不没无非未别勿"
_EN_QWORDS = {
    "what": "what", "why": "why", "how": "how", "where": "where", "who": "who", "whom": "who",
    "whose": "who", "when": "when", "which": "which",
}  # fmt: skip
_EN_YESNO = frozenset({"is", "are", "can", "could", "do", "does", "did", "should", "will", "would", "was"})
_ZH_QWORDS = (
    ("为什么", "why"), ("为何", "why"), ("为啥", "why"), ("怎么样", "how"), ("怎么", "how"),
    ("怎样", "how"), ("如何", "how"), ("咋", "how"), ("什么时候", "when"), ("何时", "when"),
    ("多少", "howmany"), ("多久", "howmany"), ("几", "howmany"), ("哪里", "where"),
    ("哪儿", "where"), ("什么地方", "where"), ("哪个", "which"), ("哪", "which"), ("谁", "who"),
    ("什么人", "who"), ("啥人", "who"), ("什么", "what"),
    ("啥", "what"), ("吗", "yesno"), ("是否", "yesno"), ("能否", "yesno"), ("可否", "yesno"),
)  # fmt: skip
_EN_STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "to",
        "in",
        "on",
        "for",
        "and",
        "or",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "am",
        "do",
        "does",
        "did",
        "i",
        "you",
        "he",
        "she",
        "it",
        "we",
        "they",
        "my",
        "your",
        "his",
        "her",
        "its",
        "our",
        "their",
        "me",
        "him",
        "us",
        "them",
        "this",
        "that",
        "these",
        "those",
        "can",
        "could",
        "should",
        "would",
        "will",
        "with",
        "at",
        "by",
        "from",
        "as",
        "about",
        "into",
        "what",
        "why",
        "how",
        "where",
        "who",
        "when",
        "which",
        "there",
        "have",
        "has",
        "had",
        "s",
        "get",
    ]
)
_ZH_STOP = frozenset("的了吗呢吧啊呀么是我你他她它们在有和与就都也还要会能可以个这那吗")

LEXICAL_FEATURES: tuple[str, ...] = (
    "len_ratio", "query_tokens",
    "uni_jaccard", "uni_in_candidate", "uni_in_query",
    "bi_jaccard", "bi_in_candidate", "bi_in_query", "tri_jaccard",
    "lcs_query", "lcs_candidate", "order_agreement", "same_tokens",
    "numbers_only_query", "numbers_only_candidate", "numbers_mismatch",
    "negation_diff", "negation_parity", "qword_mismatch", "qword_first_differs",
    "names_mismatch", "content_only_query", "content_only_candidate", "content_only_max_len",
)  # fmt: skip

RELATIVE_FEATURES: tuple[str, ...] = ("uni_jaccard_gap", "bi_jaccard_gap", "lcs_query_gap")
_RELATIVE_COLUMNS = tuple(LEXICAL_FEATURES.index(name[: -len("_gap")]) for name in RELATIVE_FEATURES)


def cjk_share(text: str) -> float:
    """CJK characters over CJK characters plus Latin-script words (0 for an empty text)."""
    cjk = len(_CJK_CHAR.findall(text))
    words = len(_LATIN_WORD.findall(text))
    return cjk / (cjk + words) if cjk + words else 0.0


def detect_language(text: str) -> Language:
    """'zh' when at least 30 % of the text's units are CJK characters, else 'en'."""
    return "zh" if cjk_share(text) >= 0.3 else "en"


@dataclass(frozen=True)
class Profile:
    """What the features need from one text, computed once."""

    tokens: tuple[str, ...]
    bigrams: frozenset[tuple[str, str]]
    trigrams: frozenset[str | tuple[str, str, str]]
    numbers: frozenset[str]
    negations: int
    qwords: tuple[str, ...]
    names: frozenset[str]
    content: frozenset[str]


def _question_types(folded: str, tokens: tuple[str, ...], language: Language) -> tuple[str, ...]:
    if language == "zh":
        found: list[tuple[int, str]] = []
        rest = folded
        for word, kind in _ZH_QWORDS:
            for match in re.finditer(re.escape(word), rest):
                found.append((match.start(), kind))
            rest = rest.replace(word, " " * len(word))
        return tuple(kind for _, kind in sorted(found))
    kinds = [_EN_QWORDS[t] for t in tokens if t in _EN_QWORDS]
    if "how" in tokens:
        after = tokens.index("how") + 1
        if after < len(tokens) and tokens[after] in ("many", "much"):
            kinds = ["howmany" if k == "how" else k for k in kinds]
    if tokens and tokens[0] in _EN_YESNO:
        kinds.insert(0, "yesno")
    return tuple(kinds)


def profile(text: str, language: Language) -> Profile:
    """Tokens and facts of one text (see the module docstring)."""
    normal = unicodedata.normalize("NFKC", text)
    folded = normal.casefold()
    tokens = tuple(_TOKEN.findall(folded))
    numbers = set(_DIGITS.findall(folded))
    if language == "zh":
        numbers |= set(_CN_NUMERAL.findall(folded))
        negations = sum(folded.count(ch) for ch in _ZH_NEGATIONS)
        names = {t for t in tokens if not _CJK_CHAR.match(t) and not t.isdigit()}
        stop: frozenset[str] = _ZH_STOP
    else:
        negations = sum(1 for t in tokens if t in _EN_NEGATIONS or t.endswith("n't"))
        names = {m.casefold() for m in _CAPITALISED.findall(normal) if m.casefold() not in _EN_STOP}
        stop = _EN_STOP
    trigrams: set[str | tuple[str, str, str]]
    if language == "zh":
        trigrams = set(zip(tokens, tokens[1:], tokens[2:], strict=False))
    else:
        trigrams = {w[i : i + 3] for w in tokens for i in range(max(len(w) - 2, 1))}
    return Profile(
        tokens=tokens,
        bigrams=frozenset(itertools.pairwise(tokens)),
        trigrams=frozenset(trigrams),
        numbers=frozenset(numbers),
        negations=negations,
        qwords=_question_types(folded, tokens, language),
        names=frozenset(names),
        content=frozenset(t for t in tokens if t not in stop),
    )


def lcs_length(a: tuple[str, ...] | str, b: tuple[str, ...] | str) -> int:
    """Length of the longest common subsequence (bit-parallel, O(len(a) * len(b) / word))."""
    if not a or not b:
        return 0
    masks: dict[str, int] = {}
    for position, item in enumerate(a):
        masks[item] = masks.get(item, 0) | (1 << position)
    full = (1 << len(a)) - 1
    row = full
    for item in b:
        matched = row & masks.get(item, 0)
        row = ((row + matched) | (row - matched)) & full
    return len(a) - row.bit_count()


def order_agreement(a: tuple[str, ...], b: tuple[str, ...]) -> float:
    """Share of the tokens seen exactly once on each side that keep their relative order."""
    count_a, count_b = Counter(a), Counter(b)
    shared = {t for t, n in count_a.items() if n == 1 and count_b.get(t) == 1}
    if len(shared) < 2:
        return 1.0
    in_a = tuple(t for t in a if t in shared)
    in_b = tuple(t for t in b if t in shared)
    return lcs_length(in_a, in_b) / len(shared)


def _overlap(a: AbstractSet[object], b: AbstractSet[object]) -> tuple[float, float, float]:
    common = len(a & b)
    union = len(a | b)
    return (
        common / union if union else 1.0,
        common / len(a) if a else 1.0,
        common / len(b) if b else 1.0,
    )


def lexical_features(query: Profile, candidate: Profile) -> list[float]:
    """The `LEXICAL_FEATURES` of one (query, candidate) pair, in order."""
    q, c = query.tokens, candidate.tokens
    lcs = lcs_length(q, c)
    only_q = query.content - candidate.content
    only_c = candidate.content - query.content
    qnum, cnum = query.numbers - candidate.numbers, candidate.numbers - query.numbers
    negation_diff = abs(query.negations - candidate.negations)
    qtypes, ctypes = set(query.qwords), set(candidate.qwords)
    first_q = query.qwords[0] if query.qwords else ""
    first_c = candidate.qwords[0] if candidate.qwords else ""
    return [
        min(len(q), len(c)) / max(len(q), len(c), 1),
        float(len(q)),
        *_overlap(set(q), set(c)),
        *_overlap(query.bigrams, candidate.bigrams),
        _overlap(query.trigrams, candidate.trigrams)[0],
        lcs / max(len(q), 1),
        lcs / max(len(c), 1),
        order_agreement(q, c),
        float(q == c),
        float(len(qnum)),
        float(len(cnum)),
        float(bool(qnum and cnum)),
        float(negation_diff),
        float(negation_diff % 2),
        float(len(qtypes ^ ctypes)),
        float(first_q != first_c),
        float(len(query.names - set(c)) + len(candidate.names - set(q))),
        float(len(only_q)),
        float(len(only_c)),
        float(max((len(t) for t in only_q | only_c), default=0)),
    ]


def relative_features(lexical: np.ndarray) -> np.ndarray:
    """(k, 3) `RELATIVE_FEATURES` from the (k, len(LEXICAL_FEATURES)) lexical rows of a query."""
    rows = np.asarray(lexical, dtype=np.float64).reshape(-1, len(LEXICAL_FEATURES))
    columns = rows[:, list(_RELATIVE_COLUMNS)]
    if not len(columns):
        return columns
    gaps: np.ndarray = columns - columns.max(axis=0)
    return gaps
