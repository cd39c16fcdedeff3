"""The shared windowing and pooling helper (pure numpy, no model)."""

from __future__ import annotations

import numpy as np
import pytest

from modelcache.embedding.options import Options
from modelcache.embedding.windows import WindowOptions, WindowSpec, masked_mean, pool_windows, split_windows
from modelcache.errors import ConfigurationError


def test_a_short_text_is_one_window() -> None:
    assert split_windows([1, 2, 3], WindowSpec(size=4, stride=3)) == [[1, 2, 3]]
    assert split_windows([], WindowSpec(size=4, stride=3)) == [[]]


def test_windows_overlap_and_the_last_ends_at_the_last_token() -> None:
    ids = list(range(10))
    windows = split_windows(ids, WindowSpec(size=4, stride=3))
    assert windows == [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]]
    assert split_windows(list(range(11)), WindowSpec(size=4, stride=3))[-1] == [7, 8, 9, 10]


@pytest.mark.parametrize("length", [5, 17, 100, 513])
@pytest.mark.parametrize(("size", "stride"), [(4, 4), (4, 1), (16, 12), (510, 382)])
def test_every_token_is_in_a_window_of_full_size(length: int, size: int, stride: int) -> None:
    windows = split_windows(list(range(length)), WindowSpec(size=size, stride=stride))
    assert {token for window in windows for token in window} == set(range(length))
    assert all(len(window) == min(size, length) for window in windows)


def test_masked_mean_ignores_padding() -> None:
    hidden = np.arange(12, dtype=np.float32).reshape(1, 4, 3)
    mask = np.array([[1, 1, 0, 0]])
    np.testing.assert_allclose(masked_mean(hidden, mask), [[1.5, 2.5, 3.5]])


def test_windows_are_pooled_per_text_by_token_count() -> None:
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [3.0, 4.0]], np.float32)
    pooled = pool_windows(vectors, np.array([3.0, 1.0, 2.0]), np.array([0, 0, 1]), 2)
    np.testing.assert_allclose(pooled[0], np.array([3.0, 1.0]) / np.sqrt(10), rtol=1e-6)
    np.testing.assert_allclose(pooled[1], [0.6, 0.8], rtol=1e-6)


def test_window_defaults_fill_the_model() -> None:
    spec = WindowOptions.read(Options("test", {})).spec(model_limit=512, specials=2)
    assert spec == WindowSpec(size=510, stride=382)
    custom = WindowOptions.read(Options("test", {"max_tokens": 128, "window": 100, "stride": "50"}))
    assert custom.spec(model_limit=512, specials=2) == WindowSpec(size=100, stride=50)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"window": 0}, "integer >= 1"),
        ({"window": "wide"}, "integer >= 1"),
        ({"stride": True}, "integer >= 1"),
        ({"windw": 10}, r"unknown option\(s\) \['windw'\]"),
    ],
)
def test_bad_window_options(values: dict[str, object], message: str) -> None:
    options = Options("test", values)
    with pytest.raises(ConfigurationError, match=message):
        WindowOptions.read(options)
        options.finish()
