"""`plurel-ray evaluate`: score any checkpoint zero-shot on RelBench-3 datasets, next to
trivial baselines computed on the very same items.

    request = EvaluationRequest("org/plurel-rt@main", ["data/rel-f1"], split="test")
    rows = evaluate_checkpoint(request)   # also writes <out>/eval_test.csv and .md

Per task (one row): the items scored, the model's mean loss and its metric — AUROC for a
boolean target, R² and MAE for a number target (docs/model.md) — and the constant
baseline fitted on the task's train split (`train.baselines`): for a binary task the
class prior, its AUROC (0.5) and the model's vs the prior's log-loss; for a regression
task the train mean and its R² and MAE. `beats` says whether the model scores better than
the baseline on the baseline's own score (log-loss, R²). One summary row per dataset
gives the means over its tasks and how many tasks the model beats.

The work runs in this process (no Ray): datasets without a store under
`<storage>/<name>/stores/<name>` are preprocessed and embedded first, with the text
encoder the checkpoint expects. Bad input — a folder that is not RelBench-3, an unknown
task, a path that is no checkpoint, a Hub repo that cannot be downloaded, stores of
another text width or (unless allowed) another encoder — fails in one line before any
store is built or any item scored.
"""

from __future__ import annotations

import csv
import math
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from plurel_ray.errors import ConfigError
from plurel_ray.pipeline.flags import DEFAULT_EVAL_SPLIT
from plurel_ray.pipeline.pretrain_data import local_folder

if TYPE_CHECKING:
    from plurel_ray.predict.pretrained import Pretrained
    from plurel_ray.store.sampler import Source
    from plurel_ray.train.evaluate import ItemPredictions

# Which items a task scores does not depend on the batch size (the cap takes the first
# items of the split's fixed shuffle), so it is chosen for memory alone.
EVAL_BATCH_SIZE = 32
CSV_COLUMNS = (
    "dataset", "task", "split", "target", "items", "loss", "auroc", "logloss", "prior",
    "prior_auroc", "prior_logloss", "r2", "mae", "train_mean", "mean_r2", "mean_mae",
    "beats", "note",
)  # fmt: skip


@dataclass(frozen=True)
class EvaluationRequest:
    """What `plurel-ray evaluate` was asked.

    Args:
        checkpoint: a checkpoint folder, a reference `.pt`, or a Hub model repo
            `ORG/NAME[@REVISION]`.
        datasets: RelBench-3 dataset folders or Hub dataset ids ORG/REPO/SUBFOLDER.
        split: "val" or "test".
        tasks: a task suite, a YAML file or a built-in name (`dataset.suite`); default:
            every cell-prediction task of each dataset.
        out: where eval_<split>.csv and .md go (default: evaluations/<checkpoint>).
        storage: the folder keeping each dataset's store at <storage>/<name>/stores/<name>.
        max_items: score the first N items of each task's split (its fixed evaluation
            shuffle); None scores every item.
        text_model: the encoder of stores made here (default: the one the checkpoint
            records, else the project default).
        allow_encoder_mismatch: score stores embedded by another encoder than the
            checkpoint's.
        progress: progress bars (embedding, tasks) on a terminal.
    """

    checkpoint: str
    datasets: Sequence[str]
    split: str = DEFAULT_EVAL_SPLIT
    tasks: str | None = None
    out: str | None = None
    storage: str = "runs"
    max_items: int | None = None
    text_model: str | None = None
    allow_encoder_mismatch: bool = False
    progress: bool = True


def evaluate_checkpoint(
    request: EvaluationRequest, say: Callable[[str], None] = print
) -> list[dict]:
    """Score `request.checkpoint` on every selected task of `request.datasets`, with the
    trivial baselines, and write `<out>/eval_<split>.csv` and `<out>/eval_<split>.md`.

    Args:
        request: what to evaluate, where, and how much.
        say: where the Markdown report is printed.

    Returns:
        one row per task (CSV_COLUMNS), then one summary row per dataset (task "(mean)").

    Raises:
        DatasetError: a folder is not RelBench-3. ConfigError: an unknown task or a bad
            --eval-max-items. CheckpointError, HubError: no checkpoint at that path or
            repo. EncoderMismatchError: stores of another text width or encoder.
    """
    from plurel_ray.pipeline.data_selection import (
        cell_task_sources,
        load_tasks_suite,
        real_datasets,
    )
    from plurel_ray.pipeline.prepare import checkpoint_stores
    from plurel_ray.predict.pretrained import from_pretrained

    if request.max_items is not None and request.max_items < 1:
        raise ConfigError(f"--eval-max-items must be ≥ 1, got {request.max_items}")
    folders = real_datasets(request.datasets)
    suite = load_tasks_suite(request.tasks)
    storage = local_folder(request.storage, "--storage")
    pretrained = from_pretrained(request.checkpoint, "checkpoint")
    stores = checkpoint_stores(folders, storage, pretrained, text_model=request.text_model,
                               allow_encoder_mismatch=request.allow_encoder_mismatch,
                               progress=request.progress)  # fmt: skip
    # A suite's entries are checked against the stores here, before any item is scored.
    sources = cell_task_sources(stores, list(stores), split=request.split, suite=suite,
                                max_tasks=None)  # fmt: skip
    rows = score_tasks(pretrained, sources, request)
    rows += summary_rows(rows)
    out = Path(request.out) if request.out else Path("evaluations") / checkpoint_label(request)
    for line in write_reports(rows, out, request.split, request.checkpoint):
        say(line)
    return rows


def score_tasks(
    pretrained: Pretrained, sources: Sequence[Source], request: EvaluationRequest
) -> list[dict]:
    """One row per source: the model's and the baseline's scores on its split's items.

    Args:
        pretrained: the checkpoint (`predict.pretrained.from_pretrained`).
        sources: the tasks, each taking the split `request.split`, in embedded stores.
        request: split, max_items, progress.
    """
    from tqdm import tqdm

    from plurel_ray.errors import EmptySourceError
    from plurel_ray.pipeline.pretrain_data import source_target_sem_type
    from plurel_ray.pipeline.pretrain_eval import EVAL_SEED
    from plurel_ray.store.sampler import Sampler
    from plurel_ray.train.baselines import beats_baseline
    from plurel_ray.train.evaluate import capped_batches, item_metrics, predict_items
    from plurel_ray.train.expectations import warn_context_rules
    from plurel_ray.train.precision import resolve_device, resolve_precision

    warn_context_rules(pretrained.path, [source.store for source in sources])
    ctx_len = pretrained.ctx_len
    device = resolve_device("auto")
    model = pretrained.model.to(device).eval()
    precision = resolve_precision("auto", device)
    rows = []
    bar = tqdm(sources, desc="evaluate", unit="task", file=sys.stderr,
               disable=None if request.progress else True)  # fmt: skip
    for source in bar:
        sem_type = source_target_sem_type(source)
        row = {"dataset": Path(source.store).name, "task": source.label, "split": request.split,
               "target": sem_type}  # fmt: skip
        try:
            sampler = Sampler([source], batch_size=EVAL_BATCH_SIZE, ctx_len=ctx_len,
                              seed=EVAL_SEED)  # fmt: skip
        except EmptySourceError:
            rows.append({**row, "items": 0, "note": f"no items in the {request.split} split"})
            continue
        batches = capped_batches(sampler, request.max_items)
        items = predict_items(model, batches, sampler.embedding_matrix(), sem_type, precision)
        row.update(item_metrics(items, sem_type))
        row.update(_baseline(source, sem_type, items))
        row["beats"] = beats_baseline(row)
        rows.append(row)
    return rows


def _baseline(source: Source, sem_type: str, items: ItemPredictions) -> dict:
    """The baseline's scores on `items`, fitted on `source`'s train split."""
    from plurel_ray.train.baselines import mean_baseline, prior_baseline, train_targets

    train = train_targets(source, sem_type)
    if sem_type == "boolean":
        result = prior_baseline(train, items.labels, items.predictions)
    else:
        result = mean_baseline(train, items.labels)
    if not len(train):
        result["note"] = "no items in the train split: no baseline"
    return result


def checkpoint_label(request: EvaluationRequest) -> str:
    """A folder name for the checkpoint: `<run>-<step folder>`, the `.pt` file's stem, or
    the Hub repo id with `/` and `@` replaced."""
    path = Path(request.checkpoint).expanduser()
    if path.is_dir():
        path = path.resolve()
        return f"{path.parent.name}-{path.name}"
    if path.is_file():
        return path.stem
    return re.sub(r"[/@]", "--", request.checkpoint)


def summary_rows(rows: Sequence[dict]) -> list[dict]:
    """One row per dataset: items summed, scores averaged over its tasks where defined,
    and `beats` as "k/n", the tasks whose model beats its baseline out of those judged.

    Args:
        rows: the task rows of `score_tasks`.
    """
    by_dataset: dict[str, list[dict]] = {}
    for row in rows:
        by_dataset.setdefault(row["dataset"], []).append(row)
    summaries = []
    for dataset, group in by_dataset.items():
        summary = {"dataset": dataset, "task": f"(mean of {len(group)})",
                   "split": group[0]["split"], "items": sum(r["items"] for r in group)}  # fmt: skip
        for key in _SCORES:
            values = [r[key] for r in group if _finite(r.get(key))]
            if values:
                summary[key] = sum(values) / len(values)
        judged = [r["beats"] for r in group if r.get("beats") is not None]
        summary["beats"] = f"{sum(judged)}/{len(judged)}"
        summaries.append(summary)
    return summaries


def write_reports(rows: Sequence[dict], out: Path, split: str, checkpoint: str) -> list[str]:
    """Write `<out>/eval_<split>.csv` (CSV_COLUMNS) and `<out>/eval_<split>.md`.

    Args:
        rows: task rows then summary rows.
        out: the folder (created).
        split: the split scored, in the file names.
        checkpoint: as the user named it, in the Markdown title.

    Returns:
        the Markdown report's lines.
    """
    out.mkdir(parents=True, exist_ok=True)
    with (out / f"eval_{split}.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS, restval="", extrasaction="ignore")
        writer.writeheader()
        writer.writerows({**row, "beats": _yes_no(row.get("beats"))} for row in rows)
    lines = markdown_report(rows, split, checkpoint)
    (out / f"eval_{split}.md").write_text("\n".join(lines) + "\n")
    return [*lines, "", f"-> {out / f'eval_{split}.csv'}, {out / f'eval_{split}.md'}"]


def markdown_report(rows: Sequence[dict], split: str, checkpoint: str) -> list[str]:
    """The report: a title, what the columns mean, one table row per task and per
    dataset (bold), and one sentence per dataset saying whether the model beats the
    baselines.

    Args:
        rows: task rows then summary rows.
        split: the split scored.
        checkpoint: as the user named it.
    """
    lines = [
        f"# {checkpoint} on the {split} split",
        "",
        "Binary tasks: the model's AUROC and log-loss (nats) next to the train split's class "
        "prior (its AUROC is 0.5; the prior is the constant with the least log-loss). "
        "Regression tasks (standardised values): the model's R² and MAE next to the train "
        "split's mean (the constant with the least squared error). `beats`: the model scores "
        "better than the baseline on the baseline's own score (log-loss, R²).",
        "",
        "| " + " | ".join(header for header, _ in _TABLE) + " |",
        "|" + "---|" * len(_TABLE),
    ]
    for row in rows:
        cells = [_cell(row.get(key), key) for _, key in _TABLE]
        if row["task"].startswith("(mean"):
            cells = [f"**{c}**" if c else c for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines += [_sentence(row) for row in rows if row["task"].startswith("(mean")]
    return lines


_SCORES = ("loss", "auroc", "logloss", "prior_auroc", "prior_logloss", "r2", "mae", "mean_r2",
           "mean_mae")  # fmt: skip
_TABLE = (
    ("dataset", "dataset"), ("task", "task"), ("items", "items"), ("loss", "loss"),
    ("AUROC", "auroc"), ("prior AUROC", "prior_auroc"), ("log-loss", "logloss"),
    ("prior log-loss", "prior_logloss"), ("prior", "prior"), ("R²", "r2"),
    ("mean R²", "mean_r2"), ("MAE", "mae"), ("mean MAE", "mean_mae"), ("beats", "beats"),
    ("note", "note"),
)  # fmt: skip


def _sentence(summary: dict) -> str:
    """One line: whether the model beats the baselines on a dataset, and by how much."""
    won, judged = summary["beats"].split("/")
    parts = []
    if "auroc" in summary or "logloss" in summary:
        parts.append(f"binary: mean AUROC {_cell(summary.get('auroc'))} vs 0.5, log-loss "
                     f"{_cell(summary.get('logloss'))} vs prior "
                     f"{_cell(summary.get('prior_logloss'))}")  # fmt: skip
    if "r2" in summary or "mean_r2" in summary:
        parts.append(f"regression: mean R² {_cell(summary.get('r2'))} vs train mean "
                     f"{_cell(summary.get('mean_r2'))}, MAE {_cell(summary.get('mae'))} vs "
                     f"{_cell(summary.get('mean_mae'))}")  # fmt: skip
    detail = f" ({'; '.join(parts)})" if parts else ""
    tasks = f"{won} of {judged} tasks"
    return f"- {summary['dataset']}: the model beats the baseline on {tasks}{detail}"


def _cell(value: object, key: str = "") -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return _yes_no(value)
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.3f}" if key == "prior" else f"{value:.4f}"
    return str(value)


def _yes_no(value: object) -> object:
    """A task row's `beats` as yes/no/empty; a summary's "k/n" as it is."""
    return value if isinstance(value, str) else {True: "yes", False: "no", None: ""}[value]


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value)
