"""The verifier: a second look at the nearest candidates, against false hits.

The cache recalls the top-k stored questions by the first model (the vector index) and
hands them here with their cosines. The verifier scores every candidate with a small
gradient-boosted tree model over the pair's features (`features.py`, `cosines.py`) and
picks the most probable one. Two models per language (zh / en, told by the question's CJK
share):

- the *fast* model sees the lexical features and the first model's cosines only;
- the *full* model also sees the cosines of a second embedding model (the query's second
  embedding against the one stored with each entry), which is slower to compute.

`judge` applies the cascade of the shipped operating points (`weights/verifier.json`), per
language and length class (short / long, by `modelcache.messages.text_length`):

1. best first cosine under `floor`: a clear miss, no model runs;
2. without second cosines, the fast model: probability at or above `band[1]` is a hit,
   below `band[0]` a miss, in between *unsure* (`Judgement.unsure`): the caller embeds the
   query with the second model and calls `judge` again with `second_cosines`;
3. with second cosines, the full model: a hit when the probability reaches `threshold`.

With `mode="fast"` step 2 never answers unsure: the fast model decides alone, against
`fast_threshold`. Exact (normalised) matches are the cache's business and never get here.

`vetoes` is the small-tenant check of the `default` preset: the cosine thresholds chose an
entry, and the veto rejects it when the model gives it a probability under the language's
veto level (`weights/small_tenants.json`, chosen on dev by `scripts/eval_small_tenants.py`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from modelcache.errors import ConfigurationError
from modelcache.messages import text_length
from modelcache.verifier.cosines import COSINE_FEATURES, cosine_features
from modelcache.verifier.features import (
    LEXICAL_FEATURES,
    RELATIVE_FEATURES,
    Language,
    Profile,
    detect_language,
    lexical_features,
    profile,
    relative_features,
)
from modelcache.verifier.trees import TreeEnsemble, load_ensemble

__all__ = [
    "FAST_FEATURES",
    "FULL_FEATURES",
    "WEIGHTS_DIR",
    "Judgement",
    "Mode",
    "OperatingPoint",
    "Verifier",
    "VetoLevels",
    "feature_rows",
]

WEIGHTS_DIR = Path(__file__).parent / "weights"
SMALL_TENANTS = "small_tenants.json"
#: Text profiles kept per verifier: the stored questions of a busy tenant come back as
#: candidates query after query (a profile takes ~30 us; with 10 cached candidates the fast
#: look took 0.6 ms instead of 0.8 here).
PROFILE_CACHE_SIZE = 8192

#: Inputs of the fast model, in order; the full model adds the second model's cosines.
FAST_FEATURES: tuple[str, ...] = (
    *LEXICAL_FEATURES,
    *RELATIVE_FEATURES,
    *(f"first_{name}" for name in COSINE_FEATURES),
)
FULL_FEATURES: tuple[str, ...] = (*FAST_FEATURES, *(f"second_{name}" for name in COSINE_FEATURES))

Mode = Literal["cascade", "fast"]


@dataclass(frozen=True)
class OperatingPoint:
    """Thresholds on the verifier's probability for one language and length class."""

    threshold: float  # full model: hit at or above
    band: tuple[float, float]  # fast model in the cascade: miss below, hit at or above, else unsure
    fast_threshold: float  # fast model alone (mode "fast"): hit at or above


@dataclass(frozen=True)
class VetoLevels:
    """Small-tenant veto of one language: a cosine hit is rejected when the full model gives
    it under `full` (the fast look under `fast`, where e5 vectors are missing); a fast-look
    probability at or above `sure` keeps it without asking e5."""

    full: float
    fast: float
    sure: float


@dataclass(frozen=True)
class Judgement:
    """The verdict on one query: a hit on candidate `index`, a miss, or unsure."""

    index: int | None
    probability: float
    unsure: bool = False

    @property
    def hit(self) -> bool:
        return self.index is not None


class Verifier:
    """Shipped (or given) weights; loaded on first use or by `load()`."""

    def __init__(self, directory: Path | str = WEIGHTS_DIR, *, mode: Mode = "cascade"):
        self.directory = Path(directory)
        self.mode: Mode = mode
        self.floor = 0.0
        self.cutoff = 20
        self.points: dict[tuple[Language, bool], OperatingPoint] = {}
        #: language -> veto levels for small tenants (`vetoes`); none: no veto
        self.veto_levels: dict[Language, VetoLevels] = {}
        self._models: dict[tuple[Language, str], TreeEnsemble] = {}
        self._profile = functools.lru_cache(maxsize=PROFILE_CACHE_SIZE)(profile)

    def load(self) -> Verifier:
        """Read `verifier.json` and the tree files it names."""
        if self._models:
            return self
        config = _read_json(self.directory / "verifier.json")
        try:
            self.floor = float(config["floor"])
            self.cutoff = int(config["long_text_cutoff"])
            if config["features"] != list(FULL_FEATURES):
                raise ConfigurationError(f"{self.directory} was trained on other features than this code")
            for language in ("zh", "en"):
                entry = config["languages"][language]
                for kind, width in (("fast", len(FAST_FEATURES)), ("full", len(FULL_FEATURES))):
                    model = load_ensemble(self.directory / entry[f"{kind}_model"])
                    if model.n_features != width:
                        raise ConfigurationError(
                            f"{entry[f'{kind}_model']} expects {model.n_features} features"
                        )
                    self._models[(language, kind)] = model
                for name, is_long in (("short", False), ("long", True)):
                    point = entry[name]
                    self.points[(language, is_long)] = OperatingPoint(
                        float(point["threshold"]),
                        (float(point["band"][0]), float(point["band"][1])),
                        float(point["fast_threshold"]),
                    )
            self.veto_levels = _veto_levels(self.directory / SMALL_TENANTS)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            self._models.clear()
            raise ConfigurationError(f"malformed verifier weights in {self.directory}: {exc!r}") from exc
        except ConfigurationError:
            self._models.clear()
            raise
        return self

    def operating_point(self, question: str) -> OperatingPoint:
        """The thresholds that apply to this question (its language and length class)."""
        self.load()
        return self.points[(detect_language(question), text_length(question) > self.cutoff)]

    def score(
        self,
        question: str,
        candidate_questions: Sequence[str],
        first_cosines: Sequence[float] | np.ndarray,
        second_cosines: Sequence[float] | np.ndarray | None = None,
    ) -> np.ndarray:
        """Probability that each candidate means the same as the question.

        The full model runs when `second_cosines` are given, the fast model otherwise.
        """
        self.load()
        first = np.asarray(first_cosines, dtype=np.float64).reshape(-1)
        if len(first) != len(candidate_questions):
            raise ValueError("one first cosine per candidate is needed")
        if not len(first):
            return np.zeros(0, np.float64)
        second = None if second_cosines is None else np.asarray(second_cosines, dtype=np.float64)
        if second is not None and second.size != len(first):
            raise ValueError("one second cosine per candidate is needed")
        language = detect_language(question)
        rows = feature_rows(
            self._profile(question, language),
            [self._profile(c, language) for c in candidate_questions],
            first,
            second,
        )
        return self._models[(language, "fast" if second is None else "full")].probabilities(rows)

    def judge(
        self,
        question: str,
        candidate_questions: Sequence[str],
        first_cosines: Sequence[float] | np.ndarray,
        second_cosines: Sequence[float] | np.ndarray | None = None,
        *,
        mode: Mode | None = None,
    ) -> Judgement:
        """Hit, miss or unsure for one query (the cascade in the module docstring).

        `mode` overrides the verifier's own for this call, e.g. "fast" when some candidate
        has no stored second embedding.
        """
        first = np.asarray(first_cosines, dtype=np.float64).reshape(-1)
        if not len(first) or float(first.max()) < self.load().floor:
            return Judgement(None, 0.0)
        point = self.operating_point(question)
        probabilities = self.score(question, candidate_questions, first, second_cosines)
        best = int(probabilities.argmax())
        probability = float(probabilities[best])
        if second_cosines is not None:
            limit = point.threshold
        elif (mode or self.mode) == "fast":
            limit = point.fast_threshold
        elif point.band[0] <= probability < point.band[1]:
            return Judgement(None, probability, unsure=True)
        else:
            limit = point.band[1]
        return Judgement(best if probability >= limit else None, probability)

    def veto(self, question: str) -> VetoLevels:
        """The small-tenant veto levels for this question's language (all 0: no veto)."""
        self.load()
        return self.veto_levels.get(detect_language(question), VetoLevels(0.0, 0.0, 0.0))

    def vetoes(
        self,
        question: str,
        candidate_questions: Sequence[str],
        first_cosines: Sequence[float] | np.ndarray,
        chosen: int,
        second_cosines: Sequence[float] | np.ndarray | None = None,
    ) -> bool:
        """True when the model is confident that candidate `chosen` means something else.

        The candidates are all the query's same-context ones (the model's neighbourhood
        features need them); the full model runs when `second_cosines` are given, the fast
        look otherwise. (`SecondStage.vetoes` asks the fast look first, e5 only below `sure`.)
        """
        levels = self.veto(question)
        level = levels.fast if second_cosines is None else levels.full
        if level <= 0.0:
            return False
        probabilities = self.score(question, candidate_questions, first_cosines, second_cosines)
        return bool(probabilities[chosen] < level)


def _veto_levels(path: Path) -> dict[Language, VetoLevels]:
    """The small-tenant veto levels; none (no veto) when the weights folder has no such file."""
    if not path.exists():
        return {}
    levels = _read_json(path)["veto"]
    out: dict[Language, VetoLevels] = {}
    for language in ("zh", "en"):
        values = [float(levels[language][kind]) for kind in ("full", "fast", "sure")]
        if not all(0.0 <= value <= 1.0 for value in values):
            raise ValueError(f"veto levels {values} of {language} are not all probabilities")
        out[language] = VetoLevels(*values)
    return out


def feature_rows(
    query: Profile, candidates: Sequence[Profile], first: np.ndarray, second: np.ndarray | None
) -> np.ndarray:
    """(k, F) model inputs: `FAST_FEATURES`, plus the second cosines' when `second` is given."""
    lexical = np.array([lexical_features(query, c) for c in candidates]).reshape(-1, len(LEXICAL_FEATURES))
    parts = [lexical, relative_features(lexical), cosine_features(first)]
    if second is not None:
        parts.append(cosine_features(second))
    return np.hstack(parts)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with path.open(encoding="utf-8") as handle:
            data: dict[str, Any] = json.load(handle)
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigurationError(f"cannot read verifier weights {path}: {exc}") from exc
    return data
