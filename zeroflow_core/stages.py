"""The stages of dvc.yaml that run cells: `train@<method>-<dataset>` and `ablation@<sweep>`.

Each resolves its cells from params.yaml (zeroflow_core.cells) and gives them to the executor
(zeroflow_core.executor), which keeps the cells finished before and runs the rest.
"""
from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

from zeroflow_core.cells import (ABLATIONS_DIR, MATCHED_DIR, Cell, execution, matched_cells, stage_folder, sweep_cells,
                                 train_cells)
from zeroflow_core.config import ConfigError
from zeroflow_core.executor import run_cells
from zeroflow_core.io import write_atomically, write_json
from zeroflow_core.methods import METHODS

# `dvc metrics show` and `dvc plots show` read these (dvc.yaml): one file per method × dataset
METRICS_DIR = Path("runs/metrics")
PLOTS_DIR = Path("runs/plots")
SUMMARY_METRICS = ("avg_acc", "last_acc", "forgetting")


def train(params: dict, method: str, dataset: str, log=print) -> tuple[Path, list]:
    """The stage `train@<method>-<dataset>` (or the baseline's): its optimizer × seed cells."""
    grid = params["grid"]
    if method not in [grid["baseline"], *grid["methods"]] or dataset not in grid["datasets"]:
        raise ConfigError(f"train@{method}-{dataset} is not a stage of the grid of params.yaml")
    folder = stage_folder(method, dataset)
    cells = train_cells(params, method, dataset)
    ran = run_cells(folder, cells, execution(params), log=log)
    write_summaries(f"{method}-{dataset}", cells, curves=METHODS[method].trains)
    return folder, ran


def write_summaries(name: str, cells: list[Cell], curves: bool = True, metrics_dir: Path = METRICS_DIR,
                    plots_dir: Path = PLOTS_DIR) -> None:
    """Per optimizer, over the seeds: mean and sample std of the headline metrics (metrics_dir/<name>.json),
    and, with `curves` (a method that trains), the mean curves, one column per optimizer: training loss
    per step (plots_dir/loss/<name>.csv) and accuracy on the classes seen after each task
    (plots_dir/accuracy/<name>.csv)."""
    runs: dict[str, list[dict]] = {}
    for cell in cells:
        runs.setdefault(cell.config["optimizer"], []).append(json.loads((cell.out / "metrics.json").read_text()))
    summary = {}
    for optimizer, results in runs.items():
        row = {}
        for metric in SUMMARY_METRICS:
            values = [result[metric] for result in results]
            row[metric] = round(statistics.fmean(values), 4)
            # one seed measures no spread: none is written rather than a 0 that claims one
            if len(values) > 1:
                row[f"{metric}_std"] = round(statistics.stdev(values), 4)
        summary[optimizer] = {**row, "seeds": len(results)}
    write_json(Path(metrics_dir) / f"{name}.json", summary)
    if not curves:
        return
    losses = {optimizer: [[loss for task in result["loss_curves"] for loss in task] for result in results]
              for optimizer, results in runs.items()}
    _write_columns(Path(plots_dir) / "loss" / f"{name}.csv", "step", _mean_curves(losses))
    accuracy = {optimizer: [result["acc_seen"] for result in results] for optimizer, results in runs.items()}
    _write_columns(Path(plots_dir) / "accuracy" / f"{name}.csv", "task", _mean_curves(accuracy))


def _mean_curves(curves: dict[str, list[list[float]]]) -> dict[str, list[float]]:
    """Each optimizer's curves averaged over its seeds, step by step (to the shortest)."""
    return {optimizer: [round(statistics.fmean(points), 4) for points in zip(*per_seed)]
            for optimizer, per_seed in curves.items()}


def _write_columns(path: Path, x: str, columns: dict[str, list[float]]) -> None:
    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as handle:
            table = csv.writer(handle)
            table.writerow([x, *columns])
            for i, row in enumerate(zip(*columns.values())):
                table.writerow([i, *row])

    write_atomically(path, write)


def sweep(params: dict, name: str, root: Path = ABLATIONS_DIR, log=print) -> tuple[Path, list]:
    """The stage `ablation@<name>`: every cell of one sweep not already finished with the same configuration, then,
    for a sweep with `step_matched`, its step-matched controls (whose rates follow from the cells' measured steps)."""
    folder = Path(root) / name
    sweep_ = params["ablations"]["sweeps"][name]
    cells = sweep_cells(params, name, root)
    ran = run_cells(folder, cells, execution(params), log=log, keep=[MATCHED_DIR] if sweep_.get("step_matched") else [])
    if sweep_.get("step_matched"):
        results = {cell.name: json.loads((cell.out / "metrics.json").read_text()) for cell in cells}
        ran += run_cells(folder / MATCHED_DIR, matched_cells(params, name, results, root), execution(params), log=log)
    return folder, ran
