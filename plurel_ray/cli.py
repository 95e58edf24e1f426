"""The `plurel-ray` command: parse arguments, call the library, report in one line.

    plurel-ray generate --num-dbs 10 --out data/                 # data/plurel-0 ...
    plurel-ray generate --seed-offset 7 --config small.yaml --schema shop.sql --out data/
    plurel-ray generate --num-dbs 100 --out s3://bucket/run --ray --preprocess
    plurel-ray preprocess data/plurel-* --out stores/               # stores/plurel-0 ...
    plurel-ray preprocess data/rel-f1 --out stores/ --context-rules strict --embed
    plurel-ray embed stores/* --text-model sentence-transformers/all-MiniLM-L12-v2
    plurel-ray hub download org/plurel-rt --revision <sha> --out ckpt/
    plurel-ray hub download org/run --repo-type dataset --database plurel-7 --out dbs/
    plurel-ray runs verify data/ --repair         # hashes of every shard and database
    plurel-ray evaluate org/plurel-rt@<sha> --datasets data/rel-f1 --eval-split test
    plurel-ray import shop.sqlite --out data/shop              # a SQL database → a dataset
    plurel-ray tasks add data/shop shop-tasks.yaml             # its tasks, defined in YAML
    plurel-ray show-context stores/rel-f1 --task driver-dnf --item 3 --out ctx.png
    plurel-ray demo --out demo-runs/        # generate, pretrain, evaluate, report.md

Errors a user can cause (bad config, bad SQL, existing output, missing file, bad
arguments) print one line, ``plurel-ray: error: <message>``, and exit non-zero; Ctrl-C
exits 130. Anything else is a bug and keeps its traceback. The flags are the project's one
vocabulary (`plurel_ray.pipeline.flags`); parsing them imports neither Ray nor torch.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from plurel_ray import __version__
from plurel_ray.errors import ConfigError, PlurelError
from plurel_ray.pipeline.flags import (
    CHECKPOINT,
    CONTEXT_RULES,
    CONTEXT_SEED,
    CTX_LEN,
    DATASETS,
    DEFAULT_EVAL_SPLIT,
    EVAL_MAX_ITEMS,
    EVAL_SPLIT,
    MAX_BFS_WIDTH,
    OUT,
    PROGRESS,
    SPLIT,
    TASK,
    TASKS,
    TEXT_MODEL,
    VERBOSE,
    OneLineParser,
    add_store_arguments,
)
from plurel_ray.pipeline.generate_args import NUM_DBS, add_generate_arguments, run_from_args
from plurel_ray.pipeline.import_args import add_import_parsers
from plurel_ray.pipeline.predict_args import add_predict_parser
from plurel_ray.pipeline.runs_args import add_runs_parser
from plurel_ray.store.meta import DEFAULT_CONTEXT_RULES, DEFAULT_TEXT_MODEL

PROG = "plurel-ray"
EXIT_ERROR = 1
EXIT_USAGE = 2  # what OneLineParser exits with
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C


def _fail(message: str) -> None:
    # One line even when the message (e.g. a YAML parser's) spans several.
    print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `plurel-ray` command."""
    parser = OneLineParser(
        prog=PROG, description="Synthetic relational databases from the PluRel prior."
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    gen = commands.add_parser(
        "generate",
        help="generate databases: a RelBench-3 folder per seed, or shards of them",
        description="Generate the databases of the given seeds into OUT/plurel-<seed>/ "
        "(RelBench-3 dataset folders; with --layout packed, shards of whole folders in "
        "OUT/shards/) and OUT/_index.parquet; seeds the index lists as done are left out. "
        "Same pipeline as jobs/generate.py.",
    )
    add_generate_arguments(gen, ray_by_default=False)
    gen.set_defaults(run=run_from_args)
    pre = commands.add_parser(
        "preprocess",
        help="turn RelBench-3 dataset folders into node stores",
        description="Preprocess each dataset folder into a node store at OUT/<dataset name>.",
    )
    pre.add_argument("datasets", nargs="+", metavar="DATASET_DIR", help="dataset folders")
    OUT.add(pre, required=True, help="folder of the node stores, one OUT/<dataset name>/ each")
    # Not --tasks: that flag names a task suite in every command that has it.
    pre.add_argument("--task-names", dest="tasks", nargs="+", metavar="T",
                     help="tasks to include, by name (default: all of them)")  # fmt: skip
    pre.add_argument("--overwrite", action="store_true", help="replace existing stores")
    CONTEXT_RULES.add(pre, default=DEFAULT_CONTEXT_RULES)
    pre.add_argument("--embed", action="store_true",
                     help="also embed each store's vocabulary (as `plurel-ray embed`)")  # fmt: skip
    TEXT_MODEL.add(pre, help=f"{TEXT_MODEL.help}; implies --embed")
    PROGRESS.add(pre, default=True)
    pre.set_defaults(run=_preprocess)
    emb = commands.add_parser(
        "embed",
        help="embed the text vocabulary of node stores",
        description="Write text_emb.bin into each node store, the vectors of its vocabulary "
        "strings, and record the encoder in its meta.json; stores already embedded with "
        "this encoder are skipped. Strings are cached by (encoder, string) in "
        "$PLUREL_RAY_CACHE_DIR when set.",
    )
    emb.add_argument("stores", nargs="+", metavar="STORE_DIR", help="node store folders")
    TEXT_MODEL.add(emb)
    PROGRESS.add(emb, default=True)
    emb.set_defaults(run=_embed)
    hub = commands.add_parser("hub", help="download checkpoints and datasets from the Hub")
    hub_commands = hub.add_subparsers(dest="hub_command", required=True, metavar="HUB_COMMAND")
    down = hub_commands.add_parser(
        "download",
        help="download a checkpoint or dataset repo, or databases of a packed run",
        description="Download every file of a Hugging Face Hub repo at a revision into DIR; "
        "with --database, only those databases of a packed run's dataset repo (one range "
        "request each, sha256 checked) into DIR/<name>. The Hub is HF_ENDPOINT (default "
        "huggingface.co); the token is HF_TOKEN or the login of `hf auth login`.",
    )
    down.add_argument("repo", metavar="REPO", help="the repo id, org/name")
    down.add_argument("--revision", metavar="R", help="branch, tag or commit sha (default: main)")
    OUT.add(down, required=True, help="folder to download into")
    down.add_argument(
        "--repo-type", choices=("model", "dataset"), default=None,
        help="model (checkpoints, the default) or dataset (databases; implied by --database)",
    )  # fmt: skip
    down.add_argument(
        "--database", action="append", metavar="NAME", dest="databases",
        help="a database of a packed run, plurel-<seed> (repeat for more)",
    )  # fmt: skip
    down.set_defaults(run=_hub_download)
    _add_evaluate_parser(commands)
    _add_show_context_parser(commands)
    add_import_parsers(commands)
    add_predict_parser(commands)
    add_runs_parser(commands)
    demo = commands.add_parser(
        "demo",
        help="generate, pretrain, evaluate and report end to end",
        description="On an embedded local Ray (or RAY_ADDRESS; $PLUREL_RAY_NUM_CPUS logical "
        "CPUs, default 4): generate N small databases, pretrain the tiny recipe on all but "
        "the last, evaluate it on the last one's val split, and write OUT/demo-<time>/ with "
        "the data, checkpoint, metrics.jsonl, eval_val.csv and report.md.",
    )
    OUT.add(demo, default="demo-runs",
            help="where the run folder demo-<time>/ goes (default: ./%(default)s)")  # fmt: skip
    NUM_DBS.add(demo, default=6,
                help="databases to generate, the last held out (default: %(default)s)")  # fmt: skip
    demo.add_argument("--steps", type=int, default=300, metavar="S",
                      help="training steps (default: %(default)s)")  # fmt: skip
    PROGRESS.add(demo, default=True)
    VERBOSE.add(demo)
    demo.set_defaults(run=_demo)
    return parser


def _add_evaluate_parser(commands: argparse._SubParsersAction) -> None:
    ev = commands.add_parser(
        "evaluate",
        help="score a checkpoint zero-shot on datasets, next to trivial baselines",
        description="Score CHECKPOINT on the tasks of RelBench-3 datasets (datasets "
        "without a store under --storage are preprocessed and embedded first, with the "
        "checkpoint's text encoder), next to the train split's mean (regression) and class "
        "prior (binary) on the same items; print the table and write "
        "OUT/eval_<split>.csv and OUT/eval_<split>.md. Runs in this process, without Ray.",
    )
    CHECKPOINT.add(ev)
    DATASETS.add(ev, required=True)
    TASKS.add(ev)
    EVAL_SPLIT.add(ev, default=DEFAULT_EVAL_SPLIT,
                   help="the split scored (default: %(default)s; ask for test for the final "
                        "figure, so that choices made on it do not leak)")  # fmt: skip
    EVAL_MAX_ITEMS.add(ev, help="score the first N items of each task's split, in its fixed "
                                "evaluation order (default: every item)")  # fmt: skip
    OUT.add(ev, help="where eval_<split>.csv and .md go (default: ./evaluations/<checkpoint>)")
    add_store_arguments(ev)
    ev.set_defaults(run=_evaluate)


def _add_show_context_parser(commands: argparse._SubParsersAction) -> None:
    show = commands.add_parser(
        "show-context",
        help="draw one sampled context of a task's item",
        description="Sample the context of one item of a task, as the model sees it, and "
        "draw it into OUT (PNG): rows grouped by table, foreign-key edges, the target cell "
        "and masked cells, a few values per row (docs/contexts.md).",
    )
    show.add_argument("store", metavar="STORE", help="a node store folder")
    TASK.add(show, required=True)
    show.add_argument("--item", type=int, required=True, metavar="I",
                      help="the item number: its place among the split's rows holding the "
                           "target, in row order (as plurel-ray predict numbers them)")  # fmt: skip
    SPLIT.add(show, default="train")
    CONTEXT_SEED.add(show, default=0)
    CTX_LEN.add(show, default=1024)  # the sampler's defaults (tests/unit/test_show_context.py)
    MAX_BFS_WIDTH.add(show, default=128)
    OUT.add(show, required=True, help="the PNG to write")
    show.add_argument("--json", action="store_true",
                      help="also write the context's rows, tables and edges to OUT with the "
                           "suffix .json")  # fmt: skip
    show.set_defaults(run=_show_context)


def _show_context(args: argparse.Namespace) -> int:
    from plurel_ray.pipeline.show_context import show_context

    written = show_context(args.store, args.task, args.item, args.out, split=args.split,
                           seed=args.context_seed, ctx_len=args.ctx_len,
                           max_bfs_width=args.max_bfs_width, write_json=args.json)  # fmt: skip
    print("  ".join(str(path) for path in written))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from plurel_ray.pipeline.evaluate_checkpoint import EvaluationRequest, evaluate_checkpoint

    evaluate_checkpoint(EvaluationRequest(
        checkpoint=args.checkpoint, datasets=args.datasets, split=args.eval_split,
        tasks=args.tasks, out=args.out, storage=args.storage, max_items=args.eval_max_items,
        text_model=args.text_model, allow_encoder_mismatch=args.allow_encoder_mismatch,
        progress=args.progress,
    ))  # fmt: skip
    return 0


def _preprocess(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from plurel_ray.store.meta import read_meta
    from plurel_ray.store.preprocessing import preprocess

    start = time.perf_counter()
    # disable=None shows the bar only on a terminal.
    datasets = tqdm(args.datasets, desc="datasets", unit="db", file=sys.stderr,
                    disable=None if args.progress else True)  # fmt: skip
    stores = []
    for dataset in datasets:
        t0 = time.perf_counter()
        path = preprocess(dataset, args.out, args.tasks, overwrite=args.overwrite,
                          context_rules=args.context_rules)  # fmt: skip
        counts = read_meta(path)["counts"]
        tqdm.write(
            f"{path.name}  nodes={counts['nodes']:,}  cells={counts['cells']:,}  "
            f"{args.context_rules}  {time.perf_counter() - t0:.2f}s  -> {path}",
            file=sys.stdout,
        )
        stores.append(path)
    elapsed = time.perf_counter() - start
    print(f"total  stores={len(args.datasets)}  {elapsed:.2f}s  -> {Path(args.out).expanduser()}")
    if args.embed or args.text_model is not None:
        args.stores = stores
        return _embed(args)
    return 0


def _embed(args: argparse.Namespace) -> int:
    from plurel_ray.store.embedding import embed

    model = args.text_model if args.text_model is not None else DEFAULT_TEXT_MODEL
    report = embed(args.stores, model=model, progress=args.progress)
    print(f"embedded  stores={report.stores}  skipped={report.stores_skipped}  "
          f"strings={report.strings_encoded:,} encoded, {report.cache_hits:,} cached  "
          f"{report.model} ({report.dim}-d)  {report.seconds:.2f}s")  # fmt: skip
    return 0


def _hub_download(args: argparse.Namespace) -> int:
    from plurel_ray.hub.download import download, download_databases

    if args.databases and args.repo_type == "model":
        raise ConfigError("--database reads a packed run's dataset repo: pass --repo-type "
                          "dataset, or leave --database out to download a model repo")  # fmt: skip
    if args.databases:
        folders = download_databases(args.repo, args.databases, args.out, revision=args.revision)
        for name, folder in zip(args.databases, folders, strict=True):
            print(f"{args.repo}@{args.revision or 'main'}  {name} -> {folder}")
        return 0
    path = download(args.repo, revision=args.revision, local_dir=args.out,
                    repo_type=args.repo_type or "model")  # fmt: skip
    print(f"{args.repo}@{args.revision or 'main'}  -> {path}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from plurel_ray.pipeline.demo import run_demo

    try:
        run_demo(args.out, num_dbs=args.num_dbs, steps=args.steps, progress=args.progress)
    finally:
        from plurel_ray.pipeline.pretrain_args import close_ray

        close_ray()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `plurel-ray` command; returns the exit status.

    Args:
        argv: the arguments after the program name; default `sys.argv[1:]`.
    """
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help, --version and argument errors
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    try:
        return args.run(args)
    except KeyboardInterrupt:
        # write_dataset is atomic: an interrupted seed leaves no half-written folder.
        _fail("interrupted")
        return EXIT_INTERRUPTED
    except PlurelError as err:
        _fail(str(err))
        return EXIT_ERROR
    except OSError as err:  # unwritable --out, disk full, ...
        _fail(f"{err.filename}: {err.strerror}" if err.filename and err.strerror else str(err))
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
