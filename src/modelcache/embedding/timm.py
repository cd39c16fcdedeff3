"""Image embeddings from a local timm model, for image+text queries.

`path` is a model directory in timm's own format, as a hub download or
`timm.models.save_for_hf` leaves it: config.json (architecture, pretrained_cfg) and the
weights (model.safetensors or pytorch_model.bin). It is loaded by timm itself
(`local-dir:` models), with the classifier removed: the vector is the model's pooled
features, L2-normalised, after the model's own preprocessing (resize, crop, normalise).

`embed(images)` takes image sources (see `images.py`): bytes, data: URLs, base64 strings or
local paths; http(s) URLs only with `allow_urls: true` (and `url_timeout_s`). How an image
vector joins a text vector is `images.combine_image_text`. Needs torch, timm, torchvision
and pillow; `embed_threads` sets torch's intra-op threads, which is process-wide.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelcache.embedding.base import normalize_rows
from modelcache.embedding.images import ImageSource, open_image, read_image_bytes
from modelcache.embedding.options import Options, require_dir, require_file
from modelcache.errors import ConfigurationError, MissingDependency

__all__ = ["TimmEmbedder"]


class TimmEmbedder:
    name = "timm"

    def __init__(
        self,
        path: Path,
        *,
        threads: int = 1,
        allow_urls: bool = False,
        url_timeout_s: float = 10.0,
        batch_size: int = 16,
    ):
        self.path = path
        self.threads = threads
        self.allow_urls = allow_urls
        self.url_timeout_s = url_timeout_s
        self.batch_size = batch_size
        self.dim = 0
        self._run: Callable[[list[Any]], np.ndarray] | None = None

    @classmethod
    def from_options(cls, threads: int, **values: Any) -> TimmEmbedder:
        options = Options(cls.name, values)
        embedder = cls(
            options.path("path"),
            threads=threads,
            allow_urls=options.flag("allow_urls", False),
            url_timeout_s=options.number("url_timeout_s", 10.0, low=0.1, high=300.0),
            batch_size=options.integer("batch_size", 16),
        )
        options.finish()
        return embedder

    def load(self) -> None:
        self._loaded()

    def embed(self, texts: Sequence[ImageSource]) -> np.ndarray:
        """Image sources -> unit rows (the protocol's `texts` are image references here)."""
        return self.embed_images(texts)

    def embed_images(self, images: Sequence[ImageSource]) -> np.ndarray:
        run = self._loaded()
        if not images:
            return np.zeros((0, self.dim), np.float32)
        pictures = [open_image(self._bytes(source)) for source in images]
        vectors = np.zeros((len(pictures), self.dim), np.float32)
        for start in range(0, len(pictures), self.batch_size):
            vectors[start : start + self.batch_size] = run(pictures[start : start + self.batch_size])
        return normalize_rows(vectors)

    def _bytes(self, source: ImageSource) -> bytes:
        return read_image_bytes(source, allow_urls=self.allow_urls, timeout_s=self.url_timeout_s)

    def _loaded(self) -> Callable[[list[Any]], np.ndarray]:
        if self._run is not None:
            return self._run
        require_dir(self.path, "timm model directory")
        require_file(self.path / "config.json", "timm model config")
        torch, timm = _import_frameworks()
        from safetensors import SafetensorError  # a dependency of timm

        torch.set_num_threads(self.threads)
        try:
            model = timm.create_model(f"local-dir:{self.path}", pretrained=True, num_classes=0).eval()
        except (OSError, ValueError, RuntimeError, SafetensorError) as exc:  # unreadable or mismatched
            raise ConfigurationError(f"timm embedder: cannot load {self.path}: {exc}") from exc
        config = timm.data.resolve_data_config({}, model=model)
        transform = timm.data.create_transform(**config)

        def run(pictures: list[Any]) -> np.ndarray:
            batch = torch.stack([transform(picture) for picture in pictures])
            with torch.inference_mode():
                return np.asarray(model(batch).float().numpy())

        self.dim = int(run([_blank_image()]).shape[1])  # the pooled width, and a warm-up run
        self._run = run
        return run


def _import_frameworks() -> tuple[Any, Any]:
    try:
        import torch
    except ImportError as exc:
        raise MissingDependency("torch", "timm") from exc
    try:
        import timm
        import timm.data
    except ImportError as exc:
        raise MissingDependency(exc.name or "timm", "timm") from exc
    except RuntimeError as exc:  # a torchvision built for another torch fails while registering ops
        detail = f"torchvision does not load beside torch {torch.__version__}: {exc}"
        raise ConfigurationError(f"timm embedder: {detail}") from exc
    return torch, timm


def _blank_image() -> Any:
    from PIL import Image

    return Image.new("RGB", (32, 32))
