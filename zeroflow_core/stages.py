"""The stages of dvc.yaml that run cells: `train@<method>-<dataset>` and `ablation@<sweep>`.

Each resolves its cells from params.yaml (zeroflow_core.params) and gives them to the executor
(zeroflow_core.executor), which keeps the cells finished before and runs the rest.
"""
from __future__ import annotations

from pathlib import Path

from zeroflow_core.config import ConfigError
from zeroflow_core.executor import run_cells
from zeroflow_core.params import ABLATIONS_DIR, execution, stage_folder, sweep_cells, train_cells


def train(params: dict, method: str, dataset: str, log=print) -> tuple[Path, list]:
    """The stage `train@<method>-<dataset>` (or the baseline's): its optimizer × seed cells."""
    grid = params["grid"]
    if method not in [grid["baseline"], *grid["methods"]] or dataset not in grid["datasets"]:
        raise ConfigError(f"train@{method}-{dataset} is not a stage of the grid of params.yaml")
    folder = stage_folder(method, dataset)
    return folder, run_cells(folder, train_cells(params, method, dataset), execution(params), log=log)


def sweep(params: dict, name: str, root: Path = ABLATIONS_DIR, log=print) -> tuple[Path, list]:
    """The stage `ablation@<name>`: every cell of one sweep not already finished with the same configuration."""
    folder = Path(root) / name
    return folder, run_cells(folder, sweep_cells(params, name, root), execution(params), log=log)
