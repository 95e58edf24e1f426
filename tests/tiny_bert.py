"""Write a tiny sentence-transformers BERT folder: what a real one holds, at toy size.

Two layers of width 32 with random weights (fixed seed), a WordPiece vocabulary of
letters, digits and a few words built with the `tokenizers` library, and the
sentence-transformers files that choose the pooling (mean) and normalisation. The tensor
names are those of Hugging Face's `BertModel`, written out here rather than taken from
the encoder under test, so that the loader is checked against the format.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

HIDDEN = 32
LAYERS = 2
HEADS = 4
FFN = 64
MAX_POSITIONS = 64
_SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_CHARS = string.ascii_lowercase + string.digits
_WORDS = ["table", "feature", "of", "column", "task", "true", "false"]
VOCAB = [*_SPECIAL, *_CHARS, *"_-", *(f"##{c}" for c in _CHARS + "_-"), *_WORDS]


def _tokenizer() -> Tokenizer:
    vocab = {token: i for i, token in enumerate(VOCAB)}
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    cls, sep = vocab["[CLS]"], vocab["[SEP]"]
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    return tokenizer


def _weights(seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)

    def normal(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator) * 0.2

    tensors = {
        "embeddings.word_embeddings.weight": normal(len(VOCAB), HIDDEN),
        "embeddings.position_embeddings.weight": normal(MAX_POSITIONS, HIDDEN),
        "embeddings.token_type_embeddings.weight": normal(2, HIDDEN),
        "pooler.dense.weight": normal(HIDDEN, HIDDEN),  # in real checkpoints, unused
        "pooler.dense.bias": normal(HIDDEN),
    }
    norms = ["embeddings.LayerNorm"]
    for i in range(LAYERS):
        layer = f"encoder.layer.{i}"
        for name, (rows, cols) in {
            "attention.self.query": (HIDDEN, HIDDEN),
            "attention.self.key": (HIDDEN, HIDDEN),
            "attention.self.value": (HIDDEN, HIDDEN),
            "attention.output.dense": (HIDDEN, HIDDEN),
            "intermediate.dense": (FFN, HIDDEN),
            "output.dense": (HIDDEN, FFN),
        }.items():
            tensors[f"{layer}.{name}.weight"] = normal(rows, cols)
            tensors[f"{layer}.{name}.bias"] = normal(rows)
        norms += [f"{layer}.attention.output.LayerNorm", f"{layer}.output.LayerNorm"]
    for norm in norms:
        tensors[f"{norm}.weight"] = 1 + normal(HIDDEN)
        tensors[f"{norm}.bias"] = normal(HIDDEN)
    return tensors


def write_tiny_bert(folder: Path, seed: int = 0) -> Path:
    """Write the tiny model into `folder` (created) and return it.

    Args:
        folder: where config.json, model.safetensors, tokenizer.json, vocab.txt,
            modules.json, sentence_bert_config.json and 1_Pooling/config.json go.
        seed: the seed of the random weights.
    """
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "architectures": ["BertModel"], "model_type": "bert", "hidden_act": "gelu",
        "hidden_size": HIDDEN, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
        "intermediate_size": FFN, "max_position_embeddings": MAX_POSITIONS,
        "vocab_size": len(VOCAB), "type_vocab_size": 2, "layer_norm_eps": 1e-12,
        "pad_token_id": 0, "position_embedding_type": "absolute",
    }  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    save_file(_weights(seed), str(folder / "model.safetensors"))
    _tokenizer().save(str(folder / "tokenizer.json"))
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    kinds = [("", "Transformer"), ("1_Pooling", "Pooling"), ("2_Normalize", "Normalize")]
    modules = [
        {"idx": i, "name": str(i), "path": path, "type": f"sentence_transformers.models.{kind}"}
        for i, (path, kind) in enumerate(kinds)
    ]
    (folder / "modules.json").write_text(json.dumps(modules, indent=2))
    (folder / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": 32, "do_lower_case": False})
    )
    (folder / "1_Pooling").mkdir(exist_ok=True)
    pooling = {"word_embedding_dimension": HIDDEN, "pooling_mode_cls_token": False,
               "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False,
               "pooling_mode_mean_sqrt_len_tokens": False}  # fmt: skip
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling, indent=2))
    return folder
