"""Text embedding speed of the encoder (all-MiniLM-L6-v2), one process on one core.

    python benchmarks/bench_embed.py            # table
    python benchmarks/bench_embed.py --json     # one JSON object

Times `TextEncoder.encode` (tokenising included, model loading and the persistent cache
not) on two workloads, after one untimed warm-up pass over each:

- `labels`: the strings a synthetic store's vocabulary holds — "feature_3 of table_1"
  column labels, table names and category values (6-10 tokens each);
- `long`: sentences of ~100 words (~130 tokens), the long end of real text columns.

The process is pinned to one CPU, and BLAS and torch to one thread each, so the figures are
per core (the encoder runs on the CPU here whatever GPU there is).
`strings_per_s` is wall-clock; `strings_per_cpu_s` divides by the CPU time the process
got, the steadier figure on a machine shared with other work.
"""

from __future__ import annotations

import os

# Before NumPy and torch load: one BLAS/OpenMP thread, so the figure is what one core does.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
from machine import cpu_model, pin_to_one_cpu  # noqa: E402

from plurel_ray.store.encoder import DEFAULT_MODEL, TextEncoder  # noqa: E402

_SENTENCE = (
    "the order was shipped to a customer in the north region after the payment cleared "
    "and the warehouse confirmed that every item of the basket was in stock"
)


def label_strings(count: int) -> list[str]:
    """Distinct vocabulary-like strings: column labels, table names, category values.

    Args:
        count: how many strings.
    """
    kinds = (
        lambda i: f"feature_{i % 40} of table_{i // 40}",
        lambda i: f"table_{i}",
        lambda i: f"category_{i} of feature_{i % 7}",
    )
    return [kinds[i % 3](i) for i in range(count)]


def long_strings(count: int, words: int = 100) -> list[str]:
    """Distinct sentences of `words` words each.

    Args:
        count: how many strings.
        words: words per string.
    """
    pool = _SENTENCE.split()
    return [
        " ".join(pool[(i + j) % len(pool)] for j in range(words)) + f" (record {i})"
        for i in range(count)
    ]


def time_workload(encoder: TextEncoder, texts: list[str], repeats: int, batch_size: int) -> dict:
    """Encode `texts` `repeats` times after a warm-up; the median run counts.

    Args:
        encoder: the loaded encoder.
        texts: the strings to embed.
        repeats: timed runs.
        batch_size: most strings per forward pass.
    """
    encoder.encode(texts, batch_size)
    wall, cpu = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        encoder.encode(texts, batch_size)
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    seconds, cpu_s = statistics.median(wall), statistics.median(cpu)
    tokens = sum(len(ids) for ids in encoder.tokenize(texts))
    return {
        "strings": len(texts),
        "mean_tokens": tokens / len(texts),
        "seconds": seconds,
        "cpu_s": cpu_s,
        "strings_per_s": len(texts) / seconds,
        "strings_per_cpu_s": len(texts) / cpu_s,
        "tokens_per_s": tokens / seconds,
    }


def run(num_labels: int, num_long: int, repeats: int, batch_size: int) -> dict:
    """Both workloads' figures and the machine they ran on.

    Args:
        num_labels: strings of the `labels` workload.
        num_long: strings of the `long` workload.
        repeats: timed runs per workload.
        batch_size: most strings per forward pass.
    """
    pinned = pin_to_one_cpu()
    torch.set_num_threads(1)
    encoder = TextEncoder.load(DEFAULT_MODEL, device="cpu")
    return {
        "model": encoder.name,
        "cpu_model": cpu_model(),
        "pinned_cpu": pinned,
        "batch_size": batch_size,
        "labels": time_workload(encoder, label_strings(num_labels), repeats, batch_size),
        "long": time_workload(encoder, long_strings(num_long), repeats, batch_size),
    }


def _report(r: dict) -> str:
    lines = [f"{r['model']} on {r['cpu_model']} (pinned to cpu {r['pinned_cpu']}, 1 thread)"]
    lines.append(
        f"{'workload':<8} {'strings':>8} {'tokens':>7} {'strings/s':>10} {'/cpu-s':>8} "
        f"{'tokens/s':>9}"
    )
    for name in ("labels", "long"):
        w = r[name]
        lines.append(
            f"{name:<8} {w['strings']:>8} {w['mean_tokens']:>7.1f} {w['strings_per_s']:>10,.0f} "
            f"{w['strings_per_cpu_s']:>8,.0f} {w['tokens_per_s']:>9,.0f}"
        )
    lines.append("strings/s is wall-clock; /cpu-s divides by the CPU time this process got")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=2000, metavar="N",
                        help="strings of the short-label workload")  # fmt: skip
    parser.add_argument("--long", type=int, default=64, metavar="N",
                        help="strings of the ~130-token workload")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=3, metavar="N", help="timed runs each")
    parser.add_argument("--batch-size", type=int, default=256, metavar="N",
                        help="most strings per forward pass (embed's default)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    result = run(max(args.labels, 1), max(args.long, 1), max(args.repeats, 1), args.batch_size)
    print(json.dumps(result) if args.json else _report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
