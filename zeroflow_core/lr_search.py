"""The smoke profile's per-optimizer learning rates: one small, documented search, not a per-seed tune.

`zeroflow search-lr` runs one method on one dataset with seed 0 for every optimizer × learning rate
(the rest of each run as params.yaml sets it), in the executor's warm workers, and prints the average
accuracy of each with the best learning rate per optimizer. The chosen values are
the `source: zeroflow search-lr` rules of `profiles.yaml`; the other seeds of the grid then test them.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from zeroflow_core.cells import Cell, execution, placed, resolve_run
from zeroflow_core.config import Layer
from zeroflow_core.executor import run_cells

SEARCH_DIR = Path("runs/lr-search")
# rates within this many points of an optimizer's best cannot be told apart on one seed
TOLERANCE = 1.0


def search_cells(params: dict, method: str, dataset: str, optimizers, learning_rates, seed: int = 0) -> list[Cell]:
    cells = []
    for optimizer in optimizers:
        for lr in learning_rates:
            searched = Layer("zeroflow search-lr", {"optimizer_hyper": {"lr": float(lr)}, "heldout_every": 0})
            resolved = placed(resolve_run(params, method, optimizer, dataset, seed, [searched]), execution(params))
            name = f"{method}-{optimizer}-{dataset}-lr{lr:g}-{seed}"
            cells.append(Cell(name, resolved.config, SEARCH_DIR / name, resolved.set_by))
    return cells


def search(params: dict, method: str, dataset: str, optimizers, learning_rates, seed: int = 0,
           log=print) -> pd.DataFrame:
    """One row per optimizer × lr: avg_acc, last_acc, forgetting, and whether it is the optimizer's best."""
    cells = search_cells(params, method, dataset, optimizers, learning_rates, seed)
    run_cells(SEARCH_DIR, cells, execution(params), log=log)
    rows = []
    for cell in cells:
        result = json.loads((cell.out / "metrics.json").read_text())
        rows.append({"optimizer": cell.config["optimizer"], "lr": cell.config["optimizer_hyper"]["lr"],
                     "avg_acc": result["avg_acc"], "last_acc": result["last_acc"],
                     "forgetting": result["forgetting"]})
    table = pd.DataFrame(rows)
    table["best"] = table.avg_acc == table.groupby("optimizer").avg_acc.transform("max")
    chosen = chosen_learning_rates(table)
    table["chosen"] = [chosen[o] == lr for o, lr in zip(table.optimizer, table.lr)]
    return table


def chosen_learning_rates(table: pd.DataFrame, tolerance: float = TOLERANCE) -> dict:
    """Per optimizer, the largest lr whose avg_acc is within `tolerance` points of its best."""
    chosen = {}
    for optimizer, part in table.groupby("optimizer", sort=False):
        close = part[part.avg_acc >= part.avg_acc.max() - tolerance]
        chosen[optimizer] = float(close.lr.max())
    return chosen
