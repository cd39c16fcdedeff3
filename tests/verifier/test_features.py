import numpy as np
import pytest

from modelcache.verifier.cosines import COSINE_FEATURES, cosine_features
from modelcache.verifier.features import (
    LEXICAL_FEATURES,
    RELATIVE_FEATURES,
    cjk_share,
    detect_language,
    lcs_length,
    lexical_features,
    order_agreement,
    profile,
    relative_features,
)


def features(a: str, b: str) -> dict[str, float]:
    language = detect_language(a)
    values = lexical_features(profile(a, language), profile(b, language))
    assert len(values) == len(LEXICAL_FEATURES)
    return dict(zip(LEXICAL_FEATURES, values, strict=True))


def test_language_by_cjk_share():
    assert detect_language("how do I reverse a list in python") == "en"
    assert detect_language("花呗支持高铁票支付吗") == "zh"
    assert detect_language("Four Rivers 委员会与 Audubon 委员会合并后") == "zh"
    assert detect_language("What does 分 mean?") == "en"
    assert cjk_share("") == 0.0


def test_lcs_length():
    assert lcs_length("abcbdab", "bdcaba") == 4
    assert lcs_length(("a", "b", "c"), ("a", "b", "c")) == 3
    assert lcs_length((), ("a",)) == 0
    assert lcs_length("x" * 200, "x" * 150) == 150


def test_order_agreement():
    assert order_agreement(("a", "b", "c", "d"), ("a", "b", "c", "d")) == 1.0
    assert order_agreement(("a", "b", "c", "d"), ("d", "c", "b", "a")) == 0.25
    assert order_agreement(("a",), ("b",)) == 1.0


def test_identical_tokens_up_to_punctuation_and_case():
    f = features("How do I sort a list?", "how do i sort a list")
    assert f["same_tokens"] == 1.0
    assert f["uni_jaccard"] == f["bi_jaccard"] == 1.0
    assert f["content_only_query"] == f["content_only_candidate"] == 0.0


def test_one_differing_content_word_english():
    f = features("how do I reverse a list in python", "how do I sort a list in python")
    assert f["content_only_query"] == f["content_only_candidate"] == 1.0
    assert f["content_only_max_len"] == len("reverse")
    assert f["uni_jaccard"] < 1.0
    assert f["names_mismatch"] == 0.0


def test_containment_is_asymmetric():
    f = features("how do I sort a list", "how do I sort a list of tuples by the second item")
    assert f["uni_in_candidate"] == 1.0
    assert f["uni_in_query"] < 0.6
    assert f["len_ratio"] < 0.6


def test_query_tokens_counts_the_query_side_only():
    # words in English, characters in Chinese (Latin words whole), punctuation not counted
    assert features("how do I sort a list?", "sort a list")["query_tokens"] == 6.0
    assert features("how do I sort a list?", "how")["query_tokens"] == 6.0
    assert features("你是谁?", "你是什么人?")["query_tokens"] == 3.0
    assert features("iPhone 怎么截屏", "如何截图")["query_tokens"] == 5.0


def test_numbers():
    f = features("what is 2 + 3", "what is 2 + 4")
    assert f["numbers_only_query"] == f["numbers_only_candidate"] == f["numbers_mismatch"] == 1.0
    assert features("iphone 12 price", "iphone price")["numbers_only_query"] == 1.0
    zh = features("三个人怎么分", "两个人怎么分")
    assert zh["numbers_mismatch"] == 1.0
    assert features("第3集", "第3集在哪看")["numbers_mismatch"] == 0.0


def test_negations():
    f = features("why is my phone charging", "why is my phone not charging")
    assert f["negation_diff"] == 1.0 and f["negation_parity"] == 1.0
    assert features("it isn't working", "it does not work")["negation_parity"] == 0.0
    zh = features("花呗能用吗", "花呗不能用吗")
    assert zh["negation_parity"] == 1.0
    assert features("我没有钱", "我没钱")["negation_diff"] == 0.0


def test_question_words():
    f = features("why do cats purr", "how do cats purr")
    assert f["qword_mismatch"] == 2.0 and f["qword_first_differs"] == 1.0
    assert features("how many legs does a spider have", "how do spiders walk")["qword_first_differs"] == 1.0
    zh = features("为什么花呗不能用", "怎么开通花呗")
    assert zh["qword_first_differs"] == 1.0
    assert features("花呗怎么用", "花呗如何使用")["qword_mismatch"] == 0.0


def test_word_order_swap_chinese():
    f = features("它被发现于非洲，包括南非。", "它被发现于南非，包括非洲。")
    assert f["uni_jaccard"] == 1.0
    assert f["bi_jaccard"] < 1.0
    assert f["order_agreement"] < 1.0
    assert f["lcs_query"] < 1.0


def test_word_order_swap_english():
    f = features("flights from paris to london", "flights from london to paris")
    assert f["uni_jaccard"] == 1.0
    assert f["order_agreement"] < 1.0
    assert f["bi_in_candidate"] < 1.0


def test_names():
    assert features("Who is Donald Trump?", "Who is Donald Duck?")["names_mismatch"] == 2.0
    assert features("How do I learn Python?", "how do i learn python")["names_mismatch"] == 0.0
    assert features("Audubon 委员会", "Shawnee 委员会")["names_mismatch"] == 2.0


def test_all_features_finite_on_empty_text():
    values = lexical_features(profile("", "en"), profile("?", "en"))
    assert all(v == v and abs(v) < 1e9 for v in values)


def test_cosine_features():
    rows = cosine_features([0.9, 0.95, 0.5])
    assert rows.shape == (3, len(COSINE_FEATURES))
    assert rows[:, 2].tolist() == [1.0, 0.0, 2.0]
    assert rows[1, 1] == pytest.approx(0.05)
    assert rows[0, 1] == pytest.approx(-0.05)
    assert rows[:, 3].tolist() == [0.0, 0.0, 0.0]  # fewer than 10 candidates: the 10th is 0
    assert rows[0, 4] == pytest.approx((0.9 + 0.95 + 0.5) / 10)
    assert cosine_features([0.8])[0].tolist() == pytest.approx([0.8, 0.8, 0.0, 0.0, 0.08])
    assert cosine_features(np.linspace(1, 0.5, 12))[0, 3] == pytest.approx(np.linspace(1, 0.5, 12)[9])
    assert cosine_features([]).shape == (0, len(COSINE_FEATURES))


def test_relative_features():
    lexical = np.array(
        [
            lexical_features(profile(a, "en"), profile(b, "en"))
            for a, b in [
                ("sort a list", "sort a list"),
                ("sort a list", "sort a dict"),
                ("sort a list", "cook rice"),
            ]
        ]
    )
    gaps = relative_features(lexical)
    assert gaps.shape == (3, len(RELATIVE_FEATURES))
    assert gaps[0].tolist() == [0.0, 0.0, 0.0]
    assert (gaps[1:] < 0).all()
