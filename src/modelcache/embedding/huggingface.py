"""A local Hugging Face (or ModelScope) transformer directory, mean-pooled, on PyTorch.

`path` is a model directory as `save_pretrained` or a hub download leaves it (e.g.
text2vec-base-chinese): config.json, the weights (model.safetensors or pytorch_model.bin)
and the tokenizer files (tokenizer.json, or vocab.txt / sentencepiece files that
transformers converts to a fast tokenizer). A ModelScope download has the same files (plus
its own configuration.json, which is ignored) and loads the same way. Nothing is fetched:
loading is local only and never runs code from the directory.

Options: `path`; `max_tokens` (the model's limit, special tokens included; default from the
tokenizer or config); `window`, `stride` (see `windows.py`); `batch_size` (windows per
forward pass). `embed_threads` sets torch's intra-op threads, which is process-wide.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelcache.embedding.base import LazyEmbedder
from modelcache.embedding.options import Options, require_dir, require_file
from modelcache.embedding.windows import Runner, WindowedEncoder, WindowOptions
from modelcache.errors import ConfigurationError, MissingDependency

__all__ = ["HuggingFaceEmbedder", "import_frameworks", "model_token_limit"]

#: Model types whose position ids start after the padding index (usable = positions - 2).
_OFFSET_POSITIONS = frozenset({"roberta", "xlm-roberta", "camembert"})


def model_token_limit(tokenizer_limit: int, config: Any) -> int:
    """Tokens per forward pass, special tokens included (`max_tokens` overrides it)."""
    if 0 < tokenizer_limit < 100_000:  # transformers' "no limit" is a huge number
        return tokenizer_limit
    positions = getattr(config, "max_position_embeddings", None)
    if not isinstance(positions, int):
        raise ConfigurationError("huggingface embedder: the model declares no token limit: set max_tokens")
    return positions - 2 if getattr(config, "model_type", "") in _OFFSET_POSITIONS else positions


class HuggingFaceEmbedder(LazyEmbedder[WindowedEncoder]):
    name = "huggingface"

    def __init__(self, path: Path, *, threads: int = 1, windowing: WindowOptions | None = None):
        self.path = path
        self.threads = threads
        self.windowing = windowing or WindowOptions(self.name)
        self.dim = 0

    @classmethod
    def from_options(cls, threads: int, **values: Any) -> HuggingFaceEmbedder:
        options = Options(cls.name, values)
        embedder = cls(options.path("path"), threads=threads, windowing=WindowOptions.read(options))
        options.finish()
        return embedder

    def _embed(self, encoder: WindowedEncoder, texts: Sequence[str]) -> np.ndarray:
        return encoder.embed(texts)

    def _load_model(self) -> WindowedEncoder:
        require_dir(self.path, "huggingface model directory")
        require_file(self.path / "config.json", "huggingface model config")
        torch, transformers = import_frameworks()
        from safetensors import SafetensorError  # a dependency of transformers

        torch.set_num_threads(self.threads)
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(self.path, local_files_only=True)
            model = transformers.AutoModel.from_pretrained(self.path, local_files_only=True).eval()
        except (OSError, ValueError, SafetensorError) as exc:  # unreadable files, unknown model type
            raise ConfigurationError(f"huggingface embedder: cannot load {self.path}: {exc}") from exc
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise ConfigurationError(f"huggingface embedder: no fast tokenizer can be made from {self.path}")
        limit = self.windowing.max_tokens or model_token_limit(tokenizer.model_max_length, model.config)
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        run = _runner(torch, model)
        encoder = WindowedEncoder.build(backend, self.windowing, limit, run, pad_id=pad_id)
        self.dim = int(model.config.hidden_size)
        return encoder


def import_frameworks() -> tuple[Any, Any]:
    try:
        import torch
    except ImportError as exc:
        raise MissingDependency("torch", "huggingface") from exc
    try:
        import transformers
    except ImportError as exc:
        raise MissingDependency("transformers", "huggingface") from exc
    library: Any = transformers
    library.utils.logging.disable_progress_bar()  # no progress bars in the start-up log
    return torch, library


def _runner(torch: Any, model: Any) -> Runner:
    def run(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            output = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
        return np.asarray(output.last_hidden_state.float().numpy())

    return run
