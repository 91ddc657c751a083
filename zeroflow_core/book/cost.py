"""The Cost and accuracy page (beyond the paper): what each optimizer's training buys, per unit of what it spends.

The `budget` sweep runs each optimizer at several passes per task around its grid budget (params.yaml's
ablations.sweeps.budget), beside the sweep's zero-step control. Every run records what it spent: image-forwards
(train_image_forwards: the images its forward passes saw), seconds (task_seconds: training and evaluating its
tasks) and peak memory, the last two in its timing file (zeroflow_core.run.timing: a checkout whose runs were pulled,
not run, has none, and the page then compares at equal forwards only). The gain is the run's average accuracy minus the zero-step control's, so that every point
reads "what training gave", and the page answers three questions in computed sentences: which optimizer gains more
at equal forwards, at equal time, and at the paper's ratio (forward-pass optimizers 5× backprop's passes).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from zeroflow_core.book.ablations import ablation_summary
from zeroflow_core.book.report import verdict
from zeroflow_core.book.report import format_mean_std, optimizer_label
from zeroflow_core.optim.registry import OPTIMIZERS, row_spec

# the spends the page plots the gain against: column of ablation_summary → axis label
SPENDS = {"train_image_forwards": "image-forwards (training)", "seconds": "seconds (training and evaluation)",
          "peak_memory_mb": "peak memory (MB)"}
PAPER_RATIO = 5  # INFTY: forward-pass optimizers 100 epochs per task, backprop 20


def cost_summary(cells: pd.DataFrame, control: pd.Series) -> pd.DataFrame:
    """ablation_summary of the budget sweep (per optimizer and passes) with the gain over the zero-step control
    (`control`), its spread (the two std together) and whether the cell trained."""
    summary = ablation_summary(cells)
    summary["gain"] = summary.avg_acc_mean - control.avg_acc_mean
    summary["gain_spread"] = summary.avg_acc_std.fillna(0) + (0 if np.isnan(control.avg_acc_std) else control.avg_acc_std)
    summary["family"] = summary.optimizer.map(lambda o: row_spec(o).family)
    return summary


def cost_table(summary: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "optimizer": summary.optimizer.map(optimizer_label), "passes per task": summary.value,
        "image-forwards": summary.train_image_forwards_mean.round(0).astype(int),
        "seconds": summary.seconds_mean.round(1), "peak MB": summary.peak_memory_mb_mean.round(0),
        "training-loss drop": [format_mean_std(m, s, 3) + ("" if t else " (did not train)")
                               for m, s, t in zip(summary.loss_drop_mean, summary.loss_drop_std, summary.trained)],
        "gain over zero-step": [f"{g:+.2f} ± {s:.2f}" for g, s in zip(summary.gain, summary.gain_spread)],
    })


def _closest_pair(mine: pd.DataFrame, others: pd.DataFrame, column: str) -> tuple[pd.Series, pd.Series]:
    """The row of `mine` and the row of `others` whose `column` values are nearest each other on a log scale."""
    pairs = [(abs(np.log(float(a[column])) - np.log(float(b[column]))), i, j)
             for i, a in mine.iterrows() for j, b in others.iterrows()]
    _, i, j = min(pairs)
    return mine.loc[i], others.loc[j]


def _compare(a: pd.Series, b: pd.Series) -> str:
    """a's gain against b's: better, worse or within the spread; did not train when either did not."""
    if not (a.trained and b.trained):
        return "did not train"
    return verdict(a.avg_acc_mean, a.avg_acc_std, b.avg_acc_mean, b.avg_acc_std)


def grid_passes(profile: str, method: str, dataset: str) -> dict:
    """Passes per task each optimizer family takes in the grid under `profile` (its profile rules): the budgets the
    paper's ratio compares."""
    from zeroflow_core.run.config import resolve

    families = {}
    for name, spec in OPTIMIZERS.items():
        if spec.family not in families:
            run = {"profile": profile, "method": method, "optimizer": name, "dataset": dataset}
            families[spec.family] = resolve(run).config["epochs"]
    return families


def cost_statements(summary: pd.DataFrame, reference: str = "fo-sgd", grid_passes: dict | None = None) -> list[str]:
    """For each forward-pass optimizer against the first-order `reference`: at equal image-forwards and at equal
    seconds (the pair of budgets, one each, whose spends are nearest), and at the paper's ratio (each at its grid
    budget, `grid_passes`: family → passes per task)."""
    grid_passes = grid_passes or {"backprop": 3, "zeroth-order": 15, "forward-grad": 15}
    fo = summary[summary.optimizer == reference]
    if fo.empty:
        return [f"No {optimizer_label(reference)} cells: nothing to compare with."]
    fo_grid = fo[fo.value == grid_passes["backprop"]]
    lines = []
    for optimizer, part in summary[summary.family != "backprop"].groupby("optimizer", sort=False):
        said = []
        for column, what in (("train_image_forwards_mean", "At equal forwards"), ("seconds_mean", "at equal time")):
            if part[column].isna().any() or fo[column].isna().any():
                said.append(f"{what}: not measured in this checkout (no timing files)")
                continue
            mine, other = _closest_pair(part, fo, column)
            said.append(f"{what} ({mine.value:g} passes, {mine[column]:.3g}, against {optimizer_label(reference)} at "
                        f"{other.value:g}, {other[column]:.3g}) it gains {mine.gain:+.2f} against {other.gain:+.2f}: "
                        f"**{_compare(mine, other)}**")
        at_grid = part[part.value == grid_passes[part.family.iloc[0]]]
        if len(fo_grid) and len(at_grid):
            mine = at_grid.iloc[0]
            said.append(f"at the paper's ratio ({mine.value:g} passes against {grid_passes['backprop']}) it gains "
                        f"{mine.gain:+.2f} against {fo_grid.iloc[0].gain:+.2f}: **{_compare(mine, fo_grid.iloc[0])}**")
        lines.append(f"**{optimizer_label(optimizer)}** against {optimizer_label(reference)}. " + "; ".join(said) + ".")
    return lines
