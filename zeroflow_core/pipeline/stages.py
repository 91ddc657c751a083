"""The stages of dvc.yaml that run cells: `train@<method>-<dataset>` and `ablation@<sweep>`.

Each resolves its cells from params.yaml (zeroflow_core.pipeline.cells) and gives them to the executor
(zeroflow_core.pipeline.executor), which keeps the cells finished before and runs the rest.
"""
from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

from zeroflow_core.io import write_atomically, write_json
from zeroflow_core.methods import METHODS
from zeroflow_core.pipeline.cells import (ABLATIONS_DIR, MATCHED_DIR, Cell, execution, matched_cells, stage_folder,
                                          sweep_cell_name, sweep_cells, sweep_values, train_cells)
from zeroflow_core.pipeline.executor import run_cells
from zeroflow_core.run.config import NO_OPTIMIZER, ConfigError

# `dvc metrics show` and `dvc plots show` read these (dvc.yaml): one file per method × dataset, each optimizer's
# mean over the seeds of the two headline metrics (with the std and last accuracy too, a row of `dvc metrics show`
# had 63 columns; the book has them all)
METRICS_DIR = Path("runs/metrics")
PLOTS_DIR = Path("runs/plots")
SUMMARY_METRICS = ("avg_acc", "forgetting")
# every sweep's own table, whether or not a page of the book draws it: runs/ablation/<name>/summary.csv
SWEEP_SUMMARY = "summary.csv"
SWEEP_METRICS = ("avg_acc", "last_acc", "forgetting")


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
        runs.setdefault(cell.config["optimizer"], []).append(read_metrics(cell))
    summary = {optimizer: {metric: round(statistics.fmean(result[metric] for result in results), 4)
                           for metric in SUMMARY_METRICS} for optimizer, results in runs.items()}
    write_json(Path(metrics_dir) / f"{name}.json", summary)
    if not curves:
        return
    # a zero-step control takes no step, so it has no loss curve (an empty column would cut every curve to nothing)
    losses = {optimizer: [[loss for task in result["loss_curves"] for loss in task] for result in results]
              for optimizer, results in runs.items() if optimizer != NO_OPTIMIZER}
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


def read_metrics(cell: Cell) -> dict:
    path = cell.out / "metrics.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:  # the executor verified it; say which file if it changed since
        raise RuntimeError(f"{path}: unreadable ({error}); rerun the stage to run its cell again") from None


def sweep(params: dict, name: str, root: Path = ABLATIONS_DIR, log=print) -> tuple[Path, list]:
    """The stage `ablation@<name>`: every cell of one sweep not already finished with the same configuration; for a
    sweep with `step_matched`, its step-matched controls (whose rates follow from the cells' measured steps); then
    the sweep's table (summary.csv in its folder, and in the log)."""
    folder = Path(root) / name
    matched = params["ablations"]["sweeps"][name].get("step_matched", False)
    cells = sweep_cells(params, name, root)
    ran = run_cells(folder, cells, execution(params), log=log, keep=[MATCHED_DIR, SWEEP_SUMMARY] if matched else
                    [SWEEP_SUMMARY])
    if matched:
        results = {cell.name: read_metrics(cell) for cell in cells}
        ran += run_cells(folder / MATCHED_DIR, matched_cells(params, name, results, root), execution(params), log=log)
    header, rows = sweep_summary(params, name, cells)
    write_atomically(folder / SWEEP_SUMMARY, lambda tmp: _write_rows(tmp, header, rows))
    widths = [max(len(str(value)) for value in column) for column in zip(header, *rows)]
    log("\n".join("  ".join(f"{value!s:>{width}}" for value, width in zip(row, widths)) for row in [header, *rows]))
    return folder, ran


def sweep_summary(params: dict, name: str, cells: list[Cell]) -> tuple[list[str], list[list]]:
    """One row per optimizer × value of the sweep: seeds, then mean and sample std over them of each metric (the std
    left empty for one seed, which measures no spread)."""
    section = params["ablations"]
    sweep = section["sweeps"][name]
    by_name = {cell.name: cell for cell in cells}
    header = ["optimizer", sweep["hyper"], "seeds"]
    header += [column for metric in SWEEP_METRICS for column in (metric, f"{metric}_std")]
    rows = []
    for optimizer in sweep["optimizers"]:
        for value in sweep_values(sweep, optimizer):
            results = [read_metrics(by_name[sweep_cell_name(section["method"], optimizer, section["dataset"],
                                                            sweep["hyper"], value, seed)])
                       for seed in section["seeds"]]
            row = [optimizer, value, len(results)]
            for metric in SWEEP_METRICS:
                values = [result[metric] for result in results]
                row += [round(statistics.fmean(values), 2),
                        round(statistics.stdev(values), 2) if len(values) > 1 else ""]
            rows.append(row)
    return header, rows


def _write_rows(path: Path, header: list, rows: list) -> None:
    with path.open("w", newline="") as handle:
        table = csv.writer(handle)
        table.writerow(header)
        table.writerows(rows)
