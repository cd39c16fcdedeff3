"""Tiny real model files, built offline: the embedders load them through their real code.

Hubs are out of reach, so each framework's own tools make a small model and save it in the
layout a download would have (transformers' save_pretrained, a ModelScope-style directory,
torch.onnx.export, fastText training, a tokenizers tokenizer.json, timm's save_for_hf).
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np

SENTENCES = [
    "how do i reset my password",
    "how can i change my password",
    "what is the weather like today",
    "will it rain in paris tomorrow",
    "the cat sat on the mat",
    "the dog slept on the log",
    "recommend a good chocolate cake recipe",
    "how long should i bake bread",
]
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
LETTERS = "abcdefghijklmnopqrstuvwxyz"
#: Tiny BERT: 64 positions, so a window holds 62 content tokens and long texts stay cheap.
MAX_POSITIONS = 64


def bert_vocab() -> list[str]:
    words = sorted({word for sentence in SENTENCES for word in sentence.split()})
    return SPECIAL_TOKENS + words + list(LETTERS) + [f"##{letter}" for letter in LETTERS]


def tiny_bert_config(**extra: Any) -> Any:
    """The tiny BERT shape every test model here shares (`extra`: e.g. num_labels)."""
    from transformers import BertConfig

    return BertConfig(
        vocab_size=len(bert_vocab()),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=MAX_POSITIONS,
        **extra,
    )


def tiny_bert(seed: int = 0) -> Any:
    import torch
    from transformers import BertModel

    torch.manual_seed(seed)
    return BertModel(tiny_bert_config()).eval()


def _write_vocab(directory: Path) -> None:
    (directory / "vocab.txt").write_text("\n".join(bert_vocab()) + "\n", encoding="utf-8")
    tokenizer_config = {"tokenizer_class": "BertTokenizer", "do_lower_case": True}
    (directory / "tokenizer_config.json").write_text(json.dumps(tokenizer_config), encoding="utf-8")


def build_huggingface_dir(directory: Path) -> Path:
    """What save_pretrained (or a hub download) leaves: config, safetensors, tokenizer.json."""
    from transformers import AutoTokenizer

    directory.mkdir(parents=True)
    tiny_bert().save_pretrained(directory)
    _write_vocab(directory)
    AutoTokenizer.from_pretrained(directory).save_pretrained(directory)
    return directory


def build_modelscope_dir(root: Path) -> Path:
    """A ModelScope download: nested org/name, configuration.json, pytorch_model.bin, vocab.txt only."""
    import torch

    directory = root / "hub" / "models" / "damo" / "nlp_tiny_sentence-embedding_chinese"
    directory.mkdir(parents=True)
    model = tiny_bert()
    model.config.save_pretrained(directory)
    torch.save(model.state_dict(), directory / "pytorch_model.bin")
    _write_vocab(directory)
    special = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]"}
    (directory / "special_tokens_map.json").write_text(json.dumps(special), encoding="utf-8")
    configuration = {"framework": "pytorch", "task": "sentence-embedding", "model": {"type": "bert"}}
    (directory / "configuration.json").write_text(json.dumps(configuration), encoding="utf-8")
    (directory / "README.md").write_text("# tiny test model\n", encoding="utf-8")
    return directory


def build_onnx_dir(directory: Path, huggingface_dir: Path) -> Path:
    """The huggingface test model exported by torch.onnx, beside its tokenizer.json."""
    import torch
    from tokenizers import Tokenizer

    class LastHiddenState(torch.nn.Module):
        def __init__(self, model: Any):
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    directory.mkdir(parents=True)
    ids = torch.ones((2, 7), dtype=torch.long)
    dynamic = {0: "batch", 1: "tokens"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            LastHiddenState(tiny_bert()).eval(),
            (ids, torch.ones_like(ids)),
            str(directory / "model.onnx"),
            input_names=["input_ids", "attention_mask"],
            output_names=["last_hidden_state"],
            dynamic_axes={"input_ids": dynamic, "attention_mask": dynamic, "last_hidden_state": dynamic},
            opset_version=17,
            dynamo=False,
        )
    tokenizer = Tokenizer.from_file(str(huggingface_dir / "tokenizer.json"))
    tokenizer.enable_truncation(MAX_POSITIONS)  # the model's limit, read as the default max_tokens
    tokenizer.save(str(directory / "tokenizer.json"))
    return directory


def build_fasttext_model(directory: Path) -> Path:
    import fasttext

    directory.mkdir(parents=True)
    corpus = directory / "corpus.txt"
    corpus.write_text("\n".join(SENTENCES * 20) + "\n", encoding="utf-8")
    model = fasttext.train_unsupervised(
        str(corpus), model="skipgram", dim=16, epoch=3, minCount=1, thread=1, verbose=0
    )
    path = directory / "tiny.bin"
    model.save_model(str(path))
    return path


def build_llm_files(directory: Path, dim: int = 24) -> dict[str, Path]:
    """tokenizer.json (a BPE trained on the test sentences) and its matrix in every format."""
    import torch
    from safetensors.numpy import save_file
    from safetensors.torch import save_file as save_torch_file
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    directory.mkdir(parents=True)
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(vocab_size=200, special_tokens=["<unk>", "<s>"])
    tokenizer.train_from_iterator(SENTENCES, trainer)
    tokenizer.save(str(directory / "tokenizer.json"))
    rows = tokenizer.get_vocab_size() + 8  # LLM matrices are often padded past the vocabulary
    matrix = np.random.default_rng(0).standard_normal((rows, dim)).astype(np.float32)
    np.save(directory / "embeddings.npy", matrix)
    other = np.zeros((3, 3), np.float32)
    save_file({"model.embed_tokens.weight": matrix, "lm_head.weight": other}, directory / "model.safetensors")
    bf16 = {"model.embed_tokens.weight": torch.from_numpy(matrix).to(torch.bfloat16)}
    save_torch_file(bf16, str(directory / "bf16.safetensors"))
    shard = directory / "model-00002-of-00002.safetensors"
    shutil.copy(directory / "model.safetensors", shard)
    index = {"weight_map": {"model.embed_tokens.weight": shard.name, "lm_head.weight": shard.name}}
    (directory / "model.safetensors.index.json").write_text(json.dumps(index), encoding="utf-8")
    return {
        "npy": directory / "embeddings.npy",
        "safetensors": directory / "model.safetensors",
        "bf16": directory / "bf16.safetensors",
        "index": directory / "model.safetensors.index.json",
        "tokenizer": directory / "tokenizer.json",
    }


def build_timm_dir(directory: Path, architecture: str = "resnet10t") -> Path:
    """timm's own format (config.json + model.safetensors), as a hub download has it."""
    import timm
    import torch
    from timm.models import save_for_hf

    torch.manual_seed(0)
    model = timm.create_model(architecture, pretrained=False, num_classes=10)
    save_for_hf(model, str(directory), safe_serialization=True)
    return directory


def png_bytes(color: tuple[int, int, int], size: int = 48, stripe: bool = False) -> bytes:
    import io

    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size), color)
    if stripe:
        ImageDraw.Draw(image).rectangle((0, size // 3, size, size // 2), fill=(255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def build_cross_encoder_dir(directory: Path, *, num_labels: int = 1, bias: float | None = None) -> Path:
    """A tiny BERT pair classifier saved like a downloaded reranker.

    `bias`: zero the classifier's weights and set its bias, so every pair gets that logit
    (a reranker whose verdict a test knows); None keeps the random, pair-dependent weights.
    """
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    torch.manual_seed(0)
    model = BertForSequenceClassification(tiny_bert_config(num_labels=num_labels)).eval()
    if bias is not None:
        with torch.no_grad():
            model.classifier.weight.zero_()
            model.classifier.bias.fill_(bias)
    directory.mkdir(parents=True)
    model.save_pretrained(directory)
    _write_vocab(directory)
    AutoTokenizer.from_pretrained(directory).save_pretrained(directory)
    return directory
