"""Embedding models by name."""

from __future__ import annotations

from typing import Any

from modelcache.embedding.base import Embedder, normalize_rows
from modelcache.embedding.batcher import BatchingEmbedder
from modelcache.registry import resolve
from modelcache.settings import Settings

__all__ = ["EMBEDDERS", "BatchingEmbedder", "Embedder", "embedder_named", "normalize_rows", "open_embedder"]

#: name -> class with `from_options(threads, **options)`.
EMBEDDERS: dict[str, str] = {
    "use": "modelcache.embedding.use:UseEmbedder",
    "e5": "modelcache.embedding.e5:E5Embedder",
    "huggingface": "modelcache.embedding.huggingface:HuggingFaceEmbedder",
    "modelscope": "modelcache.embedding.huggingface:HuggingFaceEmbedder",
    "onnx": "modelcache.embedding.onnx:OnnxEmbedder",
    "fasttext": "modelcache.embedding.fasttext:FastTextEmbedder",
    "llm": "modelcache.embedding.llm:LlmEmbedder",
    "timm": "modelcache.embedding.timm:TimmEmbedder",
}


def embedder_named(name: str, threads: int, **options: Any) -> Embedder:
    """The registered embedder `name`, not loaded yet."""
    embedder: Embedder = resolve(EMBEDDERS, name, "embedder").from_options(threads, **options)
    return embedder


def open_embedder(settings: Settings) -> Embedder:
    """The embedder the settings name, with their options and threads."""
    return embedder_named(settings.embedder, settings.embed_threads, **settings.embedder_options)
