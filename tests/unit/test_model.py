"""The Relational Transformer: masks, isolation of padding and masked values, the two
attention paths, the loss, checkpoints and the reference's parameter layout."""

from __future__ import annotations

import dataclasses
import json
import math
import warnings

import numpy as np
import pytest
import torch
from torch.nn.attention.flex_attention import create_mask

from plurel_ray.errors import BatchError, CheckpointError, ConfigError
from plurel_ray.model import (
    ModelConfig,
    RelationalTransformer,
    batch_to_tensors,
    dense_masks,
    flex_masks,
    init_model,
    load_checkpoint,
    masked_loss,
    model_preset,
    save_checkpoint,
)
from plurel_ray.train.synthetic import (
    SyntheticSchema,
    random_batch,
    random_text_emb,
    with_full_form,
)

pytestmark = pytest.mark.usefixtures("single_torch_thread")

SMALL = ModelConfig(num_blocks=2, d_model=32, num_heads=4, d_ff=64, d_text=16)
VOCAB = 128


def make_batch(seed: int = 0, batch_size: int = 3, ctx_len: int = 48, **kwargs) -> dict:
    """A valid random compact batch (numpy) and its text embeddings."""
    rng = np.random.default_rng(seed)
    schema = SyntheticSchema.random(rng, vocab_size=VOCAB)
    batch = random_batch(rng, schema, batch_size, ctx_len, pad_frac=0.3, mask_prob=0.2, **kwargs)
    return batch, random_text_emb(rng, VOCAB, SMALL.d_text)


def run(model, numpy_batch, text_emb=None):
    with torch.no_grad():
        emb = None if text_emb is None else torch.from_numpy(text_emb)
        return model(batch_to_tensors(numpy_batch), emb)


def hand_made_batch() -> dict:
    """Row A (node 10, table 0, 2 cells); rows B (20) and C (30) of table 1 whose foreign
    key points to A; two padding cells. Cells: A0 A1 B0 B1 C0 C1 pad pad."""
    f2p = np.full((1, 8, 2), -1, np.int32)
    f2p[0, 2:6, 0] = 10
    is_padding = np.array([[False] * 6 + [True] * 2])
    return {
        "node_idxs": np.array([[10, 10, 20, 20, 30, 30, -1, -1]], np.int32),
        "f2p_nbr_idxs": f2p,
        "table_name_idxs": np.array([[0, 0, 1, 1, 1, 1, 0, 0]], np.int32),
        "col_name_idxs": np.array([[2, 3, 4, 5, 4, 5, 2, 2]], np.int32),
        "class_value_idxs": np.full((1, 8), -1, np.int32),
        "sem_types": np.zeros((1, 8), np.int32),
        "number_values": np.arange(8, dtype=np.float32)[None],
        "datetime_values": np.zeros((1, 8), np.float32),
        "boolean_values": np.zeros((1, 8), np.float32),
        "masks": np.array([[True] + [False] * 7]),
        "is_targets": np.array([[True] + [False] * 7]),
        "is_task_nodes": np.array([[True, True] + [False] * 6]),
        "is_padding": is_padding,
        "timestamps": np.zeros((1, 8), np.int64),
        "true_batch_size": 1,
    }


def as_matrix(allowed_keys: dict[int, set[int]], length: int = 8) -> torch.Tensor:
    matrix = torch.zeros(length, length, dtype=torch.bool)
    for query, keys in allowed_keys.items():
        matrix[query, sorted(keys)] = True
    return matrix


def test_masks_follow_the_spec_predicates_on_a_hand_made_batch():
    masks = dense_masks(batch_to_tensors(hand_made_batch()))
    a, b, c = {0, 1}, {2, 3}, {4, 5}
    expected = {
        # same column of the same table: B and C share table 1's two columns
        "col": {0: {0}, 1: {1}, 2: {2, 4}, 3: {3, 5}, 4: {2, 4}, 5: {3, 5}},
        # own row, and the row its foreign key points to (A)
        "feat": {0: a, 1: a, 2: a | b, 3: a | b, 4: a | c, 5: a | c},
        # rows pointing to this row: B and C point to A, nobody to B or C
        "nbr": {0: b | c, 1: b | c},
    }
    for kind, keys in expected.items():
        assert torch.equal(masks[kind][0], as_matrix(keys)), kind


def test_flex_block_masks_hold_the_dense_masks():
    batch = batch_to_tensors(make_batch(seed=1, ctx_len=160)[0])
    dense = dense_masks(batch)
    flex = flex_masks(batch, compile_masks=False)
    batch_size, length = batch["node_idxs"].shape
    for kind, mask in dense.items():
        # The mask_mod FlexAttention evaluates, cell by cell, gives the dense mask …
        cells = create_mask(flex[kind].mask_mod, batch_size, None, length, length, device="cpu")
        assert torch.equal(cells[:, 0], mask), kind
        # … and the 128 × 128 blocks it skips hold no allowed pair.
        blocks = flex[kind].to_dense()[:, 0].bool()
        kept = blocks.repeat_interleave(128, 1).repeat_interleave(128, 2)[:, :length, :length]
        assert not (mask & ~kept).any(), kind


def test_dense_and_flex_attention_give_the_same_outputs():
    batch, text_emb = make_batch(seed=2)
    dense = init_model(dataclasses.replace(SMALL, attention="dense"), seed=0)
    flex = RelationalTransformer(dataclasses.replace(SMALL, attention="flex"))
    flex.load_state_dict(dense.state_dict())
    out_dense, out_flex = run(dense, batch, text_emb), run(flex, batch, text_emb)
    for name in out_dense:
        torch.testing.assert_close(out_flex[name], out_dense[name], rtol=1e-5, atol=1e-5)


def test_padding_cells_never_change_the_outputs_of_real_cells():
    batch, text_emb = make_batch(seed=3)
    model = init_model(SMALL, seed=0)
    before = run(model, batch, text_emb)
    pad = batch["is_padding"]
    rng = np.random.default_rng(9)
    perturbed = dict(batch)
    for name in ("node_idxs", "col_name_idxs", "table_name_idxs", "class_value_idxs"):
        perturbed[name] = np.where(pad, rng.integers(0, 20, pad.shape), batch[name]).astype(
            np.int32
        )
    perturbed["f2p_nbr_idxs"] = np.where(
        pad[..., None], rng.integers(0, 20, batch["f2p_nbr_idxs"].shape), batch["f2p_nbr_idxs"]
    ).astype(np.int32)
    perturbed["sem_types"] = np.where(
        pad, rng.integers(0, 4, pad.shape), batch["sem_types"]
    ).astype(np.int32)
    for name in ("number_values", "datetime_values", "boolean_values"):
        perturbed[name] = np.where(pad, 1e6, batch[name]).astype(np.float32)
    perturbed["masks"] = batch["masks"] | pad
    after = run(model, perturbed, text_emb)
    real = torch.from_numpy(~pad)
    for name in before:
        assert torch.equal(before[name][real], after[name][real]), name


def test_real_cells_do_not_attend_to_padding():
    # Padding carries a zero state whatever its fields hold, so perturbing it cannot show
    # that it is attended; dropping it can: a sequence cut to its real cells must give the
    # same outputs.
    batch, text_emb = make_batch(seed=8)
    model = init_model(SMALL, seed=0)
    padded = run(model, batch, text_emb)
    for s in range(batch["node_idxs"].shape[0]):
        used = int((~batch["is_padding"][s]).sum())
        alone = {k: v[s : s + 1, :used] for k, v in batch.items() if k != "true_batch_size"}
        cut = run(model, alone, text_emb)
        for name in cut:
            torch.testing.assert_close(cut[name][0], padded[name][s, :used], rtol=1e-5, atol=1e-5)


def test_masked_values_never_reach_any_output():
    batch, text_emb = make_batch(seed=4)
    batch["masks"] = batch["masks"] | (batch["sem_types"] == 1) & ~batch["is_padding"]
    model = init_model(SMALL, seed=0)
    before = run(model, batch, text_emb)
    hidden = batch["masks"]
    changed = dict(batch)
    for name in ("number_values", "datetime_values", "boolean_values"):
        changed[name] = np.where(hidden, -batch[name] + 7.0, batch[name]).astype(np.float32)
    changed["class_value_idxs"] = np.where(
        hidden & (batch["sem_types"] == 1), 5, batch["class_value_idxs"]
    ).astype(np.int32)
    after = run(model, changed, text_emb)
    for name in before:
        assert torch.equal(before[name], after[name]), name


def test_compact_and_full_form_batches_give_the_same_outputs():
    batch, text_emb = make_batch(seed=5)
    model = init_model(SMALL, seed=0)
    # The full form carries bfloat16 embeddings: compare with the matrix rounded alike.
    rounded = torch.from_numpy(text_emb).bfloat16().float().numpy()
    compact = run(model, batch, rounded)
    full = run(model, with_full_form(batch, text_emb))
    for name in compact:
        assert torch.equal(compact[name], full[name]), name


def test_loss_matches_a_hand_computation():
    # Sequence 0: a number (pred 2, target 0.5: Huber 1.5 − 0.5 = 1) and a boolean
    # (logit 0, target true: BCE ln 2). Sequence 1: a datetime (pred 0.2, target 0:
    # Huber 0.5·0.04) and a masked text cell, which has no decoder. Sequence 2: nothing.
    sem_types = torch.tensor([[0, 3, 0], [2, 1, 0], [0, 0, 0]])
    masks = torch.tensor([[True, True, False], [True, True, False], [False, False, False]])
    batch = {
        "sem_types": sem_types,
        "masks": masks,
        "number_values": torch.tensor([[0.5, 0.0, 9.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]),
        "datetime_values": torch.zeros(3, 3),
        "boolean_values": torch.tensor([[0.0, 1.0, 0.0], [0.0] * 3, [0.0] * 3]),
    }
    predictions = {
        "number": torch.tensor([[2.0, 5.0, 5.0], [5.0] * 3, [5.0] * 3]),
        "datetime": torch.tensor([[5.0] * 3, [0.2, 5.0, 5.0], [5.0] * 3]),
        "boolean": torch.tensor([[5.0, 0.0, 5.0], [5.0] * 3, [5.0] * 3]),
    }
    expected = ((1.0 + math.log(2.0)) / 2 + 0.5 * 0.2**2) / 2
    assert masked_loss(predictions, batch).item() == pytest.approx(expected, rel=1e-6)


def test_filler_rows_past_true_batch_size_count_nowhere():
    batch, _ = make_batch(seed=6)
    batch["true_batch_size"] = 1
    tensors = batch_to_tensors(batch)
    assert not tensors["masks"][1:].any() and not tensors["is_targets"][1:].any()
    assert batch["masks"][1:].any(), "the sampler's arrays are not modified"


def test_read_only_arrays_from_the_object_store_wrap_without_a_warning():
    batch, _ = make_batch(seed=7)
    batch["true_batch_size"] = 1
    for value in batch.values():
        if isinstance(value, np.ndarray):
            value.flags.writeable = False  # what arrays look like after ray.get
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tensors = batch_to_tensors(batch)
    assert not tensors["masks"][1:].any()
    assert np.shares_memory(tensors["node_idxs"].numpy(), batch["node_idxs"])


def test_batch_problems_raise_batch_errors_naming_the_field():
    batch, _ = make_batch()
    with pytest.raises(BatchError, match="sem_types"):
        batch_to_tensors({k: v for k, v in batch.items() if k != "sem_types"})
    model = init_model(SMALL, seed=0)
    with pytest.raises(BatchError, match="text_emb"):
        run(model, batch)
    from plurel_ray.model import check_batch

    with pytest.raises(BatchError, match="col_name_idxs"):
        check_batch(batch_to_tensors(batch), vocab_size=3)


def test_model_config_rejects_heads_that_do_not_divide_the_width():
    with pytest.raises(ConfigError, match="num_heads"):
        ModelConfig(d_model=30, num_heads=4)
    with pytest.raises(ConfigError, match="preset"):
        model_preset("huge")


def reference_state_dict(cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """The reference checkpoint's layout, written out from docs/model.md's names."""
    d, t, f, h = cfg.d_model, cfg.d_text, cfg.d_ff, cfg.head_dim
    shapes: dict[str, tuple[int, ...]] = {}
    for name, width in {"number": 1, "text": t, "datetime": 1, "col_name": t, "boolean": 1}.items():
        shapes[f"enc_dict.{name}.weight"] = (d, width)
        shapes[f"enc_dict.{name}.bias"] = (d,)
        shapes[f"norm_dict.{name}.weight"] = (d,)
    for name, width in {"number": 1, "text": t, "datetime": 1, "boolean": 1}.items():
        shapes[f"dec_dict.{name}.weight"] = (width, d)
        shapes[f"dec_dict.{name}.bias"] = (width,)
        shapes[f"mask_embs.{name}"] = (d,)
    for i in range(cfg.num_blocks):
        for kind in ("col", "feat", "nbr", "ffn"):
            shapes[f"blocks.{i}.norms.{kind}.weight"] = (d,)
        for kind in ("col", "feat", "nbr"):
            for w in ("wq", "wk", "wv", "wo"):
                shapes[f"blocks.{i}.attns.{kind}.{w}.weight"] = (d, d)
            shapes[f"blocks.{i}.attns.{kind}.q_norm.weight"] = (h,)
            shapes[f"blocks.{i}.attns.{kind}.k_norm.weight"] = (h,)
        shapes[f"blocks.{i}.ffn.w1.weight"] = (f, d)
        shapes[f"blocks.{i}.ffn.w2.weight"] = (d, f)
        shapes[f"blocks.{i}.ffn.w3.weight"] = (f, d)
    shapes["norm_out.weight"] = (d,)
    generator = torch.Generator().manual_seed(0)
    return {
        name: torch.randn(shape, generator=generator).bfloat16() for name, shape in shapes.items()
    }


def test_reference_state_dict_at_paper_sizes_loads_strictly(tmp_path):
    paper = model_preset("plurel-paper")
    state = reference_state_dict(paper)
    path = tmp_path / "synthetic-pretrain_rdb_1024_size_4b.pt"
    torch.save(state, path)
    loaded = load_checkpoint(path)
    assert loaded.model_config == paper
    got = loaded.model.state_dict()
    for name in ("blocks.11.attns.nbr.k_norm.weight", "enc_dict.text.weight", "norm_out.weight"):
        assert torch.equal(got[name], state[name].float())

    torch.save({"model": state}, path)  # the reference's training format wraps it
    assert load_checkpoint(path, model_config=paper).model_config == paper


def test_missing_or_unexpected_keys_are_named(tmp_path):
    state = reference_state_dict(SMALL)
    missing = dict(state)
    del missing["blocks.1.attns.nbr.k_norm.weight"]
    torch.save(missing, tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match=r"blocks\.1\.attns\.nbr\.k_norm\.weight"):
        load_checkpoint(tmp_path / "missing.pt", model_config=SMALL)
    extra = {**state, "blocks.0.attns.full.wq.weight": torch.zeros(32, 32)}
    torch.save(extra, tmp_path / "extra.pt")
    with pytest.raises(CheckpointError, match=r"unexpected keys \['blocks\.0\.attns\.full"):
        load_checkpoint(tmp_path / "extra.pt", model_config=SMALL)


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path):
    batch, text_emb = make_batch(seed=7)
    model = init_model(SMALL, seed=3)
    folder = save_checkpoint(tmp_path / "ckpt", model, SMALL, {"train": {"steps": 5}})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"], "no temporary folders left"
    config = json.loads((folder / "config.json").read_text())
    assert config["model"]["d_model"] == SMALL.d_model and config["train"] == {"steps": 5}
    loaded = load_checkpoint(folder)
    assert loaded.model_config == SMALL and loaded.extra_config == {"train": {"steps": 5}}
    before, after = run(model, batch, text_emb), run(loaded.model, batch, text_emb)
    for name in before:
        assert torch.equal(before[name], after[name]), name
    with pytest.raises(CheckpointError, match=r"model\.safetensors"):
        (folder / "model.safetensors").unlink()
        load_checkpoint(folder)


def test_text_decoder_is_kept_for_loading_but_frozen():
    model = RelationalTransformer(SMALL)
    assert not any(p.requires_grad for p in model.dec_dict["text"].parameters())
    assert all(
        p.requires_grad for n, p in model.named_parameters() if not n.startswith("dec_dict.text")
    )
