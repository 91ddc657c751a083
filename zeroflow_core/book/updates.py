"""Where training goes: per optimizer, how far each task's training moved the adapters and the heads, how much of
that movement follows the backprop gradient, what each group's move did to the loss, and what training did to the
method's own prototypes.

Every run with `update_probe` records, per task (train.UpdateProbe), on held-out images of the task: ‖Δθ‖ of the
adapters and of the training heads, each relative to its size at the task's start; the cosine between each group's
accumulated update θ_start − θ_end and the backprop gradient at θ_start (a first-order update follows it, a noisy
estimate's spreads over directions the loss does not care about); and the loss's fall from each group's move alone
(the other group left at its start). An adapter update that starts from zero up-projections follows the initial
gradient only in its first steps, so the loss attribution is the firmer of the two for the adapters. The
prototypes' side is the accuracy on the classes of the task just learned, measured right after it (the accuracy
matrix's diagonal), against the method's zero-step control.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from zeroflow_core.book.report import verdict
from zeroflow_core.book.report import aggregate, format_mean_std, method_label, optimizer_label
from zeroflow_core.run.config import NO_OPTIMIZER

GROUPS = ("adapters", "heads")
FIELDS = ("moved", "relative", "cosine", "loss_drop")


def run_updates(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per run: its recorded updates averaged over tasks (<group>_<field>), its loss drop, and its mean
    accuracy on the task just learned (the accuracy matrix's diagonal)."""
    rows = []
    for run in runs.itertuples():
        metrics = json.loads(Path(run.path).read_text())
        row = {"method": run.method, "optimizer": run.optimizer, "dataset": run.dataset, "seed": run.seed,
               "loss_drop": run.loss_drop,
               "own_task_acc": float(np.mean([metrics["acc_matrix"][t][t] for t in range(len(metrics["acc_matrix"]))]))}
        for group in GROUPS:
            for field in FIELDS:
                values = [u[group][field] for u in metrics.get("updates", []) if group in u and u[group][field] is not None]
                row[f"{group}_{field}"] = float(np.mean(values)) if values else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def updates_summary(per_run: pd.DataFrame) -> pd.DataFrame:
    """Per method × optimizer × dataset: mean and std over seeds of every field, and the accuracy on the task just
    learned against the zero-step control's (own_task_gain)."""
    metrics = [f"{g}_{f}" for g in GROUPS for f in FIELDS] + ["loss_drop", "own_task_acc"]
    summary = aggregate(per_run, metrics=metrics)
    controls = summary[summary.optimizer == NO_OPTIMIZER].set_index(["method", "dataset"])
    gains, calls = [], []
    for row in summary.itertuples():
        key = (row.method, row.dataset)
        control = controls.loc[key] if key in controls.index else None
        if control is None or row.optimizer == NO_OPTIMIZER:
            gains.append(np.nan)
            calls.append("")
            continue
        gains.append(row.own_task_acc_mean - control.own_task_acc_mean)
        calls.append(verdict(row.own_task_acc_mean, row.own_task_acc_std, control.own_task_acc_mean,
                             control.own_task_acc_std))
    summary["own_task_gain"] = gains
    summary["own_task_verdict"] = calls
    return summary[summary.optimizer != NO_OPTIMIZER].reset_index(drop=True)


def updates_table(summary: pd.DataFrame) -> pd.DataFrame:
    """`updates_summary` as shown, one row per method × optimizer."""
    def shown(prefix, digits=3):
        return [format_mean_std(m, s, digits) for m, s in zip(summary[f"{prefix}_mean"], summary[f"{prefix}_std"])]

    return pd.DataFrame({
        "method": summary.method.map(method_label), "optimizer": summary.optimizer.map(optimizer_label),
        "loss drop": shown("loss_drop"),
        "adapters ‖Δθ‖ / ‖θ‖": shown("adapters_relative"), "adapters cos(update, −∇L)": shown("adapters_cosine"),
        "heads ‖Δθ‖ / ‖θ‖": shown("heads_relative"), "heads cos(update, −∇L)": shown("heads_cosine"),
        "loss drop, adapters' move alone": shown("adapters_loss_drop"),
        "loss drop, heads' move alone": shown("heads_loss_drop"),
        "task just learned vs zero-step": [f"{g:+.2f} ({v})" for g, v in zip(summary.own_task_gain,
                                                                              summary.own_task_verdict)],
    })


def signal(mean: float, std: float) -> bool:
    """A cosine is signal when it is positive beyond its spread over seeds."""
    return verdict(mean, std, 0.0, 0.0) == "better"


def updates_statements(summary: pd.DataFrame) -> list[str]:
    """Per method and optimizer, in words: what each group's move alone did to the held-out loss (beyond the spread
    or not), whether its update follows the gradient, how far it moved against the first-order reference
    (FO-SGD), and what training did to the accuracy on the task just learned against the zero-step control."""
    lines = []
    for method, part in summary.groupby("method", sort=False):
        reference = part[part.optimizer == "fo-sgd"]
        fo = reference.iloc[0] if len(reference) else None
        for row in part.itertuples():
            parts = []
            for group in GROUPS:
                drop, drop_std = getattr(row, f"{group}_loss_drop_mean"), getattr(row, f"{group}_loss_drop_std")
                if np.isnan(drop):
                    continue
                effect = {"better": "lowers", "worse": "raises"}.get(verdict(drop, drop_std, 0.0, 0.0),
                                                                     "leaves within its spread")
                cosine = getattr(row, f"{group}_cosine_mean"), getattr(row, f"{group}_cosine_std")
                moved = getattr(row, f"{group}_relative_mean")
                against = (f", {moved / fo[f'{group}_relative_mean']:.1f}× FO-SGD's move" if fo is not None
                           and row.optimizer != "fo-sgd" and fo[f"{group}_relative_mean"] else "")
                parts.append(f"its {group}' move alone {effect} the held-out loss ({drop:+.3f}; cosine with the "
                             f"gradient {format_mean_std(*cosine, 3)}; {moved:.2f} of their size{against})")
            effect = {"better": "raises", "worse": "lowers", "within the spread": "leaves within the spread"}.get(
                row.own_task_verdict, "")
            lines.append(f"{method_label(method)}, {optimizer_label(row.optimizer)}: " + "; ".join(parts)
                         + (f". Training {effect} the accuracy on the task just learned against the zero-step control "
                            f"({row.own_task_gain:+.2f} points)." if effect else "."))
    return lines


def _lowers(mean: float, std: float) -> bool:
    return verdict(mean, std, 0.0, 0.0) == "better"


def where_training_goes(summary: pd.DataFrame, method: str) -> str:
    """One paragraph for `method`: do its forward-pass rows train the adapters, only the heads, or mostly add noise
    (each group's move alone against the held-out loss), and what became of the prototypes?"""
    from zeroflow_core.optim.registry import row_spec

    part = summary[(summary.method == method)
                   & summary.optimizer.map(lambda o: row_spec(o) is not None and row_spec(o).forward_pass_only)]
    if part.empty:
        return ""
    n = len(part)
    adapters = sum(_lowers(r.adapters_loss_drop_mean, r.adapters_loss_drop_std) for r in part.itertuples())
    heads = sum(_lowers(r.heads_loss_drop_mean, r.heads_loss_drop_std) for r in part.itertuples())
    hurt = sum(r.own_task_verdict == "worse" for r in part.itertuples())
    if adapters == 0 and heads == 0:
        gist = "mostly adds noise: neither group's move alone lowers the held-out loss"
    elif adapters == 0:
        gist = "trains the heads: only their move lowers the held-out loss, the adapters' does not"
    elif adapters < n:
        gist = "reaches the adapters for some optimizers only"
    else:
        gist = "reaches the adapters too"
    return (f"**{method_label(method)}, forward-pass optimizers** ({n}): the adapters' move alone lowers the held-out "
            f"loss beyond its spread for {adapters} of {n}, the heads' for {heads} of {n}; forward-pass training here "
            f"{gist}. For {hurt} of {n}, the accuracy on the task just learned is below the zero-step control's: the "
            "adapters' move changes the features the method's prototypes are built from.")
