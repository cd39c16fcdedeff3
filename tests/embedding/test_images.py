"""Image sources (bytes, data: URL, base64, path; URLs refused) and the image+text rule."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest

from modelcache.embedding.images import combine_image_text, open_image, read_image_bytes
from modelcache.errors import InvalidRequest
from tests.embedding.conftest import cosine

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def test_every_source_form_gives_the_same_bytes(tmp_path: Path) -> None:
    path = tmp_path / "pixel.png"
    path.write_bytes(PNG)
    encoded = base64.b64encode(PNG).decode()
    sources = [PNG, f"data:image/png;base64,{encoded}", encoded, str(path), bytearray(PNG)]
    assert all(read_image_bytes(source) == PNG for source in sources)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("https://example.invalid/cat.png", "URLs are not allowed"),
        ("data:image/png,rawbytes", "base64-encoded"),
        ("not base64 and not a file!", "neither a file"),
        ("!" * 5000, "neither a file"),  # too long for a path: no OSError
        ("a\0b", "neither a file"),
    ],
)
def test_bad_sources_are_the_callers_error(source: str, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        read_image_bytes(source)


def test_size_limit() -> None:
    with pytest.raises(InvalidRequest, match="limit"):
        read_image_bytes(PNG, max_bytes=10)


def test_undecodable_image() -> None:
    pytest.importorskip("PIL")
    assert open_image(PNG).size == (1, 1)
    with pytest.raises(InvalidRequest, match="not a readable image"):
        open_image(b"GIF89a but not really")


def unit(vector: list[float]) -> np.ndarray:
    array = np.asarray([vector], np.float32)
    return array / np.linalg.norm(array)


def test_combined_cosine_is_the_weighted_sum_of_text_and_image_cosines() -> None:
    rng = np.random.default_rng(0)
    texts, images = rng.standard_normal((2, 5)), rng.standard_normal((2, 3))
    combined = combine_image_text(texts, images, image_weight=0.3)
    assert combined.shape == (2, 8)
    assert combined.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(combined, axis=1), 1.0, rtol=1e-6)
    text_cos = cosine(unit(list(texts[0])), unit(list(texts[1])))
    image_cos = cosine(unit(list(images[0])), unit(list(images[1])))
    assert cosine(combined[0], combined[1]) == pytest.approx(0.7 * text_cos + 0.3 * image_cos, abs=1e-6)


def test_a_query_without_an_image_keeps_its_text_at_full_weight() -> None:
    text = unit([1.0, 2.0, 2.0])
    alone = combine_image_text(text, np.zeros((1, 4), np.float32), image_weight=0.5)
    np.testing.assert_allclose(alone, np.hstack([text, np.zeros((1, 4))]), rtol=1e-6)
    with_image = combine_image_text(text, unit([1.0, 0.0, 0.0, 0.0]), image_weight=0.5)
    assert cosine(alone, with_image) == pytest.approx(np.sqrt(0.5), abs=1e-6)
    with pytest.raises(ValueError, match="image_weight"):
        combine_image_text(text, text, image_weight=1.5)
