"""The pretraining jobs' flags (`flags.add_training_arguments`) turned into what the
pipeline takes: checked values, the recipe, the initial weights, the data request, the
run name and the `TrainRun` (`jobs/pretrain.py`, `jobs/continue_pretrain.py`,
`jobs/baseline_pretrain.py`).

Everything a user can get wrong — flags, recipe fields, data folders, a request larger
than the cluster — is checked before any actor starts, and reported in one line. The jobs
import this module only after parsing, so `--help` and a bad flag never load Ray. The
work itself is `pipeline.prepare` (data) and `pipeline.train_run` (train, evaluate).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from plurel_ray.config import Config
from plurel_ray.errors import ConfigError, PlurelError
from plurel_ray.model.config import ModelConfig
from plurel_ray.pipeline.pretrain_data import data_root, local_folder
from plurel_ray.pipeline.resources import RunResources
from plurel_ray.pipeline.train_run import TrainRun, run_name
from plurel_ray.train.config import Recipe, recipe

if TYPE_CHECKING:
    from plurel_ray.pipeline.prepare import PreparedData
    from plurel_ray.store.sampler import Source

# Model fields that do not change the weights' shapes, so a run from --init may set them.
SHAPE_FREE_MODEL_FIELDS = ("attention",)
_TRUE, _FALSE = ("true", "yes", "1"), ("false", "no", "0")
_KINDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string",
          tuple: "comma-separated numbers"}  # fmt: skip


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
    limits = {"--eval-max-items": (1 if args.eval_max_items is None else args.eval_max_items, 1),
              "--eval-every": (args.eval_every, 0),
              "--max-tasks": (args.max_tasks or 1, 1)}  # fmt: skip
    bad = RunResources.problems(vars(args))
    bad += [f"{flag} must be ≥ {low}" for flag, (value, low) in limits.items() if value < low]
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


def init_weights(text: str, flag: str = "--init") -> tuple[str, ModelConfig]:
    """(absolute path, model sizes) of `--init`: a checkpoint folder, a `.pt` state dict
    (sizes from its config.json, or inferred from the `.pt` shapes), or a Hugging Face
    model repo `ORG/NAME[@REVISION]`, downloaded first.

    Args:
        text: the path or repo id.
        flag: the flag or argument that gave it, named in errors.

    Raises:
        CheckpointError: neither a path nor a repo id, or it does not hold a Relational
            Transformer.
        HubError: the repo or revision cannot be downloaded.
    """
    from plurel_ray.predict.pretrained import from_pretrained

    pretrained = from_pretrained(text, flag)
    return str(pretrained.path), pretrained.model_config


def run_name_from_args(args: argparse.Namespace, prefix: str, identity: dict[str, Any]) -> str:
    """`--name`, or `train_run.run_name` of `prefix` over the --set overrides and
    `identity` (data, held-out stores, initial weights).

    Args:
        args: the parsed flags.
        prefix: the readable part of the name.
        identity: what else defines the run.
    """
    if args.name:
        return args.name
    return run_name(prefix, {"set": sorted(dict(args.overrides).items()), **identity})


def synthetic_data(args: argparse.Namespace) -> PreparedData:
    """(training stores, held-out stores) of `--data`, generating `--num-dbs` databases
    first when any is missing (`prepare.prepare_synthetic`).

    Args:
        args: the parsed flags (`flags.add_synthetic_data_arguments`).

    Raises:
        ConfigError, DatasetError, StoreError: bad flags, a failed seed, stores missing.
    """
    from plurel_ray.pipeline.prepare import prepare_synthetic

    data = data_root(args.data)
    seeds = None
    if args.num_dbs is not None:
        seeds = range(args.seed_offset, args.seed_offset + args.num_dbs)
    # None: databases added to an existing output take the config it was made with.
    config = Config.load(args.config) if args.config is not None else None
    # A run the cluster cannot fit fails before anything is generated.
    return prepare_synthetic(data, seeds, args.holdout, config, progress=args.progress,
                             before_generating=lambda: check_cluster(args),
                             context_rules=args.context_rules,
                             text_model=args.text_model)  # fmt: skip


def check_cluster(args: argparse.Namespace) -> None:
    """Connect to Ray and check the cluster can fit the workers and samplers the flags
    ask for (`run_pretraining` checks again, in case the cluster shrank meanwhile).

    Raises:
        ConfigError: it cannot, in one line naming the request and the cluster.
    """
    from plurel_ray.pipeline.ray_stages import ensure_ray
    from plurel_ray.pipeline.resources import wait_for_resources

    ensure_ray()
    wait_for_resources(RunResources.from_args(args))


def train_run_from_args(
    args: argparse.Namespace,
    chosen: Recipe,
    sources: Sequence[Source],
    eval_sources: Sequence[Source],
    name: str,
    init_checkpoint: str | None = None,
) -> TrainRun:
    """The `TrainRun` of the flags: storage, resources, evaluation, Hub, progress.

    Args:
        args: the parsed flags (`flags.add_training_arguments`).
        chosen: the recipe (`recipe_from_args`).
        sources: the training tasks.
        eval_sources: the held-out tasks, evaluated during training (--eval-every,
            --eval-pow2) and at the end.
        name: the run name (`run_name_from_args`).
        init_checkpoint: the weights to start from (`init_weights`).
    """
    return TrainRun(
        recipe=chosen, sources=sources, eval_sources=eval_sources, name=name,
        storage=str(local_folder(args.storage, "--storage")),
        resources=RunResources.from_args(args), eval_split=args.eval_split,
        eval_max_items=args.eval_max_items, eval_every=args.eval_every,
        eval_pow2=args.eval_pow2,
        init_checkpoint=init_checkpoint, hub_repo=args.hub_repo, progress=args.progress,
        allow_encoder_mismatch=args.allow_encoder_mismatch,
    )  # fmt: skip


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
