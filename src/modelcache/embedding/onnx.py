"""A local ONNX transformer plus its tokenizer.json, run by onnxruntime (no torch needed).

`path` is the .onnx file, or a directory holding `model.onnx` (as optimum exports it).
`tokenizer` is the tokenizer.json (default: the one beside the model). The graph takes
`input_ids` and `attention_mask` (and `token_type_ids`, fed zeros, if it declares it); its
`output` (default: the first) is either hidden states (batch, tokens, dim), mean-pooled over
the attention mask, or already pooled vectors (batch, dim). Long texts are windowed exactly
as the huggingface embedder does (`windows.py`): `max_tokens` (default: the tokenizer's
truncation length, else 512), `window`, `stride`, `batch_size`. `embed_threads` is the
session's intra-op thread count.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelcache.embedding.base import LazyEmbedder
from modelcache.embedding.options import Options, require_file
from modelcache.embedding.tokenizer import load_tokenizer, token_id
from modelcache.embedding.windows import Runner, WindowedEncoder, WindowOptions
from modelcache.errors import ConfigurationError, MissingDependency

__all__ = ["OnnxEmbedder"]

_DEFAULT_MAX_TOKENS = 512
_PAD_TOKENS = ("[PAD]", "<pad>", "<|pad|>")


class OnnxEmbedder(LazyEmbedder[WindowedEncoder]):
    name = "onnx"

    def __init__(
        self,
        path: Path,
        *,
        tokenizer: Path | None = None,
        output: str | None = None,
        threads: int = 1,
        windowing: WindowOptions | None = None,
    ):
        self.path = path
        self.tokenizer_path = tokenizer
        self.output = output
        self.threads = threads
        self.windowing = windowing or WindowOptions(self.name)
        self.dim = 0

    @classmethod
    def from_options(cls, threads: int, **values: Any) -> OnnxEmbedder:
        options = Options(cls.name, values)
        embedder = cls(
            options.path("path"),
            tokenizer=options.optional_path("tokenizer"),
            output=options.text("output", None),
            threads=threads,
            windowing=WindowOptions.read(options),
        )
        options.finish()
        return embedder

    def model_file(self) -> Path:
        return self.path / "model.onnx" if self.path.is_dir() else self.path

    def _embed(self, encoder: WindowedEncoder, texts: Sequence[str]) -> np.ndarray:
        return encoder.embed(texts)

    def _load_model(self) -> WindowedEncoder:
        model_file = require_file(self.model_file(), "onnx model file")
        tokenizer_file = require_file(
            self.tokenizer_path or model_file.parent / "tokenizer.json", "tokenizer file"
        )
        run = _session_runner(model_file, self.output, self.threads)
        tokenizer = load_tokenizer(tokenizer_file, "onnx")
        truncation = tokenizer.truncation or {}
        limit = self.windowing.max_tokens or int(truncation.get("max_length", _DEFAULT_MAX_TOKENS))
        encoder = WindowedEncoder.build(
            tokenizer, self.windowing, limit, run, pad_id=token_id(tokenizer, _PAD_TOKENS, 0)
        )
        self.dim = int(encoder.embed(["warm up"]).shape[1])  # also the first, slowest run
        return encoder


def _open_session(onnxruntime: Any, model_file: Path, session_options: Any) -> Any:
    from onnxruntime.capi import onnxruntime_pybind11_state as errors

    unreadable = (errors.InvalidProtobuf, errors.InvalidGraph, errors.NoSuchFile, errors.Fail)
    try:
        return onnxruntime.InferenceSession(
            str(model_file), session_options, providers=["CPUExecutionProvider"]
        )
    except unreadable as exc:
        raise ConfigurationError(f"onnx embedder: cannot load {model_file}: {exc}") from exc


def _session_runner(model_file: Path, output: str | None, threads: int) -> Runner:
    try:
        import onnxruntime
    except ImportError as exc:
        raise MissingDependency("onnxruntime", "onnx") from exc
    session_options = onnxruntime.SessionOptions()
    session_options.intra_op_num_threads = threads
    session_options.inter_op_num_threads = 1
    session = _open_session(onnxruntime, model_file, session_options)
    inputs = {node.name for node in session.get_inputs()}
    missing = {"input_ids", "attention_mask"} - inputs
    if missing:
        raise ConfigurationError(f"onnx embedder: {model_file} has no input(s) {sorted(missing)}")
    outputs = [node.name for node in session.get_outputs()]
    if output is not None and output not in outputs:
        raise ConfigurationError(f"onnx embedder: {model_file} has no output {output!r}; it has {outputs}")
    chosen = output or outputs[0]

    def run(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        return np.asarray(session.run([chosen], feed)[0])

    return run
