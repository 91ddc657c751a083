"""`zeroflow` command line: one sub-command per entry point of the package."""

from __future__ import annotations

import argparse
import json
import sys

DESCRIPTION = """ZeroFlow companion: forward-pass-only (zeroth-order) optimizers fine-tuning pretrained vision
transformers in class-incremental continual learning. `train` runs one method × optimizer × dataset;
`dvc repro` runs the whole benchmark through the stage-* and notebook sub-commands (the book's Guide, "The pipeline": book/guide-pipeline.md)."""


def _optimizers(args: argparse.Namespace) -> int:
    from zeroflow_core.optim import OPTIMIZERS, optimizer_spec
    from zeroflow_core.settings import help_lines

    if args.name:
        spec = optimizer_spec(args.name)
        print(f"{spec.name} ({spec.family}): {spec.summary}\nhyper-parameters (--set optimizer_hyper.NAME=VALUE, "
              f"or params.yaml's optimizers.{spec.name}):\n{help_lines(spec.settings)}")
        return 0
    width, family_width = max(map(len, OPTIMIZERS)), max(len(spec.family) for spec in OPTIMIZERS.values())
    for name, spec in OPTIMIZERS.items():
        print(f"{name:<{width}}  {spec.family:<{family_width}}  {spec.summary}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from zeroflow_core.run.bench import BenchmarkError, format_batching, format_table, run_batching, run_benchmark

    qs = [int(q) for q in args.q.split(",")] if args.q else [None]
    try:
        if args.batched:
            rows = run_batching(args.model, args.optimizers.split(","), args.batch_size, args.steps,
                                [q or 1 for q in qs], threads=args.threads, warmup=args.warmup, depth=args.depth,
                                attention=args.attention, memory=not args.no_memory)
            print(json.dumps(rows, indent=2) if args.json else format_batching(rows))
            return 0
        rows = [row for q in qs for row in run_benchmark(
            args.model, args.optimizers.split(","), args.batch_size, args.steps, q=q, threads=args.threads,
            warmup=args.warmup, depth=args.depth, attention=args.attention)]
    except BenchmarkError as error:
        print(f"zeroflow bench: error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(rows, indent=2) if args.json else format_table(rows))
    return 0


def _bench_stage(args: argparse.Namespace) -> int:
    from zeroflow_core.pipeline.cells import execution, stage_folder
    from zeroflow_core.pipeline.params import load_params
    from zeroflow_core.run.bench import stage_overhead

    settings = execution(load_params(args.params))
    method, _, dataset = args.stage.partition("@")[2].partition("-")
    row = stage_overhead(args.stage, stage_folder(method, dataset), settings["workers"])
    print(f"{row['stage']}: {row['cells']} cells on {row['workers']} local workers: wall {row['wall_s']:.1f} s, "
          f"the cells' own {row['cells_own_s']:.1f} s, fixed cost {row['fixed_per_cell_s']:.2f} s per cell")
    return 0


def _budget(args: argparse.Namespace) -> int:
    from zeroflow_core.pipeline.budget import dataset_sizes, grid_budget, measured_seconds_per_image
    from zeroflow_core.pipeline.params import load_params

    sizes = dataset_sizes()
    for pair in filter(None, args.images.split(",")):
        name, _, count = pair.partition("=")
        sizes[name] = int(count)
    rows = grid_budget(load_params(args.params), sizes, measured_seconds_per_image(args.model))
    print(f"{'method':<10}{'optimizer':<18}{'dataset':<15}{'runs':>5}{'steps/run':>11}{'forwards':>15}"
          f"{'backwards':>14}{'jvps':>14}{'GPU-hours':>11}")
    groups: dict = {}
    for row in rows:
        groups.setdefault((row["method"], row["optimizer"], row["dataset"]), []).append(row)
    for (method, optimizer, dataset), part in groups.items():
        hours = None if part[0]["hours"] is None else sum(r["hours"] for r in part)
        print(f"{method:<10}{optimizer:<18}{dataset:<15}{len(part):>5}{part[0]['steps']:>11,}"
              + "".join(f"{sum(r[k] for r in part):>{w},}" for k, w in
                        (("image_forwards", 15), ("image_backwards", 14), ("image_jvps", 14)))
              + (f"{hours:>11.1f}" if hours is not None else f"{'-':>11}"))
    total = {k: sum(r[k] for r in rows) for k in ("image_forwards", "image_backwards", "image_jvps")}
    measured = [r["hours"] for r in rows if r["hours"] is not None]
    print(f"total: {len(rows)} runs, {total['image_forwards']:,} image-forwards, {total['image_backwards']:,} "
          f"image-backwards, {total['image_jvps']:,} image-jvps"
          + (f", {sum(measured):.0f} GPU-hours for the {len(measured)} runs with a measured step ({args.model})"
             if measured else f"; no GPU-hours: runs/efficiency/{args.model}.json has no step measured on a GPU "
                              f"(run `dvc repro efficiency@{args.model}` there)"))
    return 0


def _plots(args: argparse.Namespace) -> int:
    from zeroflow_core.book.plots import show

    print(f"plots: {show(args.out).resolve()}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from zeroflow_core.methods import METHODS
    from zeroflow_core.run.config import IDENTITY_KEYS, Layer, parse_overrides, resolve
    from zeroflow_core.run.train import train

    if METHODS[args.method].trains and args.optimizer is None:
        raise ValueError(f"--optimizer is required: {args.method} trains (see `zeroflow optimizers`)")
    run = {key: getattr(args, key) for key in IDENTITY_KEYS if getattr(args, key) is not None}
    resolved = resolve(run, [Layer("--set", parse_overrides(args.set))])
    result = train(resolved.config, args.out, set_by=resolved.set_by)
    print(f"avg_acc {result['avg_acc']:.2f}  last_acc {result['last_acc']:.2f}  "
          f"forgetting {result['forgetting']:.2f}  -> {args.out}/metrics.json")
    return 0


def _pretrain(args: argparse.Namespace) -> int:
    from zeroflow_core.run.pretrain import pretrain

    result = pretrain(args.out, backbone=args.backbone, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                      seed=args.seed, n_classes=args.classes, threads=args.threads, grayscale=args.grayscale)
    print(f"pretext test accuracy {result['pretext_test_accuracy']:.1f}% -> {args.out}/backbone.pt")
    return 0


def _check_params(args: argparse.Namespace) -> int:
    from zeroflow_core.book.pages import check_pages_against
    from zeroflow_core.io import write_atomically
    from zeroflow_core.pipeline.cells import grid_cells
    from zeroflow_core.pipeline.params import load_params, missing_inputs

    params = load_params(args.params)
    check_pages_against(params, args.params)
    missing = missing_inputs(params)
    if missing:  # all at once: a user with several datasets to fetch learns it before the first
        print(f"zeroflow check-params: error: {len(missing)} input{'s' if len(missing) > 1 else ''} of the grid "
              f"{'are' if len(missing) > 1 else 'is'} missing (the Guide, \"Datasets and weights\": book/guide-profiles.md):\n"
              + "\n".join(f"  - {line}" for line in missing), file=sys.stderr)
        return 2
    if args.out:  # constant content: each later stage declares the sections it reads, not this marker
        write_atomically(args.out, lambda tmp: tmp.write_text("params.yaml checked\n"))
    print(f"{args.params}: ok ({len(list(grid_cells(params)))} runs in the grid)")
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from zeroflow_core.data.manifest import dataset_manifest
    from zeroflow_core.io import write_json
    from zeroflow_core.pipeline.cells import run_config
    from zeroflow_core.pipeline.params import load_params
    from zeroflow_core.run.config import NO_OPTIMIZER

    params = load_params(args.params)
    grid = params["grid"]
    config = run_config(params, grid["baseline"], NO_OPTIMIZER, args.dataset, grid["seeds"][0])
    manifest = dataset_manifest(args.dataset, config["data_root"], **config["dataset_options"])
    write_json(args.out, manifest)
    counts = ", ".join(f"{s} {v['images']} images" for s, v in manifest["splits"].items())
    print(f"{args.dataset}: {counts}, {manifest['splits']['train']['classes']} classes -> {args.out}")
    return 0


def _stage_train(args: argparse.Namespace) -> int:
    from zeroflow_core.pipeline import stages
    from zeroflow_core.pipeline.lifetime import FolderBusy, exit_with_parent
    from zeroflow_core.pipeline.params import load_params

    exit_with_parent()  # no orphan cells when dvc dies
    try:
        folder, ran = stages.train(load_params(args.params), args.method, args.dataset)
    except FolderBusy as busy:
        print(f"zeroflow stage-train: error: {busy}", file=sys.stderr)
        return 1
    print(f"{folder}/: {len(ran)} cells run")
    return 0


def _search_lr(args: argparse.Namespace) -> int:
    from zeroflow_core.io import write_atomically
    from zeroflow_core.pipeline.lr_search import merge_searches, search, search_page
    from zeroflow_core.pipeline.params import load_params

    params = load_params(args.params)
    optimizers = args.optimizers.split(",") if args.optimizers else params["grid"]["optimizers"]
    table = search(params, args.method, args.dataset, optimizers, [float(v) for v in args.lrs.split(",")], args.seed)
    wide = table.assign(text=[f"{d:+.3f} / {a:.1f}" for d, a in zip(table.loss_drop, table.avg_acc)]).pivot(
        index="optimizer", columns="lr", values="text").loc[optimizers]
    wide.columns = [f"{lr:g}" for lr in wide.columns]
    wide["chosen"] = [f"{lr:g}" for lr in table[table.chosen].groupby("optimizer").lr.first().loc[optimizers]]
    print(f"mean per-task training-loss drop / average accuracy of {args.method} on {args.dataset}, seed {args.seed}, "
          "per optimizer and learning rate;\nchosen: the rate whose training loss falls most")
    print(wide.to_string())
    if args.out:  # an earlier search's rows of other optimizers are kept: one table for every optimizer
        table = merge_searches(args.out, table)
        write_atomically(args.out, lambda tmp: table.to_csv(tmp, index=False))
    if args.page:
        page = search_page(table, args.method, args.dataset, args.seed, "zeroflow search-lr")
        write_atomically(args.page, lambda tmp: tmp.write_text(page))
    return 0


def _stage_pretrain(args: argparse.Namespace) -> int:
    from zeroflow_core.models.pretrained import BACKBONE_FILE, seed_folder
    from zeroflow_core.pipeline.params import load_params
    from zeroflow_core.run.config import PRETRAIN_DEFAULTS
    from zeroflow_core.run.pretrain import pretrain

    params = load_params(args.params)
    if args.seed not in params["grid"]["seeds"]:  # its backbone would be one that no run loads
        raise ValueError(f"seed {args.seed} is not one of grid.seeds ({', '.join(map(str, params['grid']['seeds']))}) "
                         f"of {args.params}: the pipeline pretrains the backbone of each seed its runs use")
    settings = {**PRETRAIN_DEFAULTS, **params["pretrain"]}
    out = seed_folder(args.seed)
    result = pretrain(out, epochs=settings["epochs"], n_classes=settings["classes"], seed=args.seed,
                      threads=settings["threads"], grayscale=settings["grayscale"])
    print(f"seed {args.seed}: pretext test accuracy {result['pretext_test_accuracy']:.1f}% in "
          f"{result['seconds']:.0f} s -> {out / BACKBONE_FILE}")
    return 0


def _stage_ablation(args: argparse.Namespace) -> int:
    from zeroflow_core.pipeline import stages
    from zeroflow_core.pipeline.lifetime import FolderBusy, exit_with_parent
    from zeroflow_core.pipeline.params import load_params

    exit_with_parent()  # no orphan cells when dvc dies
    try:
        folder, ran = stages.sweep(load_params(args.params), args.name)
    except FolderBusy as busy:
        print(f"zeroflow stage-ablation: error: {busy}", file=sys.stderr)
        return 1
    print(f"sweep {args.name} -> {folder}/: {len(ran)} cells run")
    return 0


def _stage_efficiency(args: argparse.Namespace) -> int:
    from zeroflow_core.io import write_json
    from zeroflow_core.pipeline.params import load_params
    from zeroflow_core.run.bench import (EFFICIENCY_DIR, BenchmarkError, backprop_head_optimizers, batched_budgets,
                                         efficiency_pairs, format_batching, format_table, run_batching, run_benchmark)

    params = load_params(args.params)
    pairs, settings = efficiency_pairs(params["efficiency"], args.model)
    section = params["efficiency"]
    try:
        rows = run_benchmark(args.model, pairs, settings["batch_size"], settings["steps"], threads=section["threads"],
                             warmup=settings["warmup"], attention=section["attention"])
        hybrid = backprop_head_optimizers(section, args.model)
        if hybrid:
            rows += run_benchmark(args.model, hybrid, settings["batch_size"], settings["steps"],
                                  threads=section["threads"], warmup=settings["warmup"],
                                  attention=section["attention"], head_optimizer="backprop")
    except BenchmarkError as error:
        print(f"zeroflow stage-efficiency: error: {error}", file=sys.stderr)
        return 1
    out = EFFICIENCY_DIR / f"{args.model}.json"
    write_json(out, rows)
    print(format_table(rows))
    budgets = batched_budgets(section, args.model)
    batched = run_batching(args.model, ["zo-sgd"], settings["batch_size"], settings["steps"], budgets,
                           threads=section["threads"], warmup=settings["warmup"], attention=section["attention"]) \
        if budgets else []
    write_json(EFFICIENCY_DIR / f"{args.model}.batched.json", batched)
    if batched:
        print(format_batching(batched))
    print(f"-> {out}")
    return 0


def _notebook(args: argparse.Namespace) -> int:
    from zeroflow_core.book.report import execute_notebook
    from zeroflow_core.pipeline.params import load_params

    path = execute_notebook(args.name, load_params(args.params), args.params)
    print(f"executed -> {path}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from zeroflow_core.book.compare import compare

    return 0 if compare(args.other, args.this, args.tolerance, args.limit, args.json) else 1


def _book(args: argparse.Namespace) -> int:
    from zeroflow_core.book.build import build_book, prune_versions
    from zeroflow_core.pipeline.params import load_params

    if args.prune is not None:
        removed = prune_versions(args.site, args.prune)
        print(f"{args.site}: removed {len(removed)} version{'s' * (len(removed) != 1)}"
              + "".join(f"\n  {version}" for version in removed))
        return 0
    index = build_book(load_params(args.params), args.params)
    print(f"book: {index.resolve()}")
    return 0


PARAMS_HELP = "the pipeline's parameters file"


class _Help(argparse.RawDescriptionHelpFormatter):
    """Each option's help ends with its default, where it has one worth saying; epilogs keep their lines."""

    def _get_help_string(self, action):
        text = action.help or ""
        silent = action.default is None or action.default is False or action.default == [] \
            or action.default == argparse.SUPPRESS
        if not silent and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text


def _command(commands, name: str, help: str, epilog: str | None = None):
    return commands.add_parser(name, help=help, description=help, epilog=epilog, formatter_class=_Help)


def _train_epilog() -> str:
    """The settings `--set` takes, read from their declarations (config.RUN_SETTINGS, each method's settings)."""
    from zeroflow_core.methods import METHODS
    from zeroflow_core.run.config import IDENTITY_KEYS, RUN_SETTINGS
    from zeroflow_core.settings import help_lines

    run_keys = {key: setting for key, setting in RUN_SETTINGS.items() if key not in IDENTITY_KEYS}
    methods = "\n".join(f"  {name}:\n{help_lines(method.settings, '    ')}" if method.settings else f"  {name}: none"
                        for name, method in METHODS.items())
    return (f"run keys (--set KEY=VALUE; the defaults before the profile's, see profiles.yaml):\n"
            f"{help_lines(run_keys)}\n\nmethod settings (--set method_config.NAME=VALUE):\n{methods}\n\n"
            "optimizer hyper-parameters (--set optimizer_hyper.NAME=VALUE): `zeroflow optimizers NAME`")


def build_parser() -> argparse.ArgumentParser:
    from zeroflow_core.data import available_datasets
    from zeroflow_core.methods import METHODS
    from zeroflow_core.optim import OPTIMIZERS
    from zeroflow_core.run.config import PRETRAIN_SETTINGS, PROFILES

    from zeroflow_core import __version__

    parser = argparse.ArgumentParser(prog="zeroflow", description=DESCRIPTION, formatter_class=_Help)
    parser.add_argument("--version", action="version", version=f"zeroflow {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    listing = _command(commands, "optimizers", help="list the optimizers: name, family, what a step does; with a "
                       "name, its hyper-parameters with their defaults")
    listing.add_argument("name", nargs="?", help="an optimizer whose hyper-parameters to list")
    listing.set_defaults(run=_optimizers)

    train = _command(commands, "train", help="one continual-learning run (resumes if interrupted)",
                     epilog=_train_epilog())
    train.add_argument("--method", required=True, choices=list(METHODS),
                       help="continual-learning method (simplecil trains nothing: no --optimizer)")
    train.add_argument("--optimizer", choices=list(OPTIMIZERS), help="optimizer of the trained parameters "
                       "(`zeroflow optimizers`); required unless the method trains nothing")
    train.add_argument("--dataset", required=True, choices=available_datasets(),
                       help="continual dataset (generated sets need no files; book/guide-profiles.md: Datasets and weights)")
    train.add_argument("--profile", choices=list(PROFILES), default="smoke",
                       help="the defaults a run starts from (zeroflow_core/run/profiles.yaml)")
    train.add_argument("--seed", type=int, default=None,
                       help="seed of the run (data order, directions, init); default: the profile's (smoke 0, paper "
                            "1993, the official code's)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a configuration key (dotted for sections: optimizer_hyper.lr=1e-3)")
    train.add_argument("--out", required=True, help="run folder (metrics.json, checkpoint, dvclive logs)")
    train.set_defaults(run=_train)

    pre = _command(commands, "pretrain", help="pretrain the smoke profile's small backbone on the pretext set")
    pre.add_argument("--out", required=True, help="folder for backbone.pt and pretrain.json (a smoke run of seed k "
                     "loads runs/pretrain/seed<k>/backbone.pt: --seed k --out runs/pretrain/seed<k>)")
    for setting in PRETRAIN_SETTINGS.values():  # declared once, with the pipeline's pretrain stage
        flag = "--" + setting.name.replace("_", "-")
        if isinstance(setting.default, bool):
            pre.add_argument(flag, action="store_true", default=setting.default, help=setting.help)
        else:
            pre.add_argument(flag, type=type(setting.default), default=setting.default, help=setting.help,
                             **({"choices": list(setting.choices)} if setting.choices else {}))
    pre.set_defaults(run=_pretrain)

    # Pipeline stages (dvc.yaml): each reads params.yaml through pipeline.params (zeroflow_core.pipeline.stages).
    check = _command(commands, "check-params", help="validate params.yaml (first stage of the pipeline)")
    check.add_argument("--params", default="params.yaml", help=PARAMS_HELP)
    check.add_argument("--out", help="write a marker file when valid (the stage's output)")
    check.set_defaults(run=_check_params)
    prepare = _command(commands, "prepare", help="check a dataset of the grid and record its fingerprint")
    prepare.add_argument("dataset", help="a dataset of grid.datasets")
    prepare.add_argument("--params", default="params.yaml", help=PARAMS_HELP)
    prepare.add_argument("--out", required=True, help="the manifest file to write (JSON)")
    prepare.set_defaults(run=_prepare)
    stage = _command(commands, "stage-train", help="every optimizer × seed of one method and dataset of the "
                                "params.yaml grid into runs/train/<method>-<dataset>/")
    stage.add_argument("method", help="grid.baseline or a method of grid.methods")
    stage.add_argument("dataset", help="a dataset of grid.datasets")
    stage.add_argument("--params", default="params.yaml", help=PARAMS_HELP)
    stage.set_defaults(run=_stage_train)
    lr = _command(commands, "search-lr", help="the smoke profile's learning-rate search: one method, one dataset, "
                             "seed 0, every optimizer × learning rate")
    lr.add_argument("--method", default="ease", help="the method whose runs decide")
    lr.add_argument("--dataset", default="hues", help="the dataset they run on")
    lr.add_argument("--seed", type=int, default=0, help="the one seed of the search")
    lr.add_argument("--optimizers", help="comma-separated (default: grid.optimizers of params.yaml)")
    lr.add_argument("--lrs", default="1e-4,3e-4,1e-3,3e-3,1e-2,3e-2,0.1,0.3", help="comma-separated learning rates")
    lr.add_argument("--out", help="also write the table as CSV, keeping the rows of other optimizers it holds "
                    "(book/learning-rates.csv: the search behind the smoke profile's rates)")
    lr.add_argument("--page", help="also write the book's page of the search (Markdown), e.g. book/learning-rates.md")
    lr.add_argument("--params", default="params.yaml", help=PARAMS_HELP)
    lr.set_defaults(run=_search_lr)
    stage_pre = _command(commands, "stage-pretrain", help="pretrain the backbone of one seed with the settings of "
                         "params.yaml, into runs/pretrain/seed<SEED>/ (backbone.pt, pretrain.json)")
    stage_pre.add_argument("seed", type=int, help="a seed of grid.seeds: the runs of that seed load this backbone")
    stage_pre.add_argument("--params", default="params.yaml", help=PARAMS_HELP)
    stage_pre.set_defaults(run=_stage_pretrain)
    ablation = _command(commands, "stage-ablation", help="all runs of one sweep of params.yaml (figure 5, tables 3-4)")
    ablation.add_argument("name", help="a sweep of ablations.sweeps: query_budget, history, sparsity, ...")
    ablation.add_argument("--params", default="params.yaml", help=PARAMS_HELP)
    ablation.set_defaults(run=_stage_ablation)
    efficiency = _command(commands, "stage-efficiency", help="Table 2's bench measurements for one model of params.yaml")
    efficiency.add_argument("model", help="a model of efficiency.models")
    efficiency.add_argument("--params", default="params.yaml", help=PARAMS_HELP)
    efficiency.set_defaults(run=_stage_efficiency)
    notebook = _command(commands, "notebook", help="execute notebooks/NAME.ipynb with papermill into results/NAME/")
    notebook.add_argument("name", help="a page of the book: table_1, figure_2, ...")
    notebook.add_argument("--params", default="params.yaml", help=PARAMS_HELP)
    notebook.set_defaults(run=_notebook)
    book = _command(commands, "book", help="build the versioned HTML book from the executed notebooks")
    book.add_argument("--params", default="params.yaml", help=PARAMS_HELP)
    book.add_argument("--prune", type=int, metavar="N", help="build nothing: remove every version under SITE/versions/ "
                      "but the N newest and the one SITE/latest/ shows, and rewrite the index")
    book.add_argument("--site", default="site", help="the book's site folder (for --prune)")
    book.set_defaults(run=_book)
    comparing = _command(commands, "compare", help="every number and verdict of this build's book (results/) that "
                         "differs from another build's: exit 0 when verdicts agree and numbers within --tolerance",
                         epilog="OTHER: a folder (a clone that ran `dvc repro`, or a version of the published book: "
                         "site/versions/<id>/, site/latest/) or a git revision whose dvc.lock is committed and whose "
                         "outputs were pushed (its results come from the DVC remote; `dvc params diff` and `dvc metrics "
                         "diff` are shown first). The book's page Reproducibility says what a rebuild should expect.")
    comparing.add_argument("other", metavar="OTHER", help="the build to compare with: a folder or a git revision")
    comparing.add_argument("--this", default=".", help="this build's folder (holding results/)")
    comparing.add_argument("--tolerance", type=float, default=0.0,
                           help="list numbers that differ by more than this (absolute, in their own unit: points of "
                                "accuracy for most); verdicts are always compared exactly")
    comparing.add_argument("--limit", type=int, default=20, help="list at most this many differences of each kind")
    comparing.add_argument("--json", metavar="FILE", help="also write the comparison's summary as JSON")
    comparing.set_defaults(run=_compare)
    plots = _command(commands, "plots", help="`dvc plots show` on a page that works offline (the Vega libraries "
                     "inlined): each optimizer's loss and accuracy curves, one chart per method × dataset")
    plots.add_argument("--out", default="build/plots", help="folder for index.html")
    plots.set_defaults(run=_plots)
    bench = _command(commands, "bench", help="memory and time of one optimizer step, each optimizer in a fresh process")
    bench.add_argument("--model", default="vit-tiny", help="vit-tiny (32 px) or vit-b16 (224 px)")
    bench.add_argument("--optimizers", required=True, help="comma-separated registry names, e.g. zo-sgd,fo-sgd")
    bench.add_argument("--batch-size", type=int, default=32, help="images per step")
    bench.add_argument("--steps", type=int, default=5, help="timed steps (the median is reported)")
    bench.add_argument("--q", default=None, help="query budget(s) for the optimizers that take one, e.g. 1,4,8")
    bench.add_argument("--batched", action="store_true", help="each forward-pass optimizer one query per forward "
                       "against all queries in one forward, side by side (and each mode's peak memory)")
    bench.add_argument("--no-memory", action="store_true", help="with --batched: time only, no memory workers")
    bench.add_argument("--threads", type=int, default=2, help="torch threads in each worker")
    bench.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    bench.add_argument("--attention", choices=["explicit", "fused"], default="explicit",
                       help="explicit: softmax(q·kᵀ)·v as the official backbone (default); fused: timm's kernel")
    bench.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    bench.add_argument("--depth", type=int, default=None, help=argparse.SUPPRESS)  # tests: fewer blocks
    bench.set_defaults(run=_bench)
    budget = _command(commands, "budget", help="what the grid costs before it runs: steps and image-passes of each "
                      "run's training and, from Table 2's measured steps, GPU-hours")
    budget.add_argument("--params", default="params.yaml", help=PARAMS_HELP)
    budget.add_argument("--images", default="", help="training images per dataset, e.g. cifar100=50000 (default: "
                        "from data/prepared/<dataset>.json)")
    budget.add_argument("--model", default="vit-b16", help="the model of runs/efficiency/<model>.json whose "
                        "measured step times give the hours")
    budget.set_defaults(run=_budget)
    bench_stage = _command(commands, "bench-stage", help="fixed cost per cell of a train stage: rerun all its "
                                      "cells with `dvc repro` and take their own time from the wall time")
    bench_stage.add_argument("stage", help="a train stage of dvc.yaml, e.g. train@ease-hues")
    bench_stage.add_argument("--params", default="params.yaml", help=PARAMS_HELP)
    bench_stage.set_defaults(run=_bench_stage)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"zeroflow {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
