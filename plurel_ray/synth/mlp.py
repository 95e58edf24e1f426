"""Random MLPs and categorical embeddings (docs/prior.md#table-scm), built in batches.

An SCM needs hundreds of small MLPs (one per edge, node and collation). Drawing their
shapes, initialisers, activations, weights and density masks one MLP at a time costs
more than evaluating them, so `build_mlps` draws everything for a whole SCM with a
handful of generator calls and slices per-layer views out of flat buffers.

The activation scale `s` is folded into the next layer's weights, an exact rewrite:
`clamp(s·a, ±1e6) @ W == clamp(a, ±1e6/s) @ (s·W)`. MLPs are evaluated by the native
kernels (`plurel_ray._native`); `RandomMLP.__call__` is the NumPy reference of what
they compute, and the tests hold the kernels to it.

`sparse` follows the reference, which applies `torch.nn.init.sparse_` to each weight
matrix stored as `(in, out)`: N(0, 0.01) weights, then in every column (output unit)
ceil(in / 2) of the `in` entries are zero. So a `1 → 32` first layer is all zero (that
encoder ignores its input) while a `32 → 1` last layer keeps half its weights. Zeroing
half of each *row* instead made every sparse `32 → 1` decoder output exactly 0: over
seeds 7000–7039, 19 % of numeric columns were constant, 6 % are now.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special

from plurel_ray import _native
from plurel_ray.config import ACTIVATIONS, SCMParams
from plurel_ray.synth.activations import FIXED_ACTIVATIONS, Activation, make_activation
from plurel_ray.synth.sampling import sample_many, sample_set_indices

HIDDEN_CLAMP = 1e6
SINE_SLOTS = 7  # random_sine has 3..7 components
BLOCK_LAYERS = 512
ACTIVATION_IDS = {name: i for i, name in enumerate(ACTIVATIONS)}
_TRUNC_LO = special.ndtr(-2.0)
_TRUNC_HI = special.ndtr(2.0)


@dataclass
class RandomMLP:
    """`in → hid … → out`: bias-free linear maps with scaled activations between.

    Args:
        weights: per layer an `(in, out)` float32 matrix; the previous activation's
            scale is already folded in.
        activations: one per hidden layer (len(weights) - 1), NumPy functions.
        clamps: float32, per hidden layer, the bound that realises the ±1e6 clamp on
            the unscaled activation output (1e6 / scale).
        act_ids: per hidden layer, the activation's index in `config.ACTIVATIONS`
            (uint8), for the native kernels.
        act_params: `(hidden layers, 21)` float32: random_sine's amplitudes,
            frequencies and phases in 7 slots each (zero amplitude = unused slot).
    """

    weights: list[np.ndarray]
    activations: list[Activation]
    clamps: np.ndarray
    act_ids: np.ndarray
    act_params: np.ndarray

    def forward(self, h: np.ndarray) -> np.ndarray:
        """Apply to float32 `h` of shape (n, in) with the native kernel; (n, out) float32."""
        return _native.mlp_forward(h, self.weights, self.act_ids, self.act_params, self.clamps)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """NumPy reference of `forward`, for `x` of shape (n, in) or (n,) when in == 1."""
        h = x[:, None] * self.weights[0][0] if x.ndim == 1 else x @ self.weights[0]
        for act, clamp, weight in zip(self.activations, self.clamps, self.weights[1:], strict=True):
            h = np.clip(act(h), -clamp, clamp)
            h = h @ weight
        return h


# Initialisers draw through 16-bit inverse-CDF tables (a lookup per weight, in the
# native `init_layers`), where NumPy's float32 normals cost ~10 ns a weight and ndtri
# ~16 ns; weight init was the largest cost after MLP evaluation. Each table holds the
# quantiles at the 65536 bin midpoints, so its CDF is within 2^-17 of the exact one;
# the normal table reaches ±4.3σ.
_MIDPOINTS = (np.arange(65536) + 0.5) / 65536
_NORMAL_TABLE = special.ndtri(_MIDPOINTS).astype(np.float32)
_TRUNC_TABLE = special.ndtri(_TRUNC_LO + _MIDPOINTS * (_TRUNC_HI - _TRUNC_LO)).astype(np.float32)
_UNIFORM_TABLE = (2 * _MIDPOINTS - 1).astype(np.float32)
# All three tables back to back; a layer names its table by offset.
_TABLES = np.concatenate([_NORMAL_TABLE, _TRUNC_TABLE, _UNIFORM_TABLE])
_NORMAL, _TRUNC, _UNIFORM = 0, 65536, 2 * 65536

# initialiser → (table offset, scale as a function of (fan_in, fan_out)); the scales are
# torch.nn.init's defaults.
_INITS = {
    "kaiming_normal": (_NORMAL, lambda fi, fo: math.sqrt(2.0 / fi)),
    "kaiming_uniform": (_UNIFORM, lambda fi, fo: math.sqrt(6.0 / fi)),
    "xavier_normal": (_NORMAL, lambda fi, fo: math.sqrt(2.0 / (fi + fo))),
    "xavier_uniform": (_UNIFORM, lambda fi, fo: math.sqrt(6.0 / (fi + fo))),
    "trunc_normal": (_TRUNC, lambda fi, fo: 1.0),
    "sparse": (_NORMAL, lambda fi, fo: 0.01),
}


def _layer_block(
    shape: tuple[int, int],
    inits: np.ndarray,
    factor: np.ndarray,
    rho: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Weights `(len(inits), *shape)` of all layers sharing `shape`, drawn at once.

    The native kernel draws two 16-bit numbers per weight from a stream seeded by
    `rng`: a table index (the initialiser's inverse CDF) and a density-mask draw.

    Args:
        shape: (fan_in, fan_out) of every layer in the block.
        inits: initialiser name per layer.
        factor: per layer, a factor on all its weights (the previous activation's
            scale, and the edge weight on an encoder's last layer).
        rho: per layer, its MLP's weight density.
        rng: generator to draw from.
    """
    fan_in, fan_out = shape
    offset = np.empty(len(inits), dtype=np.uint32)
    scale = np.empty(len(inits))
    for name, (table_offset, scale_of) in _INITS.items():
        chosen = inits == name
        offset[chosen] = table_offset
        scale[chosen] = scale_of(fan_in, fan_out)
    weights = _native.init_layers(
        int(rng.integers(0, 2**63)),
        _TABLES,
        offset,
        (scale * factor / rho).astype(np.float32),
        np.round(rho * 65536.0).astype(np.uint32),
        inits == "sparse",
        fan_in,
        fan_out,
    )
    return weights.reshape(len(inits), fan_in, fan_out)


def build_mlps(
    dims: Sequence[tuple[int, int]],
    params: SCMParams,
    rng: np.random.Generator,
    out_scale: Sequence[float] | None = None,
) -> list[RandomMLP]:
    """One random MLP per `(in_dim, out_dim)` pair, hidden width `params.mlp_emb_dim`.

    Layers of equal shape across all MLPs are drawn as one block (see `_layer_block`),
    so the cost is a few generator calls per shape, not several per layer.

    Args:
        dims: input and output width of each MLP.
        params: layer-count, density, initialiser and activation choices.
        rng: the generator every random decision is drawn from.
        out_scale: per MLP, a factor on its output (an edge weight), folded into its
            last layer; 1 when omitted.
    """
    m = len(dims)
    if m == 0:
        return []
    hid = params.mlp_emb_dim
    num_layers = sample_many(params.mlp_num_layers_choices, rng, m).astype(np.int64)
    density = sample_many(params.mlp_weight_density_choices, rng, m).astype(np.float64)
    total_layers = int(num_layers.sum())
    inits = sample_many(params.initialization_choices, rng, total_layers).astype(str)
    act_picks = sample_set_indices(params.activation_choices, rng, total_layers)
    act_choices = list(params.activation_choices.value)
    scales = np.exp(rng.uniform(-1.0, 1.0, total_layers))

    first = np.concatenate([[0], np.cumsum(num_layers)[:-1]])
    mlp_of_layer = np.repeat(np.arange(m), num_layers)
    position = np.arange(total_layers) - first[mlp_of_layer]
    is_last = position == num_layers[mlp_of_layer] - 1
    in_dims = np.array([d[0] for d in dims])[mlp_of_layer]
    out_dims = np.array([d[1] for d in dims])[mlp_of_layer]
    fan_in = np.where(position == 0, in_dims, hid)
    fan_out = np.where(is_last, out_dims, hid)
    # The scale of activation j multiplies layer j + 1's weights (exact; see module doc).
    factor = np.where(position == 0, 1.0, np.roll(scales, 1))
    if out_scale is not None:
        factor = np.where(is_last, factor * np.asarray(out_scale, np.float64)[mlp_of_layer], factor)

    weights: list[np.ndarray] = [np.empty(0, np.float32)] * total_layers
    shapes = np.stack([fan_in, fan_out], axis=1)
    is_sparse = inits == "sparse"
    for shape in np.unique(shapes, axis=0):
        same_shape = (shapes == shape).all(axis=1)
        fi, fo = int(shape[0]), int(shape[1])
        for sparse in (False, True):
            group = np.flatnonzero(same_shape & (is_sparse == sparse))
            # Fixed-size chunks bound the temporaries (~4 bytes × 5 per weight) that a
            # 10,000-MLP table would otherwise hold at once: peak RSS, not speed.
            for start in range(0, len(group), BLOCK_LAYERS):
                idx = group[start : start + BLOCK_LAYERS]
                picked = (inits[idx], factor[idx], density[mlp_of_layer[idx]], rng)
                if sparse:
                    # The kernel zeroes half of each row; drawn as (out, in) and
                    # transposed, every output unit loses half of its inputs (module doc).
                    block = _layer_block((fo, fi), *picked).transpose(0, 2, 1)
                    block = np.ascontiguousarray(block)
                else:
                    block = _layer_block((fi, fo), *picked)
                for layer, layer_weights in zip(idx.tolist(), block, strict=True):
                    weights[layer] = layer_weights

    clamps = (HIDDEN_CLAMP / scales).astype(np.float32)
    act_ids = np.array([ACTIVATION_IDS[name] for name in act_choices], dtype=np.uint8)[act_picks]
    act_params = np.zeros((total_layers, 3 * SINE_SLOTS), dtype=np.float32)
    # One activation per layer (the last layer of each MLP has none, but drawing its
    # name keeps shapes simple). Only random_sine draws from rng: its terms are frozen
    # here, in layer order, and handed to the kernel through act_params.
    fixed = [FIXED_ACTIVATIONS.get(name) for name in act_choices]
    made = [fixed[pick] for pick in act_picks.tolist()]
    is_hidden = np.ones(total_layers, dtype=bool)
    is_hidden[first + num_layers - 1] = False
    is_sine = np.array([name == "random_sine" for name in act_choices], dtype=bool)[act_picks]
    for layer in np.flatnonzero(is_hidden & is_sine).tolist():
        fn = made[layer] = make_activation("random_sine", rng)
        count = len(fn.amplitudes)
        for slot, values in enumerate((fn.amplitudes, fn.freqs, fn.phases)):
            act_params[layer, slot * SINE_SLOTS : slot * SINE_SLOTS + count] = values
    mlps: list[RandomMLP] = []
    for lo, n_layers in zip(first.tolist(), num_layers.tolist(), strict=True):
        hi = lo + n_layers
        hidden = made[lo : hi - 1]
        mlps.append(
            RandomMLP(
                weights[lo:hi],
                hidden,
                clamps[lo : hi - 1],
                act_ids[lo : hi - 1],
                act_params[lo : hi - 1],
            )
        )
    return mlps


def build_embeddings(
    num_rows: Sequence[int], params: SCMParams, rng: np.random.Generator
) -> list[np.ndarray]:
    """One frozen `(k, mlp_emb_dim)` float32 embedding table per entry of `num_rows`.

    Each table is initialised by an initialiser picked from `params`, treating it like
    torch treats an embedding weight (fan_in = embedding width, fan_out = k).

    Args:
        num_rows: the category count `k` of each table.
        params: initialiser choices and embedding width.
        rng: generator to draw from.
    """
    dim = params.mlp_emb_dim
    inits = sample_many(params.initialization_choices, rng, len(num_rows)).astype(str)
    sizes = np.asarray(num_rows, dtype=np.int64)
    tables: list[np.ndarray] = [np.empty(0, np.float32)] * len(sizes)
    # Drawn as (dim, k) "layers", batched by k: fan_in = dim, fan_out = k, and sparse
    # zeroes entries along k, as torch does for a (k, dim) embedding weight; no mask.
    for k in np.unique(sizes):
        idx = np.flatnonzero(sizes == k)
        ones = np.ones(idx.size)
        block = _layer_block((dim, int(k)), inits[idx], ones, ones, rng)
        for j, i in enumerate(idx):
            tables[i] = np.ascontiguousarray(block[j].T)
    return tables
