"""Training throughput of the Relational Transformer: tokens/s, step time, MFU, data wait.

    python benchmarks/bench_train.py                     # plurel-paper at 128 × 1024 (GPU)
    python benchmarks/bench_train.py --json              # one JSON object
    python benchmarks/bench_train.py --recipe tiny --steps 3 --batch-size 2 --ctx-len 128

It runs `train_loop` itself (prefetcher, masks, forward, backward, AdamW, metrics), so the
figures are what training gets. The first `--warmup-steps` steps (torch.compile, kernel
autotuning, allocator growth) are not counted. Batches come from a swappable source
(`--source`); "synthetic" cycles over a few random batches of the sampler's shapes, so
their generation costs nothing here.

- tokens_per_s: non-padding cells trained on per second;
- step_time_s: median wall time of a step;
- mfu: model FLOPs per second over the GPU's dense bf16 peak. Model FLOPs count the
  matrix products: encoders, the q/k/v/o projections, attention scores and values over
  all ctx_len keys of each of the 3 attentions (as a dense kernel would; FlexAttention
  skips fully masked blocks), the SwiGLU FFN and the decoders; ×3 for forward and
  backward; per non-padding cell. The peak comes from the GPU's name or --peak-flops;
- data_wait_frac: share of the time the loop waited for its next batch.

Targets on one H100: ≥ 1,000,000 tokens/s, data wait < 5 % of the step time.
Self-contained: imports torch, numpy and this repository (no Ray, no install needed).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a bare checkout

from plurel_ray.model import ModelConfig, init_model
from plurel_ray.train import RECIPES, recipe, train_loop
from plurel_ray.train.synthetic import random_text_emb, synthetic_batches

TARGET_TOKENS_PER_S = 1_000_000
TARGET_DATA_WAIT = 0.05
# Dense bf16 peak FLOP/s (no sparsity) by a substring of torch.cuda.get_device_name().
PEAK_BF16_FLOPS = {
    "H100 PCIe": 756e12,
    "H100": 989e12,  # SXM (name ends "HBM3")
    "H200": 989e12,
    "A100": 312e12,
}


def synthetic_source(args: argparse.Namespace, d_text: int) -> tuple[Iterator[dict], np.ndarray]:
    """Random batches of the sampler's shapes, and matching vocabulary embeddings."""
    batches, schema = synthetic_batches(args.seed, args.batch_size, args.ctx_len)
    text_emb = random_text_emb(np.random.default_rng(args.seed), schema.vocab_size, d_text)
    return batches, text_emb


SOURCES: dict[str, Callable[[argparse.Namespace, int], tuple[Iterator[dict], np.ndarray]]] = {
    "synthetic": synthetic_source,
}


def flops_per_token(model: ModelConfig, ctx_len: int) -> float:
    """Forward matrix-product FLOPs of one cell (2 per multiply-add)."""
    d, d_ff, d_text = model.d_model, model.d_ff, model.d_text
    encoders = 2 * (2 * d_text * d)  # column name and text value
    attention = 3 * (4 * 2 * d * d + 2 * 2 * ctx_len * d)  # projections, scores, values
    ffn = 3 * 2 * d * d_ff
    decoders = 3 * 2 * d
    return encoders + model.num_blocks * (attention + ffn) + decoders


def peak_flops(device: torch.device, override: float | None) -> float | None:
    if override is not None:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16_FLOPS.items() if key in name), None)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def measure(args: argparse.Namespace) -> dict:
    """Train for args.steps steps and summarise the steps after the warm-up."""
    overrides = {"steps": args.steps, "checkpoint_every": 0, "device": args.device}
    for name in ("batch_size", "ctx_len", "precision", "compile", "attention"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    run = recipe(args.recipe, **overrides)
    batches, text_emb = SOURCES[args.source](
        argparse.Namespace(
            **{**vars(args), "batch_size": run.train.batch_size, "ctx_len": run.train.ctx_len}
        ),
        run.model.d_text,
    )
    model = init_model(run.model, run.train.seed)
    with tempfile.TemporaryDirectory() as run_dir:
        result = train_loop(model, batches, text_emb, run.train, run_dir)
        lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    steps = [json.loads(line) for line in lines]
    warmup = min(args.warmup_steps, len(steps) - 1)
    timed = steps[warmup:]
    seconds = sum(s["step_time_s"] for s in timed)
    tokens_per_s = sum(s["tokens"] for s in timed) / seconds
    device = next(model.parameters()).device
    peak = peak_flops(device, args.peak_flops)
    per_token = flops_per_token(run.model, run.train.ctx_len)
    return {
        "recipe": args.recipe,
        "device": device_name(device),
        "batch_size": run.train.batch_size,
        "ctx_len": run.train.ctx_len,
        "steps_timed": len(timed),
        "tokens_per_s": tokens_per_s,
        "step_time_s": statistics.median(s["step_time_s"] for s in timed),
        "data_wait_frac": sum(s["data_wait_frac"] * s["step_time_s"] for s in timed) / seconds,
        "train_flops_per_token": 3 * per_token,
        "peak_flops": peak,
        "mfu": 3 * per_token * tokens_per_s / peak if peak else None,
        "final_loss": result.metrics["loss"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default="plurel-paper", choices=sorted(RECIPES))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument(
        "--warmup-steps",
        type=int,
        default=5,
        help="steps left out of the figures (at most steps − 1)",
    )
    parser.add_argument("--batch-size", type=int, help="default: the recipe's")
    parser.add_argument("--ctx-len", type=int, help="default: the recipe's")
    parser.add_argument("--source", default="synthetic", choices=sorted(SOURCES))
    parser.add_argument("--precision", help="default: the recipe's (auto)")
    parser.add_argument("--attention", choices=["auto", "dense", "flex"])
    parser.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="default: the recipe's",
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--peak-flops", type=float, help="dense bf16 FLOP/s of the device")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    figures = measure(args)
    if args.json:
        print(json.dumps(figures))
        return
    for key, value in figures.items():
        print(f"{key:>22}: {value:.4g}" if isinstance(value, float) else f"{key:>22}: {value}")
    print(
        f"target: ≥ {TARGET_TOKENS_PER_S:,} tokens/s on one H100 "
        f"({'met' if figures['tokens_per_s'] >= TARGET_TOKENS_PER_S else 'not met'}), "
        f"data wait < {TARGET_DATA_WAIT:.0%} "
        f"({'met' if figures['data_wait_frac'] < TARGET_DATA_WAIT else 'not met'})"
    )


if __name__ == "__main__":
    main()
