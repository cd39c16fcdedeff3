"""timm: a tiny image model saved in timm's own format, loaded through timm's local-dir path.

timm imports torchvision; a torchvision wheel built for another torch fails at import with a
RuntimeError, so these tests skip, saying why, where timm cannot import.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pytest

from modelcache.embedding import Embedder
from modelcache.errors import ConfigurationError, InvalidRequest
from tests.embedding.artefacts import build_timm_dir, png_bytes
from tests.embedding.conftest import check_contract, cosine, load_embedder


@pytest.fixture(scope="module")
def timm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        import timm  # noqa: F401
    except (ImportError, RuntimeError) as exc:
        pytest.skip(f"timm does not import here: {exc}")
    return build_timm_dir(tmp_path_factory.mktemp("timm") / "tiny-resnet")


@pytest.fixture(scope="module")
def embedder(timm_dir: Path) -> Embedder:
    return load_embedder("timm", path=str(timm_dir))


def test_contract_over_every_source_form(embedder: Embedder, tmp_path: Path) -> None:
    red, striped = png_bytes((200, 30, 30)), png_bytes((30, 30, 200), stripe=True)
    path = tmp_path / "red.png"
    path.write_bytes(red)
    sources = [red, f"data:image/png;base64,{base64.b64encode(striped).decode()}", str(path)]
    vectors = check_contract(embedder, sources)
    np.testing.assert_allclose(vectors[0], vectors[2], atol=1e-6)  # same image, two forms
    assert embedder.dim == 512


def test_different_images_differ(embedder: Embedder) -> None:
    a, b, c = embedder.embed(
        [png_bytes((10, 200, 10)), png_bytes((10, 200, 10)), png_bytes((0, 0, 0), stripe=True)]
    )
    assert cosine(a, b) == pytest.approx(1.0, abs=1e-6)
    assert cosine(a, c) < 0.9999


def test_bad_images_are_the_callers_error(embedder: Embedder) -> None:
    with pytest.raises(InvalidRequest):
        embedder.embed([b"not an image"])
    with pytest.raises(InvalidRequest, match="URLs are not allowed"):
        embedder.embed(["http://127.0.0.1:9/cat.png"])


def test_missing_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(str(tmp_path / "none"))):
        load_embedder("timm", path=str(tmp_path / "none"))


def test_unloadable_directory_is_named(tmp_path: Path, timm_dir: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_bytes((timm_dir / "config.json").read_bytes())
    (broken / "model.safetensors").write_bytes(b"truncated")
    with pytest.raises(ConfigurationError, match=re.escape(str(broken))):
        load_embedder("timm", path=str(broken))
