"""The smoke profile's per-optimizer learning rates: one small, documented search, not a per-seed tune.

`zeroflow search-lr` runs one method on one dataset with seed 0 for every optimizer × learning rate
(the rest of each run as params.yaml sets it), in the executor's warm workers, and prints for each the mean
per-task drop of the training loss (metrics.loss_drop) and the average accuracy. The rule chooses, per
optimizer, the rate whose training loss falls most: what an optimizer is asked to do is lower the training
loss, so a rate at which a row does not train cannot be chosen (a collapsing rate's loss does not fall either),
and the test accuracy the book reports is never what picked the rate. The chosen values are the
`source: zeroflow search-lr` rules of `profiles.yaml`; the other seeds of the grid then test them.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from zeroflow_core.pipeline.cells import Cell, execution, placed, resolve_run
from zeroflow_core.pipeline.executor import run_cells
from zeroflow_core.run.config import Layer

SEARCH_DIR = Path("runs/lr-search")


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
    """One row per optimizer × lr: loss_drop, avg_acc, last_acc, forgetting, and whether it is chosen."""
    cells = search_cells(params, method, dataset, optimizers, learning_rates, seed)
    run_cells(SEARCH_DIR, cells, execution(params), log=log)
    rows = []
    for cell in cells:
        result = json.loads((cell.out / "metrics.json").read_text())
        rows.append({"optimizer": cell.config["optimizer"], "lr": cell.config["optimizer_hyper"]["lr"],
                     "loss_drop": result["loss_drop"], "avg_acc": result["avg_acc"], "last_acc": result["last_acc"],
                     "forgetting": result["forgetting"]})
    table = pd.DataFrame(rows)
    chosen = chosen_learning_rates(table)
    table["chosen"] = [chosen[o] == lr for o, lr in zip(table.optimizer, table.lr)]
    return table


def chosen_learning_rates(table: pd.DataFrame) -> dict:
    """Per optimizer, the lr whose mean per-task training-loss drop is the largest (the smaller lr of a tie)."""
    chosen = {}
    for optimizer, part in table.groupby("optimizer", sort=False):
        ranked = part.sort_values(["loss_drop", "lr"], ascending=[False, True])
        chosen[optimizer] = float(ranked.lr.iloc[0])
    return chosen


def merge_searches(path, table: pd.DataFrame) -> pd.DataFrame:
    """`table` with the rows of the optimizers it does not hold taken from the CSV at `path` (if any): a search of
    some optimizers updates theirs and keeps the others'."""
    if not Path(path).is_file():
        return table
    earlier = pd.read_csv(path)
    return pd.concat([earlier[~earlier.optimizer.isin(table.optimizer)], table], ignore_index=True)


def search_page(table: pd.DataFrame, method: str, dataset: str, seed: int, command: str) -> str:
    """The book's page of the search (Markdown): per optimizer and rate, the training-loss drop and the average
    accuracy, the chosen rate in bold; written by `zeroflow search-lr --page`, so its numbers are the search's."""
    def cell(row) -> str:
        text = f"{row.loss_drop:+.3f} / {row.avg_acc:.1f}"
        return f"**{text}**" if row.chosen else text

    from zeroflow_core.optim import OPTIMIZERS

    optimizers = sorted(dict.fromkeys(table.optimizer), key=list(OPTIMIZERS).index)
    rates = sorted(table.lr.unique())
    header = "| optimizer | " + " | ".join(f"lr {lr:g}" for lr in rates) + " | chosen |"
    lines = [header, "|" + "---|" * (len(rates) + 2)]
    for optimizer in optimizers:
        part = table[table.optimizer == optimizer].set_index("lr")
        cells = [cell(part.loc[lr]) if lr in part.index else "" for lr in rates]
        chosen = part[part.chosen].index[0]
        lines.append(f"| {optimizer} | " + " | ".join(cells) + f" | {chosen:g} |")
    return "\n".join([
        "# Appendix: the smoke learning rates",
        "",
        f"One search, `{command}` (its table: `book/learning-rates.csv`): {method} on {dataset}, seed {seed}, every "
        "optimizer at its rates, each run as "
        "the smoke profile sets it otherwise. Each cell gives the mean per-task drop of the training loss (the mean "
        "of a task's first tenth of steps minus the mean of its last tenth, averaged over tasks) and the average "
        "accuracy (%). The rule chooses, per optimizer, the rate whose training loss falls most: lowering the "
        "training loss is what an optimizer is asked to do, a rate at which the row does not train cannot win, "
        "and the test accuracy the book reports is never what picked the rate. The chosen rate (bold) is the "
        "`source: zeroflow search-lr` rule of `zeroflow_core/run/profiles.yaml`; `tests/test_pipeline.py` checks the "
        "two agree. The grid's other seeds then test the choice. A search of some optimizers (`--optimizers`) "
        "replaces their rows and keeps the others' from the searches before it, which ran on the code and the smoke "
        "backbones of their day: a row's rates are compared with each other, and two rows' accuracies may come from "
        "different backbones.",
        "",
        *lines,
        "",
    ])
