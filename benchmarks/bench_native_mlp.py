"""Single-thread speed of the fused native MLP kernels against the NumPy path.

    taskset -c 1 python benchmarks/bench_native_mlp.py           # a table
    taskset -c 1 python benchmarks/bench_native_mlp.py --json    # one JSON object

Figures are ns per row per MLP, the minimum over `--repeats` rounds (the dev host is
noisy; the minimum is the least disturbed run):

- `accumulate/<act>`: `_native.mlp_accumulate` with a 1→32→32→32 MLP (two hidden
  activations, both `<act>`), sum aggregation, n rows, vs `RandomMLP.__call__` followed
  by the term clamp and `acc +=` (the NumPy path of `scm.Encoder`). `mixed` cycles
  29 MLPs whose hidden activations are drawn per layer from the default choices.
- `forward/32-32-32-1`, `forward/32-32-1`, `forward/32-32-32-32`: `_native.mlp_forward`
  on (n, 32) float32 input vs `RandomMLP.__call__` (BLAS matmuls).

BLAS runs on one thread (set before NumPy is imported).
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from plurel_ray import _native  # noqa: E402
from plurel_ray.config import Choices, SCMParams  # noqa: E402
from plurel_ray.synth.mlp import build_mlps  # noqa: E402

TERM_CLAMP = 1e4
ACC_ACTS = ("relu", "tanh", "sigmoid", "gelu", "mish", "softplus", "random_sine", "sin")


def build(names: list[str | None], dims: tuple[int, int], seed: int, layers: int):
    """One MLP per name (every hidden layer uses that activation; None: the default
    random choice per layer), `layers` layers."""
    out = []
    for k, name in enumerate(names):
        params = dataclasses.replace(SCMParams(), mlp_num_layers_choices=Choices("set", [layers]))
        if name is not None:
            params = dataclasses.replace(params, activation_choices=Choices("set", [name]))
        out.append(build_mlps([dims], params, np.random.default_rng(seed + k))[0])
    return out


def best_ns(fn, n_rows: int, repeats: int, inner: int) -> float:
    fn()  # warm up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter_ns()
        for _ in range(inner):
            fn()
        best = min(best, (time.perf_counter_ns() - t) / (inner * n_rows))
    return best


def kernel_args(mlp):
    return mlp.weights, mlp.act_ids, mlp.act_params, mlp.clamps


def bench_accumulate(names: list[str], n: int, repeats: int) -> tuple[float, float]:
    mlps = build(names, (1, 32), 0, 3)
    x = (np.random.default_rng(1).standard_normal(n) * 2).astype(np.float32)
    acc = np.zeros((n, 32), np.float32)

    def native():
        for m in mlps:
            _native.mlp_accumulate(x, *kernel_args(m), TERM_CLAMP, 0, acc)

    def numpy():
        for m in mlps:
            out = m(x)
            np.clip(out, -TERM_CLAMP, TERM_CLAMP, out=out)
            acc.__iadd__(out)

    k = len(mlps)
    return best_ns(native, n * k, repeats, 3), best_ns(numpy, n * k, repeats, 3)


def bench_forward(dims: tuple[int, ...], n: int, repeats: int) -> tuple[float, float]:
    names = ["tanh", "relu", "sin", "gelu"]
    mlps = build(names, (dims[0], dims[-1]), 5, len(dims) - 1)
    h = (np.random.default_rng(2).standard_normal((n, dims[0])) * 2).astype(np.float32)
    inner = max(1, 20_000 // n)

    def native():
        for m in mlps:
            _native.mlp_forward(h, *kernel_args(m))

    def numpy():
        for m in mlps:
            m(h)

    k = len(mlps)
    return best_ns(native, n * k, repeats, inner), best_ns(numpy, n * k, repeats, inner)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--n", type=int, default=2000, help="rows for accumulate")
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()

    rows: dict[str, dict[str, float]] = {}
    for name in [*ACC_ACTS, "mixed"]:
        names = [None] * 29 if name == "mixed" else [name] * 4
        nat, ref = bench_accumulate(names, args.n, args.repeats)
        rows[f"accumulate/{name} n={args.n}"] = {"native_ns": nat, "numpy_ns": ref}
    for dims in ((32, 32, 32, 1), (32, 32, 1), (32, 32, 32, 32)):
        for n in (500, 5000):
            nat, ref = bench_forward(dims, n, args.repeats)
            key = f"forward/{'-'.join(map(str, dims))} n={n}"
            rows[key] = {"native_ns": nat, "numpy_ns": ref}
    for r in rows.values():
        r["speedup"] = r["numpy_ns"] / r["native_ns"]
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print(f"{'case':34} {'native':>9} {'numpy':>9} {'x':>6}   (ns per row per MLP, min)")
    for key, r in rows.items():
        print(f"{key:34} {r['native_ns']:9.1f} {r['numpy_ns']:9.1f} {r['speedup']:6.2f}")


if __name__ == "__main__":
    main()
