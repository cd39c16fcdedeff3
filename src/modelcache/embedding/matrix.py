"""A token-embedding matrix from .npy or .safetensors, memory-mapped: only looked-up rows are read.

LLM checkpoints are large and usually bfloat16, which numpy has no type for; the safetensors
layout is simple and documented (an 8-byte little-endian header length, a JSON header naming
each tensor's dtype, shape and byte range, then the raw data), so it is mapped here directly:
no framework, no copy of the whole checkpoint in memory. A sharded checkpoint is opened
through its `*.safetensors.index.json`.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np

from modelcache.embedding.options import require_file
from modelcache.errors import ConfigurationError

__all__ = ["EmbeddingMatrix", "open_matrix"]

#: safetensors dtype -> numpy storage type (bfloat16 is stored as its 16 raw bits).
_DTYPES: dict[str, type[np.generic]] = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "BF16": np.uint16,
}
#: Where common LLM families keep their input embeddings.
KNOWN_NAMES = (
    "model.embed_tokens.weight",
    "embed_tokens.weight",
    "model.language_model.embed_tokens.weight",
    "transformer.wte.weight",
    "wte.weight",
    "tok_embeddings.weight",
    "transformer.word_embeddings.weight",
    "gpt_neox.embed_in.weight",
    "embeddings.word_embeddings.weight",
)
_MAX_HEADER = 100 * 1024 * 1024


class EmbeddingMatrix:
    """(vocabulary, dim) rows on disk; `rows(ids)` reads just those rows as float32."""

    def __init__(self, data: np.ndarray, *, bfloat16: bool = False):
        if data.ndim != 2:
            raise ConfigurationError(f"an embedding matrix must be 2-D, not of shape {data.shape}")
        self.data = data
        self.bfloat16 = bfloat16

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.data.shape[0]), int(self.data.shape[1])

    def rows(self, ids: np.ndarray) -> np.ndarray:
        picked = np.asarray(self.data[ids])
        if self.bfloat16:
            return (picked.astype(np.uint32) << 16).view(np.float32)
        return picked.astype(np.float32)


def open_matrix(path: Path, tensor: str | None = None) -> EmbeddingMatrix:
    """The matrix in a .npy file, or tensor `tensor` (default: found by name) of a safetensors file."""
    require_file(path, "embedding matrix file")
    if path.suffix == ".npy":
        try:
            return EmbeddingMatrix(np.load(path, mmap_mode="r", allow_pickle=False))
        except ValueError as exc:
            raise ConfigurationError(f"cannot read embedding matrix {path}: {exc}") from exc
    if path.name.endswith(".index.json"):
        return _open_shard(path, tensor)
    if path.suffix == ".safetensors":
        return _open_safetensors(path, tensor)
    raise ConfigurationError(f"embedding matrix {path}: expected a .npy, .safetensors or .index.json file")


def _open_shard(index: Path, tensor: str | None) -> EmbeddingMatrix:
    weight_map: dict[str, str] = _read_json(index.read_bytes(), index).get("weight_map", {})
    name = _pick_name(tensor, list(weight_map), index)
    return _open_safetensors(index.parent / weight_map[name], name)


def _open_safetensors(path: Path, tensor: str | None) -> EmbeddingMatrix:
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8).ljust(8, b"\0"))
        if not 0 < length <= _MAX_HEADER:
            raise ConfigurationError(f"{path} is not a safetensors file")
        header = _read_json(handle.read(length), path)
    names = [key for key in header if key != "__metadata__"]
    name = _pick_name(tensor, names, path)
    kind, shape, begin, end = _layout(header[name], f"{path}: tensor {name!r}")
    dtype = _DTYPES.get(kind)
    if dtype is None:
        raise ConfigurationError(f"{path}: tensor {name!r} has unsupported dtype {kind!r}")
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if end - begin != size or 8 + length + end > path.stat().st_size:
        raise ConfigurationError(f"{path}: tensor {name!r} does not match its declared size")
    data = np.memmap(path, dtype=dtype, mode="r", offset=8 + length + begin, shape=shape)
    return EmbeddingMatrix(data, bfloat16=kind == "BF16")


def _layout(entry: Any, what: str) -> tuple[str, tuple[int, ...], int, int]:
    """(dtype, shape, begin, end) of one header entry."""
    try:
        begin, end = (int(offset) for offset in entry["data_offsets"])
        return str(entry["dtype"]), tuple(int(size) for size in entry["shape"]), begin, end
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigurationError(f"{what} has a malformed header entry") from exc


def _read_json(raw: bytes, path: Path) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{path} has an unreadable header: {exc}") from exc
    if not isinstance(value, dict):
        raise ConfigurationError(f"{path} has an unreadable header")
    return value


def _pick_name(tensor: str | None, names: list[str], path: Path) -> str:
    if tensor is not None:
        if tensor not in names:
            raise ConfigurationError(f"{path} has no tensor {tensor!r}")
        return tensor
    known = [name for name in KNOWN_NAMES if name in names]
    if known:
        return known[0]
    if len(names) == 1:
        return names[0]
    raise ConfigurationError(f"{path}: cannot tell which tensor is the token embedding; set `tensor`")
