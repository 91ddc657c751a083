"""`zeroflow` command line: one sub-command per entry point of the package."""
from __future__ import annotations

import argparse
import json
import sys


def _optimizers(args: argparse.Namespace) -> int:
    from zeroflow_core.optim import OPTIMIZERS

    width = max(map(len, OPTIMIZERS))
    for spec in OPTIMIZERS.values():
        kind = "forward passes" if spec.forward_pass_only else "backprop"
        print(f"{spec.name:<{width}}  [{kind}]  {spec.summary}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from zeroflow_core.bench import BenchmarkError, format_table, run_benchmark

    try:
        rows = run_benchmark(args.model, args.optimizers.split(","), args.batch_size, args.steps, q=args.q,
                             threads=args.threads, warmup=args.warmup, depth=args.depth, attention=args.attention)
    except BenchmarkError as error:
        print(f"zeroflow bench: error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(rows, indent=2) if args.json else format_table(rows))
    return 0


def _bench_stage(args: argparse.Namespace) -> int:
    from zeroflow_core.bench import stage_overhead
    from zeroflow_core.params import execution, load_params, stage_folder

    settings = execution(load_params(args.params))
    method, _, dataset = args.stage.partition("@")[2].partition("-")
    row = stage_overhead(args.stage, stage_folder(method, dataset), settings["workers"])
    print(f"{row['stage']}: {row['cells']} cells on {row['workers']} local workers: wall {row['wall_s']:.1f} s, "
          f"the cells' own {row['cells_own_s']:.1f} s, fixed cost {row['fixed_per_cell_s']:.2f} s per cell")
    return 0


def _train(args: argparse.Namespace) -> int:
    from zeroflow_core.config import parse_overrides, resolve_config
    from zeroflow_core.train import train

    overrides = parse_overrides(args.set)
    for key in ("profile", "method", "optimizer", "dataset", "seed"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    result = train(resolve_config(overrides), args.out)
    print(f"avg_acc {result['avg_acc']:.2f}  last_acc {result['last_acc']:.2f}  "
          f"forgetting {result['forgetting']:.2f}  -> {args.out}/metrics.json")
    return 0


def _pretrain(args: argparse.Namespace) -> int:
    from zeroflow_core.pretrain import pretrain

    result = pretrain(args.out, backbone=args.backbone, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                      seed=args.seed, n_classes=args.classes, threads=args.threads, grayscale=args.grayscale)
    print(f"pretext test accuracy {result['pretext_test_accuracy']:.1f}% -> {args.out}/backbone.pt")
    return 0


def _check_params(args: argparse.Namespace) -> int:
    from zeroflow_core.io import write_atomically
    from zeroflow_core.params import grid_cells, load_params

    params = load_params(args.params)
    if args.out:  # constant content: each later stage declares the sections it reads, not this marker
        write_atomically(args.out, lambda tmp: tmp.write_text("params.yaml checked\n"))
    print(f"{args.params}: ok ({len(list(grid_cells(params)))} runs in the grid)")
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from zeroflow_core.config import NO_OPTIMIZER
    from zeroflow_core.data.manifest import dataset_manifest
    from zeroflow_core.io import write_json
    from zeroflow_core.params import load_params, run_config

    params = load_params(args.params)
    grid = params["grid"]
    config = run_config(params, grid["baseline"], NO_OPTIMIZER, args.dataset, grid["seeds"][0])
    manifest = dataset_manifest(args.dataset, config["data_root"], **config["dataset_options"])
    write_json(args.out, manifest)
    counts = ", ".join(f"{s} {v['images']} images" for s, v in manifest["splits"].items())
    print(f"{args.dataset}: {counts}, {manifest['splits']['train']['classes']} classes -> {args.out}")
    return 0


def _stage_train(args: argparse.Namespace) -> int:
    from zeroflow_core import stages
    from zeroflow_core.params import load_params

    folder, ran = stages.train(load_params(args.params), args.method, args.dataset)
    print(f"{folder}/: {len(ran)} cells run")
    return 0


def _search_lr(args: argparse.Namespace) -> int:
    from zeroflow_core.io import write_atomically
    from zeroflow_core.lr_search import TOLERANCE, search
    from zeroflow_core.params import load_params

    params = load_params(args.params)
    optimizers = args.optimizers.split(",") if args.optimizers else params["grid"]["optimizers"]
    table = search(params, args.method, args.dataset, optimizers, [float(v) for v in args.lrs.split(",")], args.seed)
    wide = table.pivot(index="optimizer", columns="lr", values="avg_acc").loc[optimizers].round(2)
    wide.columns = [f"{lr:g}" for lr in wide.columns]
    wide["best"] = [f"{lr:g}" for lr in table[table.best].groupby("optimizer").lr.first().loc[optimizers]]
    wide["chosen"] = [f"{lr:g}" for lr in table[table.chosen].groupby("optimizer").lr.first().loc[optimizers]]
    print(f"average accuracy of {args.method} on {args.dataset}, seed {args.seed}, per optimizer and learning rate;")
    print(f"chosen: the largest lr within {TOLERANCE:g} point of the optimizer's best")
    print(wide.to_string())
    if args.out:
        write_atomically(args.out, lambda tmp: table.to_csv(tmp, index=False))
    return 0


def _stage_pretrain(args: argparse.Namespace) -> int:
    from zeroflow_core.params import load_params
    from zeroflow_core.pretrain import pretrain

    settings = load_params(args.params)["pretrain"]
    result = pretrain(args.out, epochs=settings.get("epochs", 10), n_classes=settings.get("classes", 64),
                      seed=settings.get("seed", 0), threads=settings.get("threads", 0),
                      grayscale=settings.get("grayscale", False))
    print(f"pretext test accuracy {result['pretext_test_accuracy']:.1f}% -> {args.out}/backbone.pt")
    return 0


def _stage_ablation(args: argparse.Namespace) -> int:
    from zeroflow_core import stages
    from zeroflow_core.params import load_params

    folder, ran = stages.sweep(load_params(args.params), args.name)
    print(f"sweep {args.name} -> {folder}/: {len(ran)} cells run")
    return 0


def _stage_efficiency(args: argparse.Namespace) -> int:
    from zeroflow_core.bench import BenchmarkError, format_table, run_benchmark
    from zeroflow_core.io import write_json
    from zeroflow_core.params import EFFICIENCY_DIR, efficiency_pairs, load_params

    params = load_params(args.params)
    pairs, settings = efficiency_pairs(params, args.model)
    section = params["efficiency"]
    try:
        rows = run_benchmark(args.model, pairs, settings["batch_size"], settings["steps"], threads=section["threads"],
                             warmup=settings["warmup"], attention=section["attention"])
    except BenchmarkError as error:
        print(f"zeroflow stage-efficiency: error: {error}", file=sys.stderr)
        return 1
    out = EFFICIENCY_DIR / f"{args.model}.json"
    write_json(out, rows)
    print(format_table(rows))
    print(f"-> {out}")
    return 0


def _notebook(args: argparse.Namespace) -> int:
    from zeroflow_core.params import load_params
    from zeroflow_core.report import execute_notebook

    path = execute_notebook(args.name, load_params(args.params), args.params)
    print(f"executed -> {path}")
    return 0


def _book(args: argparse.Namespace) -> int:
    from zeroflow_core.book import build_book
    from zeroflow_core.params import load_params

    index = build_book(load_params(args.params), args.params)
    print(f"book: {index.resolve()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zeroflow", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("optimizers", help="list the optimizer registry").set_defaults(run=_optimizers)

    train = commands.add_parser("train", help="one continual-learning run (resumes if interrupted)")
    train.add_argument("--method")
    train.add_argument("--optimizer")
    train.add_argument("--dataset")
    train.add_argument("--profile")
    train.add_argument("--seed", type=int)
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a configuration key (dotted for sections: optimizer_hyper.lr=1e-3)")
    train.add_argument("--out", required=True, help="run folder (metrics.json, checkpoint, dvclive logs)")
    train.set_defaults(run=_train)

    pre = commands.add_parser("pretrain", help="pretrain the smoke profile's small backbone on the pretext set")
    pre.add_argument("--out", required=True)
    pre.add_argument("--backbone", default="vit-smoke")
    pre.add_argument("--epochs", type=int, default=10)
    pre.add_argument("--batch-size", type=int, default=64)
    pre.add_argument("--lr", type=float, default=1e-3)
    pre.add_argument("--classes", type=int, default=64)
    pre.add_argument("--seed", type=int, default=0)
    pre.add_argument("--threads", type=int, default=0)
    pre.add_argument("--grayscale", action="store_true", help="pretrain on grey images (the smoke book's backbone)")
    pre.set_defaults(run=_pretrain)

    # Pipeline stages (dvc.yaml): each reads params.yaml through zeroflow_core.params (zeroflow_core.stages).
    check = commands.add_parser("check-params", help="validate params.yaml (first stage of the pipeline)")
    check.add_argument("--params", default="params.yaml")
    check.add_argument("--out", help="write a marker file when valid (the stage's output)")
    check.set_defaults(run=_check_params)
    prepare = commands.add_parser("prepare", help="check a dataset of the grid and record its fingerprint")
    prepare.add_argument("dataset")
    prepare.add_argument("--params", default="params.yaml")
    prepare.add_argument("--out", required=True)
    prepare.set_defaults(run=_prepare)
    stage = commands.add_parser("stage-train", help="every optimizer × seed of one method and dataset of the "
                                "params.yaml grid into runs/train/<method>-<dataset>/")
    for name in ("method", "dataset"):
        stage.add_argument(name)
    stage.add_argument("--params", default="params.yaml")
    stage.set_defaults(run=_stage_train)
    lr = commands.add_parser("search-lr", help="the smoke profile's learning-rate search: one method, one dataset, "
                             "seed 0, every optimizer × learning rate")
    lr.add_argument("--method", default="ease")
    lr.add_argument("--dataset", default="hues")
    lr.add_argument("--seed", type=int, default=0)
    lr.add_argument("--optimizers", help="comma-separated (default: grid.optimizers of params.yaml)")
    lr.add_argument("--lrs", default="1e-4,3e-4,1e-3,3e-3,1e-2,3e-2,0.1,0.3")
    lr.add_argument("--out", help="also write the table as CSV")
    lr.add_argument("--params", default="params.yaml")
    lr.set_defaults(run=_search_lr)
    stage_pre = commands.add_parser("stage-pretrain", help="pretrain with the settings of params.yaml")
    stage_pre.add_argument("--params", default="params.yaml")
    stage_pre.add_argument("--out", default="runs/pretrain")
    stage_pre.set_defaults(run=_stage_pretrain)
    ablation = commands.add_parser("stage-ablation", help="all runs of one sweep of params.yaml (figure 5, tables 3-4)")
    ablation.add_argument("name", help="a sweep of ablations.sweeps: query_budget, history, sparsity, ...")
    ablation.add_argument("--params", default="params.yaml")
    ablation.set_defaults(run=_stage_ablation)
    efficiency = commands.add_parser("stage-efficiency", help="Table 2's bench measurements for one model of params.yaml")
    efficiency.add_argument("model")
    efficiency.add_argument("--params", default="params.yaml")
    efficiency.set_defaults(run=_stage_efficiency)
    notebook = commands.add_parser("notebook", help="execute notebooks/NAME.ipynb with papermill into results/NAME/")
    notebook.add_argument("name")
    notebook.add_argument("--params", default="params.yaml")
    notebook.set_defaults(run=_notebook)
    book = commands.add_parser("book", help="build the versioned HTML book from the executed notebooks")
    book.add_argument("--params", default="params.yaml")
    book.set_defaults(run=_book)
    bench = commands.add_parser("bench", help="memory and time of one optimizer step, each optimizer in a fresh process")
    bench.add_argument("--model", default="vit-tiny", help="vit-tiny (32 px) or vit-b16 (224 px)")
    bench.add_argument("--optimizers", required=True, help="comma-separated registry names, e.g. zo-sgd,fo-sgd")
    bench.add_argument("--batch-size", type=int, default=32)
    bench.add_argument("--steps", type=int, default=5, help="timed steps (the median is reported)")
    bench.add_argument("--q", type=int, default=None, help="query budget for the optimizers that take one")
    bench.add_argument("--threads", type=int, default=2, help="torch threads in each worker")
    bench.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    bench.add_argument("--attention", choices=["explicit", "fused"], default="explicit",
                       help="explicit: softmax(q·kᵀ)·v as the official backbone (default); fused: timm's kernel")
    bench.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    bench.add_argument("--depth", type=int, default=None, help=argparse.SUPPRESS)  # tests: fewer blocks
    bench.set_defaults(run=_bench)
    bench_stage = commands.add_parser("bench-stage", help="fixed cost per cell of a train stage: rerun all its "
                                      "cells with `dvc repro` and take their own time from the wall time")
    bench_stage.add_argument("stage", help="a train stage of dvc.yaml, e.g. train@ease-hues")
    bench_stage.add_argument("--params", default="params.yaml")
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
