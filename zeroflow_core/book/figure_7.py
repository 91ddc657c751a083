"""Figure 7: the held-out losses recorded during training (old tasks and the current one), their volatility and
movement, and each optimizer's step losses, from the grid's runs (runs/train/*/metrics.json)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from zeroflow_core.book.report import aggregate, format_mean_std, method_label, optimizer_label, verdict


def heldout_curves(runs: pd.DataFrame) -> pd.DataFrame:
    """Long table of the held-out losses a run records: at each record, the loss on the task being
    learned ('new') and the mean loss on the tasks before it ('old', absent during the first task)."""
    rows = []
    for run in runs.itertuples():
        metrics = json.loads(Path(run.path).read_text())
        for record in metrics.get("heldout_losses", []):
            losses, task = record["losses"], record["task"]
            base = {"method": run.method, "optimizer": run.optimizer, "seed": run.seed, "step": record["step"],
                    "task": task}
            rows.append({**base, "which": "new", "loss": losses[task]})
            if task > 0:
                rows.append({**base, "which": "old", "loss": float(np.mean(losses[:task]))})
    return pd.DataFrame(rows, columns=["method", "optimizer", "seed", "step", "task", "which", "loss"])


def volatility(curves: pd.DataFrame) -> pd.DataFrame:
    """Per run and curve: the mean absolute change between consecutive records within a task (the paper's 'more
    volatile path' made a number), and that change per unit of how far the loss fell within the task (last record
    against first), so that a curve that moves further is not called rougher for it; then mean and std over
    seeds. A curve that does not move gets no relative volatility worth reading (`movement` says which)."""
    rows = []
    for (method, optimizer, seed, which), part in curves.groupby(["method", "optimizer", "seed", "which"], sort=False):
        changes, relative = [], []
        for _, task_part in part.groupby("task"):
            loss = task_part.sort_values("step").loss.to_numpy()
            if len(loss) < 2:
                continue
            steps = np.abs(np.diff(loss))
            changes.append(steps)
            fell = abs(loss[0] - loss[-1])
            relative.append(float(np.mean(steps)) / fell if fell > 0 else np.nan)
        rows.append({"method": method, "optimizer": optimizer, "seed": seed, "which": which,
                     "volatility": float(np.mean(np.concatenate(changes))) if changes else np.nan,
                     "relative_volatility": float(np.nanmean(relative)) if relative and not np.all(np.isnan(relative))
                     else np.nan})
    frame = pd.DataFrame(rows)
    return aggregate(frame, metrics=("volatility", "relative_volatility"), by=("method", "optimizer", "which"))


def movement(curves: pd.DataFrame) -> pd.DataFrame:
    """Per run and curve: how far the held-out loss moves within a task (last record minus first, mean over
    tasks); then mean and std over seeds. A run whose new-task loss does not fall has not trained."""
    rows = []
    for (method, optimizer, seed, which), part in curves.groupby(["method", "optimizer", "seed", "which"], sort=False):
        ordered = (task_part.sort_values("step").loss for _, task_part in part.groupby("task"))
        changes = [loss.iloc[-1] - loss.iloc[0] for loss in ordered if len(loss) > 1]
        rows.append({"method": method, "optimizer": optimizer, "seed": seed, "which": which,
                     "change": float(np.mean(changes)) if changes else np.nan})
    return aggregate(pd.DataFrame(rows), metrics=("change",), by=("method", "optimizer", "which"))


def movement_statements(moves: pd.DataFrame) -> list[str]:
    """Whether each optimizer's new-task held-out loss falls within a task beyond its spread over seeds."""
    lines = []
    for row in moves[moves.which == "new"].itertuples():
        call = verdict(row.change_mean, row.change_std, 0.0, 0.0, lower_is_better=True)
        said = {"better": "falls", "worse": "rises", "within the spread": "does not move beyond its spread"}[call]
        lines.append(f"{optimizer_label(row.optimizer)}: the new task's held-out loss {said} within a task "
                     f"({row.change_mean:+.3f} ± {row.change_std:.3f} from the first record to the last).")
    return lines


def fo_zo_pairs(methods, optimizers) -> tuple[str, list[tuple[str, str]], list[str]]:
    """Figure 7's runs: the method (EASE, else the grid's first), the (FO, ZO) pairs of SGD and Adam the grid
    has, and the optimizers shown (those pairs, else the grid's first two)."""
    method = "ease" if "ease" in methods else methods[0]
    pairs = [(fo, zo) for fo, zo in (("fo-sgd", "zo-sgd"), ("fo-adam", "zo-adam"))
             if fo in optimizers and zo in optimizers]
    return method, pairs, [o for pair in pairs for o in pair] or list(optimizers[:2])


class StepLosses(NamedTuple):
    """The mini-batch loss of every training step, the function value on the task being learned."""

    mean: np.ndarray  # over seeds, cut to the shortest run
    std: np.ndarray  # population std (ddof=0) over seeds: the band drawn around the mean
    task_ends: np.ndarray  # the steps after which a task ends, in the first seed's run


def step_losses(runs: pd.DataFrame) -> dict[str, StepLosses]:
    """Per optimizer of `runs`, in their order: the loss_curves of its runs' metrics.json."""
    losses = {}
    for optimizer, part in runs.groupby("optimizer", sort=False):
        curves = [json.loads(Path(path).read_text())["loss_curves"] for path in part.path]
        steps = [np.concatenate([np.asarray(task, float) for task in curve]) for curve in curves]
        length = min(len(s) for s in steps)
        stacked = np.stack([s[:length] for s in steps])
        losses[optimizer] = StepLosses(stacked.mean(0), stacked.std(0),
                                       np.cumsum([len(task) for task in curves[0]])[:-1])
    return losses


def heldout_summary(curves: pd.DataFrame) -> pd.DataFrame:
    """`heldout_curves` averaged over seeds: mean and std per optimizer, curve (new, old) and step."""
    return curves.groupby(["optimizer", "which", "step"]).loss.agg(["mean", "std"]).reset_index()


def volatility_table(vol: pd.DataFrame, moves: pd.DataFrame) -> pd.DataFrame:
    """`volatility` as shown: mean ± std over seeds, absolute and per unit of the loss's fall within a task, and
    how far the loss moved (`movement`)."""
    shown = vol.merge(moves, on=["method", "optimizer", "which"], suffixes=("", "_moves"))
    return pd.DataFrame({
        "optimizer": shown.optimizer.map(optimizer_label), "curve": shown.which, "seeds": shown.n_seeds,
        "change within a task": [format_mean_std(m, s, 3) for m, s in zip(shown.change_mean, shown.change_std)],
        "volatility": [format_mean_std(m, s, 3) for m, s in zip(shown.volatility_mean, shown.volatility_std)],
        "volatility per unit of fall": [format_mean_std(m, s, 3) for m, s in
                                        zip(shown.relative_volatility_mean, shown.relative_volatility_std)],
    })


def volatility_statements(vol: pd.DataFrame, moves: pd.DataFrame, pairs, method: str) -> list[str]:
    """Figure 7's claims per (FO, ZO) pair: ZO's new-task loss more volatile than FO's, old tasks' losses
    changing less than the new task's; a curve is compared only if it moves beyond its spread within a task
    (`movement`), since the smoothness of a curve that does not move says nothing about the optimizer."""
    def row(optimizer, which, column="relative_volatility"):
        hit = vol[(vol.optimizer == optimizer) & (vol.which == which)]
        return (hit[f"{column}_mean"].iloc[0], hit[f"{column}_std"].iloc[0]) if len(hit) else (np.nan, np.nan)

    def moving(optimizer, which):
        hit = moves[(moves.optimizer == optimizer) & (moves.which == which)]
        return (bool(len(hit))
                and verdict(hit.change_mean.iloc[0], hit.change_std.iloc[0], 0.0, 0.0) != "within the spread")

    lines, still = [], []
    for fo, zo in pairs:
        if moving(fo, "new") and moving(zo, "new"):
            call = verdict(*row(zo, "new"), *row(fo, "new"), lower_is_better=True)
            said = {"worse": "more volatile than", "better": "smoother than",
                    "within the spread": "within the spread of"}[call]
            lines.append(f"New task: per unit of how far it falls within a task, {optimizer_label(zo)}'s held-out loss "
                         f"is **{said}** {optimizer_label(fo)}'s (paper: ZO more volatile).")
        else:
            flat = [optimizer_label(o) for o in (fo, zo) if not moving(o, "new")]
            lines.append(f"New task, {optimizer_label(zo)} against {optimizer_label(fo)}: **not compared**: "
                         f"the held-out loss of {' and '.join(flat)} does not move beyond its spread within a task, "
                         "so its smoothness says nothing about the optimizer.")
        for optimizer in (fo, zo):
            if moving(optimizer, "old"):
                # how much the losses change, not per unit of their fall: the claim is that old tasks move less
                call = verdict(*row(optimizer, "old", "volatility"), *row(optimizer, "new", "volatility"),
                               lower_is_better=True)
                said = {"better": "change less than", "worse": "change more than",
                        "within the spread": "are within the spread of"}[call]
                lines.append(f"{optimizer_label(optimizer)}: old-task losses **{said}** the new task's (paper: old "
                             "tasks change less).")
            else:
                still.append(optimizer_label(optimizer))
    if still:  # one reason, said once
        lines.append(f"{_names(still)}: old-task losses do not move within a task ({method_label(method)} scores old "
                     "classes with what its end_task stored, which training the current task leaves alone), so 'old "
                     "tasks change less' is true by construction, not a finding.")
    return lines + movement_statements(moves)


def _names(names) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
