import json

import numpy as np
import pytest

from modelcache.errors import ConfigurationError
from modelcache.verifier import WEIGHTS_DIR, Judgement, Verifier
from modelcache.verifier.verifier import FAST_FEATURES, FULL_FEATURES


@pytest.fixture(scope="module")
def verifier() -> Verifier:
    return Verifier().load()


def test_shipped_weights_load_and_fit_the_features(verifier):
    config = json.loads((WEIGHTS_DIR / "verifier.json").read_text())
    assert config["features"] == list(FULL_FEATURES)
    assert config["fast_features"] == len(FAST_FEATURES)
    for language in ("zh", "en"):
        for is_long in (False, True):
            point = verifier.points[(language, is_long)]
            assert 0 <= point.band[0] <= point.band[1] <= 1
            assert 0 < point.threshold < 1
    total = sum(path.stat().st_size for path in WEIGHTS_DIR.iterdir())
    assert total < 1_200_000


def test_scores_are_probabilities(verifier):
    p = verifier.score("how do I sort a list", ["how to sort a list", "cook rice"], [0.9, 0.2])
    assert p.shape == (2,) and ((p >= 0) & (p <= 1)).all()
    full = verifier.score("how do I sort a list", ["how to sort a list"], [0.9], [0.95])
    assert full.shape == (1,)
    assert verifier.score("anything", [], []).shape == (0,)


def test_mismatched_lengths_are_rejected(verifier):
    with pytest.raises(ValueError):
        verifier.score("q", ["a", "b"], [0.9])
    with pytest.raises(ValueError):
        verifier.score("q", ["a", "b"], [0.9, 0.8], [0.9])


# Cosines measured with the bundled USE model (first) and e5-small (second) on these texts:
# the verifier is given what the cache would give it.
CLEAR_PAIRS = [
    (
        "how do I reverse a list in python",
        ["how can I reverse a list in python", "how do I sort a list in python"],
        [0.9825, 0.8445],
        [0.9992, 0.9053],
    ),
    (
        "what is the best way to learn english",
        ["how can I learn english effectively", "what is the best way to learn french"],
        [0.8618, 0.8063],
        [0.9536, 0.9314],
    ),
    (
        "who is the president of the united states in 2016",
        ["who was the us president in 2016", "who is the president of the united states in 2020"],
        [0.8917, 0.8367],
        [0.9870, 0.9476],
    ),
    (
        "why is my phone charging slowly",
        ["why does my phone charge slowly", "why is my phone not charging"],
        [0.9429, 0.8724],
        [0.9933, 0.9520],
    ),
]


@pytest.mark.parametrize("second", [False, True])
@pytest.mark.parametrize(("question", "candidates", "first", "second_cosines"), CLEAR_PAIRS)
def test_paraphrase_scores_above_a_near_miss(verifier, question, candidates, first, second_cosines, second):
    p = verifier.score(question, candidates, first, second_cosines if second else None)
    assert p[0] > p[1]


def test_paraphrase_is_a_hit_and_near_miss_is_not(verifier):
    question, candidates, first, second = CLEAR_PAIRS[0]
    verdict = verifier.judge(question, candidates, first)
    if verdict.unsure:
        verdict = verifier.judge(question, candidates, first, second)
    assert verdict.index == 0
    near_miss = verifier.judge(question, candidates[1:], first[1:], second[1:])
    assert not near_miss.hit


def test_judge_cascade(verifier):
    assert verifier.judge("q", [], []) == Judgement(None, 0.0)
    assert not verifier.judge("how do I sort a list", ["how to cook rice"], [0.1]).hit
    clear = verifier.judge(
        "how do I sort a list in python?", ["How do I sort a list in Python"], [0.99], [0.995]
    )
    assert clear.hit and clear.index == 0
    verdict = verifier.judge("what is the capital of france", ["what is the capital of spain"], [0.85])
    assert verdict.unsure or not verdict.hit


def test_fast_mode_never_unsure():
    fast = Verifier(mode="fast").load()
    rng = np.random.default_rng(0)
    for first in rng.uniform(0.7, 1.0, size=20):
        verdict = fast.judge("how do I sort a list", ["how can I sort a list"], [first])
        assert not verdict.unsure


def test_missing_weights_are_a_configuration_error(tmp_path):
    with pytest.raises(ConfigurationError):
        Verifier(tmp_path).load()
    (tmp_path / "verifier.json").write_text("{}")
    with pytest.raises(ConfigurationError):
        Verifier(tmp_path).load()


def test_shipped_small_tenant_vetoes(verifier):
    """The shipped levels: English vetoes, Chinese none (see scripts/eval_small_tenants.py)."""
    en, zh = verifier.veto_levels["en"], verifier.veto_levels["zh"]
    assert 0 < en.full < 0.5 and 0 < en.fast < 0.5 and en.full < en.sure <= 1
    assert zh.full == zh.fast == 0.0
    reverse = "how do I reverse a list in python"
    # The first CLEAR_PAIRS row: a paraphrase and a near miss (cosines of the bundled models).
    assert verifier.vetoes(reverse, ["how do I sort a list in python"], [0.8445], 0, [0.9053])
    assert not verifier.vetoes(reverse, ["how can I reverse a list in python"], [0.9825], 0, [0.9992])
    assert verifier.vetoes(reverse, ["how do I sort a list in python"], [0.8445], 0)  # fast look
    assert not verifier.vetoes("你是什么人?", ["你是谁?"], [0.823], 0, [0.988])


def test_without_a_small_tenant_file_nothing_is_vetoed(tmp_path):
    for path in WEIGHTS_DIR.iterdir():
        if path.name != "small_tenants.json":
            (tmp_path / path.name).write_bytes(path.read_bytes())
    bare = Verifier(tmp_path).load()
    assert bare.veto_levels == {}
    sort = ["how do I sort a list in python"]
    assert not bare.vetoes("how do I reverse a list in python", sort, [0.8445], 0, [0.9053])


def test_a_veto_level_outside_0_1_is_a_configuration_error(tmp_path):
    for path in WEIGHTS_DIR.iterdir():
        (tmp_path / path.name).write_bytes(path.read_bytes())
    config = json.loads((tmp_path / "small_tenants.json").read_text())
    config["veto"]["en"]["sure"] = 1.5
    (tmp_path / "small_tenants.json").write_text(json.dumps(config))
    with pytest.raises(ConfigurationError):
        Verifier(tmp_path).load()
