"""Prepare the node stores a training run reads: generate what is missing, preprocess, embed.

    data = prepare_synthetic(Path("data/run1"), seeds=range(8), holdout=1)
    data.train, data.held_out          # embedded node stores under data/run1/stores/
    stores = prepare_datasets({"rel-f1": Path("data/rel-f1")}, Path("runs"), progress=True)

The one place the jobs (`jobs/pretrain.py`, `continue_pretrain.py`, `baseline_pretrain.py`,
`scaling_law.py`) and the demo get their data from. Synthetic stores that already exist
are read as they are, without starting Ray; only when one is missing does the generation
pipeline run (on Ray: generate, preprocess and embed every seed, skipping complete
databases), so a rerun never pays for what an earlier run wrote. A packed run (a local
folder or `s3://…`) is read directly: the stores asked for are unpacked to a local cache
and embedded there (`packed_stores.py`); seeds it lacks are generated into it first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from plurel_ray.config import Config
from plurel_ray.errors import ConfigError, DatasetError, StoreError
from plurel_ray.pipeline.pretrain_data import STORES_DIR, split_holdout, synthetic_stores
from plurel_ray.store.meta import (
    DEFAULT_CONTEXT_RULES,
    DEFAULT_TEXT_MODEL,
    META_FILE,
    context_rules_of,
    read_meta,
)

if TYPE_CHECKING:
    from plurel_ray.pipeline.output import OutputRoot
    from plurel_ray.pipeline.run_summary import RunSummary
    from plurel_ray.predict.pretrained import Pretrained


@dataclass(frozen=True)
class PreparedData:
    """The node stores of a run, split into training and held-out stores.

    Attributes:
        train: the training stores, in seed (or natural name) order.
        held_out: the last `holdout` stores, for evaluation.
        generation: the generation run's summary when stores had to be generated,
            else None.
    """

    train: list[Path]
    held_out: list[Path]
    generation: RunSummary | None = None


def prepare_synthetic(
    data: Path | str,
    seeds: Sequence[int] | None,
    holdout: int | None,
    config: Config | None = None,
    *,
    progress: bool = True,
    say: Callable[[str], None] = print,
    before_generating: Callable[[], None] | None = None,
    context_rules: str | None = None,
    text_model: str | None = None,
) -> PreparedData:
    """The embedded node stores of `seeds` under `data/stores/`, generating, preprocessing
    and embedding them when any is missing; the last `holdout` are held out.

    Args:
        data: the data root (`generate --out`); stores in `data/stores/`. A packed run
            (a local folder or a URI) has its stores unpacked to a local cache instead
            (`packed_stores.cache_dir()`), and its missing seeds generated into it.
        seeds: the databases' seeds; None takes every store already under `data` (of a
            packed run: every complete database of its index).
        holdout: stores held out of training (None: 1 when there are ≥ 2, else 0).
        config: the generator config of missing databases (default: the prior's).
        progress: progress bars of the generation run.
        say: where the generation summary lines go.
        before_generating: called once generation is needed, before it starts (e.g.
            checking that the cluster fits the training run that follows).
        context_rules: the context rules of generated stores (None: the default,
            "reference"); when given, stores already there must have them.
        text_model: the encoder of generated stores (None: the default); when given,
            stores already there must be embedded with it.

    Raises:
        ConfigError: `holdout` out of range (checked before anything is generated), or
            stores already there have other context rules or another encoder than asked,
            or `data` is a URI of a folders run.
        DatasetError: a seed failed (rerun to retry it), no stores without `seeds`, or
            a packed run's shard is truncated or corrupt (the local cache is left as it was).
        StoreError: a store is unreadable or has no text embeddings.
    """
    packed = _packed_root(data)
    if packed is not None:
        return _prepare_packed(packed, seeds, holdout, config, progress=progress, say=say,
                               before_generating=before_generating,
                               context_rules=context_rules, text_model=text_model)  # fmt: skip
    data = Path(data)
    if seeds is None:
        stores = _matching(synthetic_stores(data), context_rules, text_model)
        return PreparedData(*split_holdout(stores, holdout))
    split_holdout(list(seeds), holdout)  # a bad holdout fails before generating
    from plurel_ray.pipeline.output import database_name

    names = [database_name(seed) for seed in seeds]
    try:
        stores = synthetic_stores(data, names)
    except (DatasetError, StoreError):
        pass  # some store is missing or not embedded: generate (complete ones are skipped)
    else:
        return PreparedData(*split_holdout(_matching(stores, context_rules, text_model), holdout))
    if before_generating is not None:
        before_generating()
    from plurel_ray.pipeline.generate import GenerationRequest, run_generation
    from plurel_ray.pipeline.output import OutputRoot

    request = GenerationRequest(seeds=seeds, out=str(data),
                                config=config or _recorded_config(OutputRoot(str(data))),
                                preprocess=True, embed=True,
                                context_rules=context_rules or DEFAULT_CONTEXT_RULES,
                                text_model=text_model or DEFAULT_TEXT_MODEL)  # fmt: skip
    summary = run_generation(request, progress=progress)
    for line in summary.lines():
        say(line)
    if summary.failed:
        raise DatasetError(f"{summary.failed} seed(s) failed (errors in {summary.index_path}); "
                           "rerun to retry them")  # fmt: skip
    return PreparedData(*split_holdout(synthetic_stores(data, names), holdout), summary)


def _packed_root(data: Path | str) -> OutputRoot | None:
    """The root of `data` when it is a packed run (or a URI holding no run yet, which a
    generation makes packed), else None.

    Raises:
        ConfigError: a URI of a folders run (the sampler reads local files only).
    """
    from plurel_ray.pipeline.output import OutputRoot
    from plurel_ray.pipeline.packed_stores import is_packed
    from plurel_ray.pipeline.run_record import read_record

    uri = "://" in str(data)
    if not uri and not Path(data).is_dir():
        return None
    root = OutputRoot(data)
    if is_packed(root):
        return root
    if uri and read_record(root) is not None:
        raise ConfigError(f"--data {root.uri}: a folders run can be read from local or "
                          "shared disk only; copy it there, or generate the run with "
                          "--layout packed")  # fmt: skip
    return root if uri else None


def _recorded_config(root: OutputRoot) -> Config:
    """The generator config an output was made with (its `_generation.json`), so that
    databases added to it without --config match the others; the prior's defaults for a
    new output."""
    from plurel_ray.pipeline.run_record import read_record

    recorded = (read_record(root) or {}).get("config")
    return Config.from_dict(recorded) if isinstance(recorded, dict) else Config()


def _prepare_packed(
    root: OutputRoot,
    seeds: Sequence[int] | None,
    holdout: int | None,
    config: Config | None,
    *,
    progress: bool,
    say: Callable[[str], None],
    before_generating: Callable[[], None] | None,
    context_rules: str | None,
    text_model: str | None,
) -> PreparedData:
    """`prepare_synthetic` of a packed run: generate the seeds it lacks into it (packed,
    with stores when the run has them; embedding happens at unpacking), then unpack and
    embed the stores asked for (`packed_stores.unpack_stores`)."""
    from plurel_ray.pipeline.output import database_name
    from plurel_ray.pipeline.packed_stores import complete_rows, unpack_stores
    from plurel_ray.pipeline.run_record import read_record

    record = read_record(root) or {}
    made_under = record.get("context_rules")
    if context_rules is not None and made_under is not None and made_under != context_rules:
        raise ConfigError(f"{root.uri}: its stores were made under context rules "
                          f"{made_under!r}, not --context-rules {context_rules}; pass "
                          f"--context-rules {made_under} or another --data")  # fmt: skip
    names = None if seeds is None else [database_name(seed) for seed in seeds]
    rows = complete_rows(root, names)
    summary = None
    if names is not None and len(rows) < len(names):
        if before_generating is not None:
            before_generating()
        from plurel_ray.pipeline.generate import GenerationRequest, run_generation

        rules = context_rules or DEFAULT_CONTEXT_RULES
        request = GenerationRequest(seeds=seeds, out=root.location,
                                    config=config or _recorded_config(root),
                                    layout="packed", preprocess=record.get("preprocess", True),
                                    context_rules=rules)  # fmt: skip
        summary = run_generation(request, progress=progress)
        for line in summary.lines():
            say(line)
        if summary.failed:
            raise DatasetError(f"{summary.failed} seed(s) failed (errors in "
                               f"{summary.index_path}); rerun to retry them")  # fmt: skip
        rows = complete_rows(root, names)
    if not rows:
        raise DatasetError(f"{root.uri}: no complete database in its index; generate some "
                           f"(`python jobs/generate.py --out {root.uri} --layout packed "
                           "--preprocess --num-dbs N`)")  # fmt: skip
    stores, _ = unpack_stores(root, list(rows.values()),
                              context_rules=context_rules or DEFAULT_CONTEXT_RULES,
                              text_model=text_model or DEFAULT_TEXT_MODEL, progress=progress,
                              say=say)  # fmt: skip
    stores = _matching(stores, context_rules, text_model)
    return PreparedData(*split_holdout(stores, holdout), summary)


def _matching(stores: list[Path], context_rules: str | None, text_model: str | None) -> list[Path]:
    """`stores`, checked to have the context rules and encoder asked for (None: any).

    Raises:
        ConfigError: a store has others, naming it, both values and the fix.
    """
    wanted_model = None
    if text_model is not None:
        from plurel_ray.store.encoder import text_model_name

        wanted_model = text_model_name(text_model)
    for store in stores:
        meta = read_meta(store)
        found = context_rules_of(meta)
        if context_rules is not None and found != context_rules:
            raise ConfigError(f"{store} was written under context rules {found!r}, not "
                              f"--context-rules {context_rules}; pass --context-rules {found} "
                              "or another --data")  # fmt: skip
        model = meta.get("embedding", {}).get("model")
        if wanted_model is not None and model != wanted_model:
            fix = f"plurel-ray embed {store.parent}/* --text-model {text_model}"
            raise ConfigError(f"{store} is embedded with {model}, not --text-model "
                              f"{wanted_model}; re-embed it ({fix}) or pass --text-model "
                              f"{model}")  # fmt: skip
    return stores


def prepare_datasets(
    datasets: dict[str, Path], storage: Path, progress: bool, text_model: str = DEFAULT_TEXT_MODEL
) -> dict[str, Path]:
    """Preprocess and embed each RelBench-3 dataset into `<storage>/<name>/stores/<name>`
    (`dataset_store`: a store already there must have been built from that folder as it
    is now).

    Args:
        datasets: dataset name → its folder (`pretrain_data.dataset_names`).
        storage: the runs' folder, which keeps the stores next to the runs.
        progress: the embedding progress bar.
        text_model: the encoder that embeds the stores (e.g. the one a checkpoint to be
            evaluated expects); stores embedded with it already are skipped.

    Returns:
        dataset name → its embedded node store.

    Raises:
        StoreError: a store of that name built from another folder, or from this folder
            before its files changed (naming both and the fix).
    """
    from plurel_ray.store import embed

    stores = {name: dataset_store(name, folder, storage) for name, folder in datasets.items()}
    embed(list(stores.values()), model=text_model, progress=progress)  # skips embedded ones
    return stores


def dataset_store(name: str, folder: Path, storage: Path) -> Path:
    """The node store of dataset `name` at `<storage>/<name>/stores/<name>`: built from
    `folder` when absent; when present, used only if it was built from that folder and
    its files as they are now (its recorded input hash) — so a command never reads
    another dataset's store, or a store of files changed since.

    Args:
        name: the dataset's (manifest) name.
        folder: its RelBench-3 folder.
        storage: the folder of the runs and stores.

    Raises:
        StoreError: a store of that name built from another folder, or from this folder
            before its files changed (naming both and the fix).
    """
    from plurel_ray.store import preprocess

    store = storage / name / STORES_DIR / name
    if (store / META_FILE).is_file():
        built_from = read_meta(store).get("source", {}).get("path")
        if built_from != str(folder.resolve()):
            raise StoreError(f"{store} holds dataset {name!r} built from {built_from}, not "
                             f"{folder}: two datasets share the name {name!r}; pass another "
                             f"--storage, or delete {store}")  # fmt: skip
    try:
        preprocess(folder, store.parent, name=name)  # the store there, if it matches
    except StoreError:
        if not (store / META_FILE).is_file():
            raise
        raise StoreError(f"{store} was built from {folder} before its tables or task folders "
                         f"changed, or under other context rules; delete {store} to rebuild "
                         "it") from None  # fmt: skip
    return store


def checkpoint_stores(
    datasets: dict[str, Path],
    storage: Path,
    pretrained: Pretrained,
    *,
    text_model: str | None = None,
    allow_encoder_mismatch: bool = False,
    progress: bool = True,
) -> dict[str, Path]:
    """The stores of `datasets` ready for a checkpoint to read (`plurel-ray evaluate`,
    `plurel-ray predict`): built when absent (`dataset_store`), embedded when not yet —
    with `text_model`, else the encoder the checkpoint records — and checked to hold text
    of the checkpoint's width and encoder. Stores embedded already are checked before
    anything is embedded, and never re-embedded.

    Args:
        datasets: dataset name → its folder.
        storage: the folder of the stores.
        pretrained: the checkpoint (`predict.pretrained.from_pretrained`).
        text_model: the encoder of stores embedded here (None: the checkpoint's).
        allow_encoder_mismatch: accept stores of another encoder (not another width).
        progress: the embedding progress bar.

    Raises:
        StoreError: a store of another folder or of changed files (`dataset_store`).
        EncoderMismatchError: stores of another text width, or another encoder.
    """
    from plurel_ray.store import embed
    from plurel_ray.train.expectations import check_text_encoder, check_text_width

    stores = {name: dataset_store(name, folder, storage) for name, folder in datasets.items()}

    def check() -> None:
        built = [store for store in stores.values() if _embedded(store)]
        check_text_width(str(pretrained.path), pretrained.d_text, built)
        check_text_encoder(str(pretrained.path), built, allow_mismatch=allow_encoder_mismatch)

    check()
    missing = [store for store in stores.values() if not _embedded(store)]
    if missing:
        encoder = text_model or pretrained.text_encoder or DEFAULT_TEXT_MODEL
        embed(missing, model=encoder, progress=progress)
        check()
    return stores


def _embedded(store: Path) -> bool:
    return bool(read_meta(store).get("embedding"))
