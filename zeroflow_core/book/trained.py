"""Whether a row trained, and what training gave against the method's own zero-step control.

A row's accuracy says something about its optimizer only if the optimizer lowered the training loss: a
forward-pass row whose loss ends where it started compares an untrained method with a trained one. So:
- a row **trained** when its mean per-task drop of the training loss (metrics.loss_drop, averaged over the tasks
  it trained) exceeds its spread over seeds (and is positive); one seed has no spread, and then a positive drop
  is enough;
- its accuracy and forgetting are judged against the **zero-step control** of its own method (optimizer `none`:
  the same adapters and heads built, every step skipped), which separates what training gave from what the
  method's structure gives; a row that did not train gets no verdict but "did not train";
- the no-training baseline (SimpleCIL) stays, and each control is judged against it: what the structure gives.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from zeroflow_core.book.report import LOWER_IS_BETTER, TABLE_METRICS, aggregate, format_mean_std, method_label, \
    optimizer_label, verdict
from zeroflow_core.run.config import NO_OPTIMIZER

DID_NOT_TRAIN = "did not train"
CONTROL = "control"
STATUSES = ("trained", DID_NOT_TRAIN, CONTROL)


def trained(mean: float, std: float) -> bool:
    """The rule: a positive mean drop beyond its spread over seeds (without a spread: positive)."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)) or mean <= 0:
        return False
    return std is None or (isinstance(std, float) and math.isnan(std)) or mean > std


def training(runs: pd.DataFrame) -> pd.DataFrame:
    """Per method × optimizer × dataset: the mean per-task loss drop over seeds, its std, and the status:
    trained, did not train, or control (a zero-step control or a method that trains nothing)."""
    summary = aggregate(runs, metrics=("loss_drop",))
    summary["status"] = [CONTROL if o == NO_OPTIMIZER else "trained" if trained(m, s) else DID_NOT_TRAIN
                         for o, m, s in zip(summary.optimizer, summary.loss_drop_mean, summary.loss_drop_std)]
    return summary


def versus_control(runs: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Every row against its reference, one row per (method, optimizer, dataset, metric):
    - a trained method's optimizer row against the method's zero-step control: the difference of the means, the
      spread it must exceed (the two standard deviations together) and the verdict (better / worse / within the
      spread, better meaning higher accuracy or lower forgetting), or "did not train";
    - each zero-step control against the no-training baseline (`baseline`): what the method's structure gives.
    """
    summary = aggregate(runs).merge(training(runs)[["method", "optimizer", "dataset", "loss_drop_mean",
                                                     "loss_drop_std", "status"]],
                                    on=["method", "optimizer", "dataset"])
    keyed = summary.set_index(["method", "optimizer", "dataset"])
    rows = []
    for row in summary.itertuples():
        if row.method == baseline:
            continue
        reference = (row.method, NO_OPTIMIZER, row.dataset) if row.optimizer != NO_OPTIMIZER else \
            (baseline, NO_OPTIMIZER, row.dataset)
        if reference not in keyed.index:
            raise ValueError(f"no runs of {reference[0]} ({reference[1]}) on {row.dataset} to compare "
                             f"{row.method} {row.optimizer} with")
        ref = keyed.loc[reference]
        for metric in TABLE_METRICS:
            mean, std = getattr(row, f"{metric}_mean"), getattr(row, f"{metric}_std")
            base_mean, base_std = ref[f"{metric}_mean"], ref[f"{metric}_std"]
            call = DID_NOT_TRAIN if row.status == DID_NOT_TRAIN else verdict(
                mean, std, base_mean, base_std, lower_is_better=metric in LOWER_IS_BETTER)
            rows.append({"method": row.method, "optimizer": row.optimizer, "dataset": row.dataset, "metric": metric,
                         "against": reference[0] if row.optimizer == NO_OPTIMIZER else "zero-step",
                         "difference": mean - base_mean, "spread": _sum(std, base_std), "verdict": call,
                         "loss_drop": row.loss_drop_mean, "status": row.status})
    return pd.DataFrame(rows, columns=["method", "optimizer", "dataset", "metric", "against", "difference", "spread",
                                       "verdict", "loss_drop", "status"])


def _sum(a: float, b: float) -> float:
    return float(np.nansum([a, b])) if not (pd.isna(a) and pd.isna(b)) else float("nan")


def versus_control_table(comparison: pd.DataFrame, metric: str = "avg_acc") -> pd.DataFrame:
    """One metric of `versus_control`, one row per method × optimizer, one column per dataset:
    'Δ ± spread (verdict)', against the zero-step control (its own row: against the baseline)."""
    from zeroflow_core.book.report import dataset_label

    part = comparison[comparison.metric == metric].copy()
    part["text"] = [f"{d:+.2f} ± {s:.2f} ({v})" for d, s, v in zip(part.difference, part.spread, part.verdict)]
    part["Method"] = part.method.map(method_label)
    part["Optimizer"] = [f"zero-step, against {method_label(a)}" if o == NO_OPTIMIZER else optimizer_label(o)
                         for o, a in zip(part.optimizer, part.against)]
    part["Dataset"] = part.dataset.map(dataset_label)
    return part.pivot_table(index=["Method", "Optimizer"], columns="Dataset", values="text", aggfunc="first",
                            sort=False)


def versus_control_tables(comparison: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """Table 1's "Against the zero-step control" section: average accuracy and forgetting, each with its
    caption (Markdown)."""
    return [(f"**{title}**, difference to the method's zero-step control", versus_control_table(comparison, metric))
            for metric, title in (("avg_acc", "Average accuracy"), ("forgetting", "Forgetting (lower is better)"))]


def training_table(status: pd.DataFrame) -> pd.DataFrame:
    """`training` as shown: per method and optimizer, the mean per-task loss drop ± its spread, and the status."""
    from zeroflow_core.book.report import dataset_label

    rows = status[status.optimizer != NO_OPTIMIZER]
    return pd.DataFrame({
        "method": rows.method.map(method_label), "optimizer": rows.optimizer.map(optimizer_label),
        "dataset": rows.dataset.map(dataset_label),
        "training-loss drop per task": [format_mean_std(m, s, 3) for m, s in zip(rows.loss_drop_mean,
                                                                                  rows.loss_drop_std)],
        "status": rows.status,
    })


def control_statements(comparison: pd.DataFrame, baseline: str) -> list[str]:
    """The sentences of Table 1's comparison, each computed from the numbers it describes: per method and
    dataset, what its structure gives (zero-step against the baseline), how many rows trained, and of those,
    how many beat the zero-step control on average accuracy."""
    from zeroflow_core.book.report import dataset_label

    lines = []
    accuracy = comparison[comparison.metric == "avg_acc"]
    for (method, dataset), part in accuracy.groupby(["method", "dataset"], sort=False):
        control = part[part.optimizer == NO_OPTIMIZER]
        rows = part[part.optimizer != NO_OPTIMIZER]
        if len(control):
            c = control.iloc[0]
            lines.append(f"{method_label(method)} on {dataset_label(dataset)} without a single step (its zero-step "
                         f"control) is {c.difference:+.2f} ± {c.spread:.2f} points of average accuracy from "
                         f"{method_label(baseline)} ({c.verdict}): what its structure gives before any training.")
        trained_rows = rows[rows.status == "trained"]
        untrained = rows[rows.status == DID_NOT_TRAIN]
        counts = trained_rows.verdict.value_counts()
        text = (f"{method_label(method)}: {len(trained_rows)} of {len(rows)} optimizers lowered the training loss "
                "beyond its spread over seeds")
        if len(untrained):
            text += f" ({', '.join(optimizer_label(o) for o in untrained.optimizer)}: did not train, no verdict)"
        if len(trained_rows):
            best = trained_rows.loc[trained_rows.difference.idxmax()]
            text += (f"; of those, {counts.get('better', 0)} beat the zero-step control beyond the spread, "
                     f"{counts.get('within the spread', 0)} are within it and {counts.get('worse', 0)} below it. "
                     f"The best is {optimizer_label(best.optimizer)} ({best.difference:+.2f} ± {best.spread:.2f})")
        lines.append(text + ".")
    return lines


def stage_statements(curves: pd.DataFrame, status: pd.DataFrame, baseline: str) -> list[str]:
    """Figure 4's text, per method and dataset: each optimizer's accuracy on the seen classes after the last stage
    (report.curve_summary) against the method's zero-step control, beyond the spread or within it, or "did not
    train" (`training`); the highest row; and the control against the no-training baseline."""
    from zeroflow_core.book.report import dataset_label

    lines = []
    last = curves[curves.stage == curves.stage.max()].set_index(["method", "optimizer", "dataset"])
    states = status.set_index(["method", "optimizer", "dataset"]).status
    for (method, dataset), part in last.reset_index().groupby(["method", "dataset"], sort=False):
        if method == baseline or (method, NO_OPTIMIZER, dataset) not in last.index:
            continue
        control = last.loc[(method, NO_OPTIMIZER, dataset)]
        calls = {"above": [], "within": [], "below": [], DID_NOT_TRAIN: []}
        rows = part[part.optimizer != NO_OPTIMIZER]
        for row in rows.itertuples():
            if states.get((method, row.optimizer, dataset)) == DID_NOT_TRAIN:
                calls[DID_NOT_TRAIN].append(optimizer_label(row.optimizer))
                continue
            call = verdict(row.mean, row.std, control["mean"], control["std"])
            calls[{"better": "above", "worse": "below"}.get(call, "within")].append(optimizer_label(row.optimizer))
        said = [f"{len(calls['above'])} of {len(rows)} optimizers end above the method's zero-step control "
                f"({format_mean_std(control['mean'], control['std'])}) beyond the spread"
                + (f" ({', '.join(calls['above'])})" if calls["above"] else "")]
        if calls["within"]:
            said.append(f"{len(calls['within'])} within it")
        if calls["below"]:
            said.append(f"{len(calls['below'])} below it ({', '.join(calls['below'])})")
        if calls[DID_NOT_TRAIN]:
            said.append(f"{len(calls[DID_NOT_TRAIN])} did not train ({', '.join(calls[DID_NOT_TRAIN])})")
        top = rows.loc[rows["mean"].idxmax()]
        line = (f"{method_label(method)} on {dataset_label(dataset)}, after stage {int(top.stage)}: "
                + "; ".join(said) + f". The highest is {optimizer_label(top.optimizer)} at "
                f"{format_mean_std(top['mean'], top['std'])}.")
        if (baseline, NO_OPTIMIZER, dataset) in last.index:
            anchor = last.loc[(baseline, NO_OPTIMIZER, dataset)]
            call = verdict(control["mean"], control["std"], anchor["mean"], anchor["std"])
            where = f"{method_label(baseline)} ({format_mean_std(anchor['mean'], anchor['std'])})"
            line += " The zero-step control itself is " + (
                f"within the spread of {where}." if call == "within the spread" else
                f"{'above' if call == 'better' else 'below'} {where}, beyond the spread.")
        lines.append(line)
    return lines
