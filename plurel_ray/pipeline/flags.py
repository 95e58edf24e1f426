"""The flag vocabulary of `plurel-ray` and jobs/*.py: every shared flag is defined here once.

A flag name means one thing in every command that has it:

    --out DIR        where this command writes what it produces (generate: the data root)
    --data DIR       a data root that `generate --out` wrote, read by a training command
    --storage DIR    the training runs: checkpoints, metrics and evaluation CSVs
    --ray/--no-ray   run on Ray (RAY_ADDRESS's cluster, or an embedded one) or in-process
    --verbose        also show Ray's own lines (Ray is quiet by default)
    --progress/--no-progress, --hub-repo, --eval-split, the resource flags, …

A command chooses a shared flag's default, whether it is required, and a help text
saying what the flag does for it; the name, destination and parsing stay the same. The
generation flags (--num-dbs, --seed-offset, --config) live with the generation
arguments in `generate_args`; the resource flags are the fields of `RunResources`
(declared once, in `resources`). This module and those import only argparse and the
standard library, so `--help` and a bad flag answer before ray, torch or pyarrow load.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, NoReturn

from plurel_ray.pipeline.quiet import VERBOSE_ENV
from plurel_ray.pipeline.resources import RunResources
from plurel_ray.store.meta import CONTEXT_RULES as CONTEXT_RULES_CHOICES
from plurel_ray.store.meta import DEFAULT_CONTEXT_RULES, DEFAULT_TEXT_MODEL

EVAL_SPLITS = ("val", "test")
# Runs are compared on val; test is for the final number, asked for explicitly, so that
# choosing recipes on it does not leak into it.
DEFAULT_EVAL_SPLIT = "val"
EXIT_USAGE = 2


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line: `PROG: error: MESSAGE (see 'PROG
    --help')` and exit 2 (the usage of ~20 flags would bury the message in scripts)."""

    def error(self, message: str) -> NoReturn:
        program = self.prog.split()[0]  # a subcommand's prog is "plurel-ray generate"
        text = " ".join(message.split())
        self.exit(EXIT_USAGE, f"{program}: error: {text} (see '{self.prog} --help')\n")


def key_value(text: str) -> tuple[str, str]:
    """`--set KEY=VALUE` → (KEY, VALUE); the value is parsed once the field is known."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()


@dataclass(frozen=True)
class Flag:
    """One flag of the vocabulary.

    Args:
        name: the option string, e.g. "--out".
        help: what it means, used when a command gives no help of its own; may hold
            argparse's %(default)s.
        options: how it parses (argparse keywords: type, action, metavar, dest, choices).
    """

    name: str
    help: str
    options: dict[str, Any] = field(default_factory=dict)

    def add(self, parser: Any, *, help: str | None = None, **per_command: Any) -> argparse.Action:
        """Add this flag to `parser` (a parser or an argument group).

        Args:
            parser: where to add it.
            help: what the flag does for this command (default: `self.help`).
            per_command: only `default` and `required`; the rest is the vocabulary's.
        """
        if unknown := set(per_command) - {"default", "required"}:
            raise TypeError(f"{self.name}: a command may set default and required, not {unknown}")
        return parser.add_argument(self.name, help=help or self.help, **self.options,
                                   **per_command)  # fmt: skip


OUT = Flag("--out", "where the command writes its output", {"metavar": "DIR"})
DATA = Flag(
    "--data",
    "data root written by `generate --out DIR --preprocess --embed` (node stores in "
    "DIR/stores/); with --num-dbs the databases are generated there first",
    {"metavar": "DIR"},
)
STORAGE = Flag(
    "--storage",
    "folder of the training runs: checkpoints, metrics.jsonl, eval_<split>.csv "
    "(default: ./%(default)s)",
    {"metavar": "DIR"},
)
RAY = Flag(
    "--ray",
    "run on Ray (the cluster in RAY_ADDRESS, else an embedded local one); --no-ray runs "
    "in this process with the same output (default: %(default)s)",
    {"action": argparse.BooleanOptionalAction},
)
PROGRESS = Flag("--progress", "show progress bars (default: %(default)s)",
                {"action": argparse.BooleanOptionalAction})  # fmt: skip


class _VerboseAction(argparse.Action):
    """--verbose sets $PLUREL_RAY_VERBOSE as it is parsed: every Ray start of the command,
    however deep, reads it there (`quiet.verbose()`), and so do its subprocesses."""

    def __init__(self, option_strings: list[str], dest: str, **options: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, **{"default": False, **options})

    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        setattr(namespace, self.dest, True)
        os.environ[VERBOSE_ENV] = "1"


VERBOSE = Flag(
    "--verbose",
    "also show Ray's own lines: its log, Ray Data's progress, what its workers print "
    "(default: only this command's progress bars and summary)",
    {"action": _VerboseAction},
)
HUB_REPO = Flag(
    "--hub-repo", "push what the command writes to this Hugging Face repo",
    {"metavar": "ORG/NAME"},
)  # fmt: skip
RECIPE = Flag(
    "--recipe", "the model and training recipe: tiny or plurel-paper (default: %(default)s)",
    {"metavar": "NAME"},
)  # fmt: skip
SET = Flag(
    "--set", "replace a recipe field, e.g. --set lr=1e-3 (repeatable; the last one wins)",
    {"dest": "overrides", "type": key_value, "action": "append", "metavar": "KEY=VALUE"},
)  # fmt: skip
HOLDOUT = Flag(
    "--holdout",
    "keep the last K databases out of training and evaluate on them (default: 1 when "
    "there are ≥ 2, else 0)",
    {"type": int, "metavar": "K"},
)
MAX_TASKS = Flag(
    "--max-tasks", "use at most N tasks per database, evenly spread (default: all)",
    {"type": int, "metavar": "N"},
)  # fmt: skip
EVAL_MAX_ITEMS = Flag(
    "--eval-max-items",
    "score at most N items per held-out task and split: the first N of the split's fixed "
    "evaluation order, the same for every checkpoint and worker count (default: every item)",
    {"type": int, "metavar": "N"},
)
EVAL_EVERY = Flag(
    "--eval-every",
    "during training, score the held-out tasks' val and test splits every N steps, and at "
    "step 0 (before any update) and the last step; keeps the best val score as best/ "
    "(default: %(default)s, no evaluation during training)",
    {"type": int, "metavar": "N"},
)
EVAL_POW2 = Flag(
    "--eval-pow2",
    "during training, score the val and test splits at steps 0, 1, 2, 4, 8, … and the "
    "last step (with --eval-every: the steps of both)",
    {"action": "store_true"},
)
EVAL_SPLIT = Flag(
    "--eval-split",
    "split the final checkpoint is evaluated on (default: %(default)s: compare runs on "
    "val and keep test for the final figure, so that choices made on it do not leak)",
    {"choices": EVAL_SPLITS},
)

TASK = Flag("--task", "a task of the dataset or node store, by name", {"metavar": "NAME"})
CHECKPOINT = Flag(
    "checkpoint",
    "a checkpoint folder, a reference .pt file, or a Hugging Face model repo ORG/NAME[@REVISION]",
    {"metavar": "CHECKPOINT"},
)
SPLIT = Flag("--split", "the task's split: train, val or test (default: %(default)s)",
             {"choices": ("train", "val", "test")})  # fmt: skip
# The context settings (docs/contexts.md); their defaults are the sampler's.
CTX_LEN = Flag("--ctx-len", "cells per context (default: %(default)s)",
               {"type": int, "metavar": "L"})  # fmt: skip
MAX_BFS_WIDTH = Flag(
    "--max-bfs-width", "database children followed per row at most (default: %(default)s)",
    {"type": int, "metavar": "W"},
)  # fmt: skip
CONTEXT_SEED = Flag(
    "--context-seed", "seeds the contexts' random draws (default: %(default)s)",
    {"type": int, "metavar": "N"},
)  # fmt: skip

CONTEXT_RULES = Flag(
    "--context-rules",
    "how the node stores build contexts and standardise values: reference (as PluRel's "
    "reference, on which the published checkpoint was trained) or strict (labels and "
    "statistics on the known side of time); docs/contexts.md (default: %(default)s)",
    {"choices": CONTEXT_RULES_CHOICES},
)
TEXT_MODEL = Flag(
    "--text-model",
    "the sentence encoder that embeds the stores' text: a local sentence-transformers "
    "BERT-family folder, or a Hub id ORG/NAME downloaded once into the Hugging Face cache "
    f"(default: {DEFAULT_TEXT_MODEL})",
    {"metavar": "NAME_OR_DIR"},
)
ALLOW_ENCODER_MISMATCH = Flag(
    "--allow-encoder-mismatch",
    "train or evaluate a checkpoint on stores embedded with another text encoder than the "
    "one its config.json records (refused by default: the text inputs would be foreign "
    "to it)",
    {"action": "store_true"},
)


def add_resource_arguments(parser: Any) -> None:
    """Add the resource flags of a training run, one per field of `RunResources`
    (workers, GPUs, CPUs, failures, wait), with the field's default.

    Args:
        parser: a parser or an argument group.
    """
    for spec in dataclasses.fields(RunResources):
        flag = Flag(spec.metadata["flag"], spec.metadata["help"], spec.metadata["options"])
        flag.add(parser, default=spec.default)


def add_store_arguments(parser: Any) -> None:
    """Add what a command scoring a checkpoint on datasets needs for their stores:
    --storage (where they are kept), --text-model (the encoder of stores it makes; default
    the checkpoint's), --allow-encoder-mismatch and --progress.

    Args:
        parser: a parser or an argument group.
    """
    STORAGE.add(parser, default="runs", help="where the datasets' node stores are kept: "
                "DIR/<name>/stores/<name> (default: ./%(default)s)")  # fmt: skip
    TEXT_MODEL.add(parser, help="the encoder that embeds stores made here (default: the one "
                                "the checkpoint records)")  # fmt: skip
    ALLOW_ENCODER_MISMATCH.add(parser)
    PROGRESS.add(parser, default=True)


def add_recipe_arguments(parser: Any) -> None:
    """Add --recipe and --set.

    Args:
        parser: a parser or an argument group.
    """
    RECIPE.add(parser, default="tiny")
    SET.add(parser, default=[])


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the flags every pretraining job has: recipe, run, resources, evaluation.

    Args:
        parser: the job's parser.
    """
    add_recipe_arguments(parser.add_argument_group("recipe"))
    run = parser.add_argument_group("run")
    run.add_argument("--name", help="run name; rerunning a name resumes it (default: derived "
                                    "from the recipe, the data and --set)")  # fmt: skip
    STORAGE.add(run, default="runs")
    MAX_TASKS.add(run)
    PROGRESS.add(run, default=True)
    VERBOSE.add(run)
    HUB_REPO.add(run, help="push every checkpoint to this Hugging Face model repo")
    add_resource_arguments(parser.add_argument_group("resources"))
    evaluation = parser.add_argument_group("evaluation")
    EVAL_SPLIT.add(evaluation, default=DEFAULT_EVAL_SPLIT)
    EVAL_MAX_ITEMS.add(evaluation)
    EVAL_EVERY.add(evaluation, default=0)
    EVAL_POW2.add(evaluation)
    ALLOW_ENCODER_MISMATCH.add(evaluation)


def add_synthetic_data_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """Add --data, the generation flags --num-dbs, --seed-offset and --config, and
    --holdout: a job trains on a data root, generating it first with --num-dbs.

    Args:
        parser: the job's parser.
        required: whether --data must be given.
    """
    # The generation flags are defined with the generation arguments, which use this module.
    from plurel_ray.pipeline.generate_args import CONFIG, NUM_DBS, SEED_OFFSET

    data = parser.add_argument_group("synthetic data")
    DATA.add(data, required=required)
    NUM_DBS.add(data, help="first generate (or reuse) the databases of seeds S … S+N-1 "
                           "into --data, with node stores and embeddings")  # fmt: skip
    SEED_OFFSET.add(data, default=0)
    CONFIG.add(data)
    # None: new stores get the default, and stores already there are taken as they are.
    when = "when given, stores already there must have"
    CONTEXT_RULES.add(data, help=f"the context rules of stores made with --num-dbs; {when} them "
                                 f"(default: {DEFAULT_CONTEXT_RULES})")  # fmt: skip
    TEXT_MODEL.add(data, help=f"the text encoder of stores made with --num-dbs; {when} it "
                              f"(default: {DEFAULT_TEXT_MODEL})")  # fmt: skip
    HOLDOUT.add(data)


DATASETS = Flag(
    "--datasets",
    "real RelBench-3 datasets: local folders (manifest.yaml, db/, tasks/) or Hub dataset ids "
    "ORG/REPO/SUBFOLDER (downloaded once into the Hugging Face cache; HF_ENDPOINT, "
    "HF_TOKEN); each is preprocessed and embedded into <storage>/<name>/stores/<name> "
    "unless that store exists",
    {"nargs": "+", "metavar": "DIR_OR_HUB_ID"},
)
LEAVE_OUT = Flag(
    "--leave-out",
    "the real dataset (its manifest name) held out of training and evaluated on "
    "(required with several --datasets and no --data)",
    {"metavar": "NAME"},
)
TASKS = Flag(
    "--tasks",
    "a task suite (a YAML file, or the built-in relbench-paper) choosing the real datasets' "
    "tasks and their leakage columns, docs/tasks.md (default: every number or boolean task "
    "of each dataset, with its manifest's leakage columns)",
    {"metavar": "SUITE"},
)


def add_real_data_arguments(parser: argparse.ArgumentParser, required: bool = False) -> None:
    """Add --datasets, --leave-out and --tasks (real RelBench-3 data).

    Args:
        parser: the job's parser.
        required: whether --datasets must be given.
    """
    real = parser.add_argument_group("real data")
    DATASETS.add(real, required=required)
    LEAVE_OUT.add(real)
    TASKS.add(real)


def add_data_arguments(parser: argparse.ArgumentParser, *, synthetic: bool, real: bool) -> None:
    """Add the data flags of a training job (`pipeline.data_selection` reads them): the
    synthetic ones (--data, --num-dbs, …, --holdout), the real ones (--datasets,
    --leave-out, --tasks), or both — then either kind may be given, or both mixed.

    Args:
        parser: the job's parser.
        synthetic: add the synthetic data flags.
        real: add the real data flags.
    """
    if synthetic:
        add_synthetic_data_arguments(parser, required=not real)
    if real:
        add_real_data_arguments(parser, required=not synthetic)


# `plurel-ray import` and `plurel-ray tasks add` (docs/tasks.md#your-own-database).
OVERWRITE = Flag("--overwrite", "replace what is already there", {"action": "store_true"})
KEYS = Flag(
    "--keys",
    "a YAML file giving, per table, the pkey, fkeys and time_col the database does not "
    "declare (and optionally val_timestamp, test_timestamp)",
    {"metavar": "KEYS_YAML"},
)
TIME_COL = Flag(
    "--time-col",
    "a table's time column, TABLE.COLUMN (repeatable; over the keys file and the default: "
    "a table's only DATE/TIMESTAMP column)",
    {"action": "append", "metavar": "TABLE.COLUMN", "default": []},
)
VAL_TIMESTAMP = Flag(
    "--val-timestamp",
    "the dataset's validation timestamp, ISO (default: the 0.8 quantile of every time "
    "column's values, floored to days)",
    {"metavar": "ISO"},
)
TEST_TIMESTAMP = Flag(
    "--test-timestamp",
    "the dataset's test timestamp, ISO (default: the 0.9 quantile, likewise)",
    {"metavar": "ISO"},
)

# plurel-ray predict (pipeline/predict.py).
DATASET = Flag(
    "--dataset",
    "a RelBench-3 dataset folder or Hub dataset id ORG/REPO/SUBFOLDER; preprocessed and "
    "embedded into <storage>/<name>/stores/<name> unless that store exists",
    {"metavar": "DIR_OR_HUB_ID"},
)
ROWS = Flag(
    "--rows",
    "a Parquet or CSV file of the rows to predict: the entity key column (and, for a "
    "forecast task, the time column) of rows of the split (default: every item of the split)",
    {"metavar": "FILE"},
)
CONTEXT_GRID = Flag(
    "--context-grid",
    "context settings to try on the task's val split, the best (AUROC or R²) predicting: "
    "KEY=V1,V2 words (keys ctx_len, max_bfs_width; every combination) or a YAML file of "
    "{key: [values]}; the report <out stem>_context.md says what each gained",
    {"nargs": "+", "metavar": "KEY=V1,V2|FILE"},
)
ENSEMBLE = Flag(
    "--ensemble",
    "average the predictions of N context seeds (--context-seed, +1, …): probabilities "
    "for a binary task, values for a regression (default: %(default)s, no ensemble)",
    {"type": int, "metavar": "N"},
)
SUBMISSION_DIR = Flag(
    "--submission-dir",
    "also write RelBench's leaderboard file DIR/<dataset>__<task>.csv (the test split) and "
    "score it with RelBench's evaluator when the split's labels are known",
    {"metavar": "DIR"},
)
