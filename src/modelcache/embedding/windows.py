"""Transformer text embedding without truncation: token windows, mean pooling, pooled windows.

One piece of code for every transformer embedder (`huggingface`, `onnx`); each supplies only
a `Runner` that maps a padded batch to hidden states. The recipe:

1. Tokenize without special tokens. A text that fits `window` content tokens is one window;
   a longer one is cut into windows of `window` tokens whose starts are `stride` tokens apart,
   the last one ending exactly at the text's end, so every token is inside some window and
   no text is silently cut.
2. Each window gets the model's special tokens (e.g. `[CLS] … [SEP]`) and runs through the
   model; its vector is the mean of its hidden states over the attention mask (special
   tokens included, as sentence-transformers' mean pooling does).
3. A text's vector is the mean of its window vectors weighted by their token counts (tokens
   in overlaps count once per window), then L2-normalised. (The windows of one long text
   are all `window` tokens long, so this is also their plain mean.)

Texts are batched together with texts of similar length; padding is masked out, so a text's
vector does not depend on its batch-mates beyond float rounding (about 1e-6).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from modelcache.embedding.base import normalize_rows
from modelcache.embedding.options import Options
from modelcache.errors import ConfigurationError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = [
    "Runner",
    "SpecialTokens",
    "WindowOptions",
    "WindowSpec",
    "WindowedEncoder",
    "masked_mean",
    "pool_windows",
    "split_windows",
]

#: (input_ids, attention_mask), both int64 (batch, tokens) -> hidden states (batch, tokens, dim),
#: or already pooled vectors (batch, dim).
Runner = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class WindowSpec:
    """`size` content tokens per window; consecutive windows start `stride` tokens apart."""

    size: int
    stride: int


@dataclass(frozen=True)
class WindowOptions:
    """The windowing options as configured; None means the model's default."""

    embedder: str
    max_tokens: int | None = None
    window: int | None = None
    stride: int | None = None
    batch_size: int = 32

    @classmethod
    def read(cls, options: Options) -> WindowOptions:
        """`max_tokens` (special tokens included), `window`, `stride`, `batch_size`."""
        return cls(
            embedder=options.embedder,
            max_tokens=options.optional_integer("max_tokens", minimum=2),
            window=options.optional_integer("window"),
            stride=options.optional_integer("stride"),
            batch_size=options.integer("batch_size", 32),
        )

    def spec(self, model_limit: int, specials: int) -> WindowSpec:
        """Window all the model allows by default, consecutive windows overlapping by 1/4."""
        limit = self.max_tokens or model_limit
        room = limit - specials
        if room < 1:
            raise ConfigurationError(f"{self.embedder} embedder: max_tokens {limit} leaves no room for text")
        size = self.window or room
        if size > room:
            raise ConfigurationError(
                f"{self.embedder} embedder: window {size} exceeds the model's {room} content tokens"
            )
        stride = self.stride or max(1, size * 3 // 4)
        if stride > size:
            raise ConfigurationError(f"{self.embedder} embedder: stride {stride} exceeds window {size}")
        return WindowSpec(size=size, stride=stride)


@dataclass(frozen=True)
class SpecialTokens:
    """The ids a tokenizer puts before and after one sequence."""

    prefix: tuple[int, ...]
    suffix: tuple[int, ...]

    @classmethod
    def of(cls, tokenizer: Tokenizer) -> SpecialTokens:
        probe = "a"
        body = tokenizer.encode(probe, add_special_tokens=False).ids
        full = tokenizer.encode(probe, add_special_tokens=True).ids
        for start in range(len(full) - len(body) + 1):
            if full[start : start + len(body)] == body:
                return cls(tuple(full[:start]), tuple(full[start + len(body) :]))
        raise ConfigurationError("cannot tell where the tokenizer puts its special tokens")

    def __len__(self) -> int:
        return len(self.prefix) + len(self.suffix)


def split_windows(ids: Sequence[int], spec: WindowSpec) -> list[list[int]]:
    """Windows covering every token; the last one ends at the last token."""
    if len(ids) <= spec.size:
        return [list(ids)]
    last = len(ids) - spec.size
    starts = [*range(0, last, spec.stride), last]
    return [list(ids[start : start + spec.size]) for start in starts]


def masked_mean(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(batch, tokens, dim) hidden states -> (batch, dim) means over the unmasked tokens."""
    weights = mask.astype(np.float32)[:, :, None]
    counts = np.maximum(weights.sum(axis=1), 1.0)
    return np.asarray((hidden.astype(np.float32) * weights).sum(axis=1) / counts, dtype=np.float32)


def pool_windows(vectors: np.ndarray, counts: np.ndarray, owners: np.ndarray, n_texts: int) -> np.ndarray:
    """Window vectors -> one unit vector per text: token-count weighted mean of its windows."""
    pooled = np.zeros((n_texts, vectors.shape[1]), np.float32)
    np.add.at(pooled, owners, vectors * counts[:, None].astype(np.float32))
    return normalize_rows(pooled)


class WindowedEncoder:
    """Texts -> unit vectors through a tokenizer, a window spec and a model runner."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        specials: SpecialTokens,
        spec: WindowSpec,
        run: Runner,
        *,
        pad_id: int,
        batch_size: int = 32,
    ):
        self.tokenizer = tokenizer
        self.specials = specials
        self.spec = spec
        self.run = run
        self.pad_id = pad_id
        self.batch_size = batch_size

    @classmethod
    def build(
        cls, tokenizer: Tokenizer, options: WindowOptions, model_limit: int, run: Runner, *, pad_id: int
    ) -> WindowedEncoder:
        """Set the tokenizer to whole texts (no truncation, no padding) and fit the windows."""
        tokenizer.no_truncation()
        tokenizer.no_padding()
        specials = SpecialTokens.of(tokenizer)
        spec = options.spec(model_limit, len(specials))
        return cls(tokenizer, specials, spec, run, pad_id=pad_id, batch_size=options.batch_size)

    def windows(self, texts: Sequence[str]) -> tuple[list[list[int]], np.ndarray]:
        """Every window of every text (special tokens added), and the text each belongs to."""
        encodings = self.tokenizer.encode_batch(list(texts), add_special_tokens=False)
        windows: list[list[int]] = []
        owners: list[int] = []
        prefix, suffix = list(self.specials.prefix), list(self.specials.suffix)
        for index, encoding in enumerate(encodings):
            for window in split_windows(encoding.ids, self.spec):
                windows.append(prefix + window + suffix)
                owners.append(index)
        return windows, np.asarray(owners, dtype=np.int64)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        windows, owners = self.windows(texts)
        vectors = np.zeros((len(windows), 0), np.float32)
        counts = np.asarray([len(window) for window in windows], dtype=np.float32)
        order = np.argsort(counts, kind="stable")  # similar lengths share a batch: less padding
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            pooled = self._run_batch([windows[i] for i in chunk])
            if vectors.shape[1] == 0:
                vectors = np.zeros((len(windows), pooled.shape[1]), np.float32)
            vectors[chunk] = pooled
        return pool_windows(vectors, counts, owners, len(texts))

    def _run_batch(self, windows: list[list[int]]) -> np.ndarray:
        width = max(len(window) for window in windows)
        ids = np.full((len(windows), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(windows), width), dtype=np.int64)
        for row, window in enumerate(windows):
            ids[row, : len(window)] = window
            mask[row, : len(window)] = 1
        hidden = self.run(ids, mask)
        return masked_mean(hidden, mask) if hidden.ndim == 3 else np.asarray(hidden, np.float32)
