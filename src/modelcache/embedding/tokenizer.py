"""Loading a `tokenizers` tokenizer.json, shared by the embedders that bring their own."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from modelcache.embedding.options import require_file
from modelcache.errors import ConfigurationError, MissingDependency

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = ["load_tokenizer", "token_id"]


def load_tokenizer(path: Path, extra: str) -> Tokenizer:
    """The tokenizer saved at `path` (a tokenizer.json); `extra` is the install extra to name."""
    require_file(path, "tokenizer file")
    try:
        from tokenizers import Tokenizer
    except ImportError as exc:
        raise MissingDependency("tokenizers", extra) from exc
    try:
        return Tokenizer.from_file(str(path))
    except Exception as exc:  # the Rust side raises a bare Exception for any bad file
        raise ConfigurationError(f"cannot read tokenizer file {path}: {exc}") from exc


def token_id(tokenizer: Tokenizer, candidates: tuple[str, ...], default: int) -> int:
    """The id of the first of `candidates` the vocabulary has (e.g. a padding token)."""
    for token in candidates:
        found = tokenizer.token_to_id(token)
        if found is not None:
            return int(found)
    return default
