"""What the pretraining jobs (`jobs/pretrain.py`, `jobs/continue_pretrain.py`,
`jobs/baseline_pretrain.py`) do with their parsed flags (`flags.add_training_arguments`):
check them, build the recipe, train on Ray, evaluate, report.

Everything a user can get wrong — flags, recipe fields, data folders, a request larger
than the cluster — is checked before any actor starts, and reported in one line. The jobs
import this module only after parsing, so `--help` and a bad flag never load Ray.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import re
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from plurel_ray.errors import CheckpointError, ConfigError, DatasetError, PlurelError
from plurel_ray.model.config import ModelConfig
from plurel_ray.pipeline.pretrain_data import (
    drop_empty_sources,
    local_folder,
    split_holdout,
    synthetic_stores,
)
from plurel_ray.train.config import Recipe, recipe

# Model fields that do not change the weights' shapes, so a run from --init may set them.
SHAPE_FREE_MODEL_FIELDS = ("attention",)
# A Hugging Face repo id with an optional revision, as --init takes it.
HUB_REPO = re.compile(r"[\w.-]+/[\w.-]+(@[\w./-]+)?")
_TRUE, _FALSE = ("true", "yes", "1"), ("false", "no", "0")
_KINDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string",
          tuple: "comma-separated numbers"}  # fmt: skip
_TOKENS_PER_S_STEPS = 10  # tokens/s is reported as the mean of the last this many steps


def parse_field(key: str, text: str, default: Any) -> Any:
    """`text` as a value of the type of `default` (int, float, bool, str, or a tuple of
    floats written `0.9,0.95`).

    Raises:
        ConfigError: `text` is not such a value.
    """
    kind = type(default)
    try:
        if kind is bool:
            if text.lower() not in _TRUE + _FALSE:
                raise ValueError(text)
            return text.lower() in _TRUE
        if kind is tuple:
            return tuple(float(part) for part in text.split(","))
        return kind(text)
    except ValueError:
        wanted = _KINDS[kind]
        raise ConfigError(f"--set {key}={text}: {key} takes {wanted}, like {default!r}") from None


def check_training_arguments(args: argparse.Namespace) -> None:
    """Raise ConfigError for resource and evaluation flags out of range, and a --storage
    the evaluation could not read (before any data is generated or trained on)."""
    limits = {
        "--num-workers": (args.num_workers, 1), "--eval-batches": (args.eval_batches, 1),
        "--max-tasks": (args.max_tasks or 1, 1), "--max-failures": (args.max_failures, 0),
    }  # fmt: skip
    bad = [f"{flag} must be ≥ {low}" for flag, (value, low) in limits.items() if value < low]
    if bad:
        raise ConfigError("; ".join(bad))
    local_folder(args.storage, "--storage")


def recipe_from_args(args: argparse.Namespace, model: ModelConfig | None = None) -> Recipe:
    """The recipe `--recipe` with the `--set` overrides.

    Args:
        args: the parsed flags.
        model: the model sizes to use instead of the recipe's (a checkpoint's); then
            only training fields and SHAPE_FREE_MODEL_FIELDS may be set.

    Raises:
        ConfigError: unknown recipe or field (with close matches), a value of the wrong
            type or out of range, or a model size set for a model from a checkpoint.
    """
    base = recipe(args.recipe)
    defaults = {**base.model.to_dict(), **base.train.to_dict()}
    overrides = {
        key: parse_field(key, text, defaults[key]) if key in defaults else text
        for key, text in args.overrides
    }
    chosen = recipe(args.recipe, **overrides)  # unknown fields fail here, with suggestions
    if model is None:
        return chosen
    model_fields = set(base.model.to_dict())
    fixed = sorted(k for k in overrides if k in model_fields and k not in SHAPE_FREE_MODEL_FIELDS)
    if fixed:
        raise ConfigError(
            f"--set {', '.join(fixed)}: the model's sizes come from --init; drop these --set "
            f"(only training fields and {', '.join(SHAPE_FREE_MODEL_FIELDS)} can be set)"
        )
    shape_free = {k: v for k, v in overrides.items() if k in SHAPE_FREE_MODEL_FIELDS}
    return Recipe(chosen.name, dataclasses.replace(model, **shape_free), chosen.train)


def init_weights(text: str) -> tuple[str, ModelConfig]:
    """(absolute path, model sizes) of `--init`: a checkpoint folder, a `.pt` state dict
    (sizes from its config.json, or inferred from the `.pt` shapes), or a Hugging Face
    model repo `ORG/NAME[@REVISION]`, downloaded first.

    Raises:
        CheckpointError: neither a path nor a repo id, or it does not hold a Relational
            Transformer.
        HubError: the repo or revision cannot be downloaded.
    """
    from plurel_ray.model.checkpoint import load_checkpoint

    path = Path(text).expanduser().resolve()
    if not path.exists():
        if not HUB_REPO.fullmatch(text):
            raise CheckpointError(
                f"--init {text}: no such file or folder, and not a Hugging Face repo id "
                "(ORG/NAME or ORG/NAME@REVISION)"
            )
        path = _download_init(text)
    return str(path), load_checkpoint(path).model_config


def _download_init(text: str) -> Path:
    """Download the checkpoint repo `ORG/NAME[@REVISION]` into the temp dir (once)."""
    from plurel_ray.hub import download

    repo, _, revision = text.partition("@")
    folder = Path(tempfile.gettempdir()) / "plurel-ray-init" / text.replace("/", "--")
    return download(repo, revision=revision or None, local_dir=folder)


def run_name(args: argparse.Namespace, prefix: str, identity: dict[str, Any]) -> str:
    """`--name`, or `prefix` plus a short hash of what defines the run (the overrides and
    `identity`: data, held-out stores, initial weights), so the same command resumes its
    run and a changed one starts a new run instead of resuming an unrelated one."""
    if args.name:
        return args.name
    what = {"set": sorted(dict(args.overrides).items()), **identity}
    digest = hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:8]
    return re.sub(r"[^A-Za-z0-9._-]+", "-", f"{prefix}-{digest}")


def synthetic_data(args: argparse.Namespace) -> tuple[list[Path], list[Path]]:
    """(training stores, held-out stores) of `--data`, generating `--num-dbs` first.

    Raises:
        ConfigError, DatasetError, StoreError: bad flags, a failed seed, stores missing.
    """
    data = local_folder(args.data, "--data")
    if args.num_dbs is None:
        return split_holdout(synthetic_stores(data), args.holdout)
    from plurel_ray.config import Config
    from plurel_ray.pipeline.generate import GenerationRequest, run_generation
    from plurel_ray.pipeline.output import database_name

    seeds = range(args.seed_offset, args.seed_offset + args.num_dbs)
    if args.holdout is not None:
        split_holdout(list(seeds), args.holdout)  # a bad --holdout fails before generating
    check_cluster(args)  # a run the cluster cannot fit fails before generating, too
    config = Config.load(args.config) if args.config is not None else Config()
    request = GenerationRequest(seeds=seeds, out=str(data), config=config, preprocess=True,
                                embed=True)  # fmt: skip
    summary = run_generation(request, progress=args.progress)
    for line in summary.lines():
        print(line)
    if summary.failed:
        raise DatasetError(f"{summary.failed} seed(s) failed (errors in {summary.index_path}); "
                           "rerun to retry them")  # fmt: skip
    stores = synthetic_stores(data, [database_name(seed) for seed in seeds])
    return split_holdout(stores, args.holdout)


def check_cluster(args: argparse.Namespace) -> None:
    """Connect to Ray and check the cluster can fit the workers and samplers the flags
    ask for (`run_pretraining` checks again, in case the cluster shrank meanwhile).

    Raises:
        ConfigError: it cannot, in one line naming the request and the cluster.
    """
    from plurel_ray.pipeline.ray_stages import ensure_ray
    from plurel_ray.pipeline.resources import RunResources, wait_for_resources

    ensure_ray()
    wanted = RunResources(num_workers=args.num_workers, cpus_per_worker=args.cpus_per_worker,
                          sampler_cpus=args.sampler_cpus, use_gpu=args.use_gpu)  # fmt: skip
    wait_for_resources(wanted, args.resource_wait_s)


def train_and_evaluate(
    args: argparse.Namespace,
    chosen: Recipe,
    sources: Sequence[dict],
    eval_stores: Sequence[Path],
    name: str,
    init_checkpoint: str | None = None,
) -> int:
    """Train `chosen` on `sources` with Ray Train, evaluate the final checkpoint on the
    tasks of `eval_stores` in `--eval-split`, print the summary; returns the exit status.

    Raises:
        PlurelError: no source has items, a store is unusable, bad flags, a request the
            cluster cannot fit.
    """
    from plurel_ray.pipeline.pretrain import PretrainRequest, run_pretraining
    from plurel_ray.pipeline.pretrain_eval import evaluate_run

    train = chosen.train
    storage = local_folder(args.storage, "--storage")
    kept, empty = drop_empty_sources(sources, train.batch_size, train.ctx_len)
    for source in empty:
        print(f"note: {Path(source['store']).name}/{source['task']} has no items in its "
              f"{source['split']} split; left out")  # fmt: skip
    if not kept:
        raise DatasetError("no training task has items; check the data or --max-tasks")
    request = PretrainRequest(
        sources=kept, recipe=chosen, name=name, storage_path=str(storage),
        num_workers=args.num_workers, use_gpu=args.use_gpu,
        cpus_per_worker=args.cpus_per_worker, sampler_cpus=args.sampler_cpus,
        max_failures=args.max_failures, resource_wait_s=args.resource_wait_s,
        init_checkpoint=init_checkpoint, hub_repo=args.hub_repo,
        data_summary=data_summary(kept), progress=args.progress,
    )  # fmt: skip
    print(f"run {name}: {len(kept)} training tasks from "
          f"{len({s['store'] for s in kept})} store(s), {train.steps} steps")  # fmt: skip
    checkpoint = Path(run_pretraining(request).checkpoint.path)
    rows = evaluate_run(checkpoint, eval_stores, args.eval_split, args.eval_batches,
                        train.batch_size, train.ctx_len,
                        max_tasks_per_store=args.max_tasks)  # fmt: skip
    _report(checkpoint, rows, args.eval_split)
    return 0


def data_summary(sources: Sequence[dict]) -> dict:
    """What a model card says about the training data: databases, seeds, config hashes."""
    from plurel_ray.store.sampler import read_meta

    stores = sorted({s["store"] for s in sources})
    origins = [read_meta(Path(store)).get("source", {}) for store in stores]
    return {
        "num_databases": len(stores),
        "num_tasks": len(sources),
        "databases": [o.get("name") for o in origins],
        "seeds": sorted(o["seed"] for o in origins if "seed" in o),
        "config_hashes": sorted({o["config_hash"] for o in origins if "config_hash" in o}),
    }


def _report(checkpoint: Path, rows: list[dict], split: str) -> None:
    from plurel_ray.pipeline.pretrain import METRICS_FILE
    from plurel_ray.pipeline.pretrain_eval import format_table

    steps = [json.loads(line) for line in (checkpoint / METRICS_FILE).read_text().splitlines()]
    recent = steps[-_TOKENS_PER_S_STEPS:]
    tokens_per_s = sum(s["tokens_per_s"] for s in recent) / len(recent)
    print(f"checkpoint: {checkpoint}")
    print(f"step {steps[-1]['step']}: loss {steps[-1]['loss']:.4f}, {tokens_per_s:,.0f} tokens/s "
          f"(mean of the last {len(recent)} steps)")  # fmt: skip
    print(f"evaluation, {split} split of {len(rows)} tasks: {checkpoint.parent}/eval_{split}.csv")
    for line in format_table(rows):
        print(line)


def run_job(prog: str, body: Callable[[], int]) -> int:
    """Run a job's work and return its exit status: a `PlurelError` is printed as one
    line and gives 1; Ray is shut down however the work ends."""
    try:
        return body()
    except PlurelError as err:
        print(f"{prog}: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 1
    finally:
        close_ray()


def close_ray() -> None:
    """Shut down the Ray a job started or joined; a job that failed on its flags never
    imported ray, and importing it just to find that out would cost a second."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()
