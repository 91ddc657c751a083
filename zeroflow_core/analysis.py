"""Tables and claims of the paper's sections 3–6: against no training (Table 1, Figure 2), efficiency
(Table 2), the ablations (Figure 5, Tables 3–4), the official code's switches, held-out losses over
training (Figure 7), the toy trajectories (Figures 3 and 6), and when a difference may be called one.

Plain pandas on the stages' outputs (runs/efficiency/*.json, runs/ablation/<name>/*/metrics.json,
runs/train/*/metrics.json) and on landscape.py's tables, so it is tested without a kernel
(tests/test_analysis.py); the pages display what these functions return.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import yaml

from zeroflow_core.optim.registry import FAMILY_LABELS, OPTIMIZERS, row_spec
from zeroflow_core.cells import MATCHED_DIR, control_cell_name, matched_cell_name, mean_step, sweep_cell_name
from zeroflow_core.config import NO_OPTIMIZER
from zeroflow_core.metrics import mean_loss_drop
from zeroflow_core.trained import trained
from zeroflow_core.report import (LOWER_IS_BETTER, TABLE_METRICS, aggregate, bullets, dataset_label,
                                  format_mean_std, method_label, optimizer_label, run_spent, verdict)

# A CIFAR-100 task of the paper: 50,000 training images / 10 tasks (Table 2's per-epoch projection).
CIFAR100_TASK_IMAGES = 5000


# ------------------------------------------------------------------ Table 1: the paper's rows against no training
def paper_no_training_statements(tidy: pd.DataFrame, baseline: str) -> list[str]:
    """How the paper's rows stand against the published no-training numbers (Table 1's paper block). Those numbers
    (reference/simplecil_aper.csv) are on ViT-B/16-IN21K and their release's splits, while INFTY's code, which made
    the paper's rows, loads the IN-21K model fine-tuned on IN-1K: the sentence says so."""
    paper = tidy[tidy.source == "paper"]
    anchors = paper[paper.method == baseline].set_index("dataset")
    lines = []
    for dataset, anchor in anchors.iterrows():
        parts = []
        for method in [m for m in paper.method.unique() if m != baseline]:
            rows = paper[(paper.method == method) & (paper.dataset == dataset)]
            if rows.empty:
                continue
            above = rows[rows.avg_acc_mean >= anchor.avg_acc_mean]
            names = f" (all but {', '.join(optimizer_label(o) for o in above.optimizer)})" if 0 < len(above) < len(rows) else ""
            parts.append(f"{method_label(method)} {len(rows) - len(above)} of {len(rows)}{names}")
        if parts:
            lines.append(f"In the paper on {dataset_label(dataset)}, the rows whose average accuracy is below the "
                         f"published {method_label(baseline)} ({anchor.avg_acc_mean:.2f}, no training, on "
                         "ViT-B/16-IN21K and its release's split, not the backbone of INFTY's code that made the "
                         "paper's rows, IN-21K fine-tuned on IN-1K): " + "; ".join(parts) + ".")
    return lines


def optimizer_family(optimizer: str) -> str:
    """first-order, zeroth-order or forward-gradient: the registry's family, as the book's sentences name it."""
    spec = row_spec(optimizer)
    return FAMILY_LABELS[spec.family] if spec else "none"  # none: the no-training row


# ------------------------------------------------------------------------------------------ Table 2
def load_efficiency(efficiency_dir, models) -> pd.DataFrame:
    """One row per (model, optimizer, q) from runs/efficiency/<model>.json, in the stage's order."""
    rows = []
    for model in models:
        path = Path(efficiency_dir) / f"{model}.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no efficiency measurements; run `dvc repro efficiency@{model}`")
        rows += json.loads(path.read_text())
    frame = pd.DataFrame(rows)
    # measurements made before the hybrid head existed trained no head
    frame["head_optimizer"] = frame.get("head_optimizer", pd.Series(index=frame.index, dtype=object)).fillna("same")
    frame["head_backwards_per_step"] = frame.get("head_backwards_per_step",
                                                 pd.Series(index=frame.index, dtype=float)).fillna(0.0)
    # ZO-SGD always names its budget, as the paper's rows do, and so does any optimizer measured at several:
    # one label, one position in the charts, whatever the model measured
    repeated = frame.groupby(["model", "optimizer", "head_optimizer"]).optimizer.transform("size") > 1
    frame["label"] = [(f"{optimizer_label(o)} (q = {int(q)})" if r or o == "zo-sgd" else optimizer_label(o))
                      + (", head by backprop" if head == "backprop" else "")
                      for o, q, r, head in zip(frame.optimizer, frame.q, repeated, frame.head_optimizer)]
    return frame


def efficiency_table(rows: pd.DataFrame, model: str, steps_per_epoch: int | None = None,
                     seconds_per_epoch: dict | None = None) -> pd.DataFrame:
    """Table 2 for one model: memory and time, and each relative to FO-SGD's.

    Per epoch: measured in the training runs (`seconds_per_epoch`: optimizer → seconds, q = 1 rows
    only, since the runs use the default budget) or projected as step time × `steps_per_epoch`.
    """
    part = rows[rows.model == model].reset_index(drop=True)
    reference = part[part.optimizer == "fo-sgd"]
    if reference.empty:
        raise ValueError(f"the {model} measurements have no fo-sgd row to compare with")
    fo = reference.iloc[0]
    spread = _column(part, "step_spread")
    ratio = part.step_seconds / fo.step_seconds
    table = pd.DataFrame({
        "optimizer": part.label,
        "forwards / step": part.forwards_per_step,
        "backwards / step": part.backwards_per_step,
        "head backwards / step": part.head_backwards_per_step,
        "peak memory (MB)": part.peak_memory_mb.round(0),
        "memory ÷ FO-SGD": (part.peak_memory_mb / fo.peak_memory_mb).round(2),
        "net memory ÷ FO-SGD": ((part.peak_memory_mb - part.baseline_memory_mb)
                                / (fo.peak_memory_mb - fo.baseline_memory_mb)).round(2),
        "s / step": part.step_seconds.round(4),
        "s / step spread": spread.round(4),
        "step ÷ FO-SGD step": ratio.round(2),
        # relative spreads add up in a quotient
        "step ÷ FO-SGD step spread": (ratio * (spread / part.step_seconds
                                               + spread[reference.index[0]] / fo.step_seconds)).round(2),
        # each worker's own no-grad forward as the clock: survives a machine busier for one worker than another
        "step ÷ forward": (part.step_over_forward if "step_over_forward" in part
                           else part.step_seconds / part.forward_seconds).round(2),
        "step ÷ forward spread": _column(part, "step_over_forward_spread").round(2),
    })
    if seconds_per_epoch is not None:
        # the runs use each optimizer's configured budget: the first row of each optimizer, not the extra-q ones
        first = ~part.optimizer.duplicated() & (part.head_optimizer == "same")
        table["s / epoch (runs)"] = [round(seconds_per_epoch[o], 3) if f and o in seconds_per_epoch else np.nan
                                     for o, f in zip(part.optimizer, first)]
    if steps_per_epoch is not None:
        table[f"s / epoch ({steps_per_epoch} steps, projected)"] = (part.step_seconds * steps_per_epoch).round(1)
    return table


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    """A column of bench rows that older measurements lack (NaN there: no spread measured)."""
    return pd.to_numeric(frame[name], errors="coerce") if name in frame else pd.Series(np.nan, index=frame.index)


def efficiency_shown(table: pd.DataFrame) -> pd.DataFrame:
    """`efficiency_table` as the page prints it: each repeated timing as its median ± the spread between its
    quartiles (— where one step was timed: no spread)."""
    shown = table.copy()
    for column, digits in (("s / step", 4), ("step ÷ FO-SGD step", 2), ("step ÷ forward", 2)):
        shown[column] = [f"{m:.{digits}f}" + ("" if pd.isna(s) else f" ± {s:.{digits}f}")
                         for m, s in zip(table[column], table[f"{column} spread"])]
        shown = shown.drop(columns=f"{column} spread")
    # one column of backward passes, the hybrid head's named in it: the page's width holds one column fewer
    head = table["head backwards / step"].fillna(0) if "head backwards / step" in table else [0] * len(table)
    shown["backwards / step"] = [f"{b:g}" + (f" + {h:g} head" if h else "")
                                 for b, h in zip(table["backwards / step"], head)]
    shown["forwards / step"] = [f"{f:g}" for f in table["forwards / step"]]
    return shown.drop(columns="head backwards / step", errors="ignore")


class RunEpochs(NamedTuple):
    """Seconds per epoch measured in the training runs of one method and dataset."""

    seconds: dict  # optimizer → mean over its seeds
    backbone: str | None  # the model the runs trained (their config.yaml), None without one
    runs: int


def run_epochs(runs: pd.DataFrame, method: str, dataset: str) -> RunEpochs:
    first = runs[(runs.method == method) & (runs.dataset == dataset)]
    config_file = Path(first.path.iloc[0]).parent / "config.yaml"
    backbone = yaml.safe_load(config_file.read_text())["backbone"] if config_file.is_file() else None
    return RunEpochs(first.groupby("optimizer").seconds_per_epoch.mean().to_dict(), backbone, len(first))


def efficiency_tables(rows: pd.DataFrame, models, epochs: RunEpochs) -> dict[str, pd.DataFrame]:
    """`efficiency_table` per model: per-epoch times measured for the model the runs trained, and projected
    for ViT-B/16 over one CIFAR-100 task at its batch size."""
    tables = {}
    for model in models:
        batch = int(rows[rows.model == model].batch_size.iloc[0])
        tables[model] = efficiency_table(
            rows, model, steps_per_epoch=-(-CIFAR100_TASK_IMAGES // batch) if model == "vit-b16" else None,
            seconds_per_epoch=epochs.seconds if model == epochs.backbone else None)
    return tables


def efficiency_caption(rows: pd.DataFrame, model: str) -> str:
    """The heading of one model's table: how it was measured."""
    row = rows[rows.model == model].iloc[0]
    repeats = (f"median ± the spread between quartiles of {row.steps} timed steps" if row.steps > 1 else
               "one timed step, so no spread (memory needs one step)")
    return (f"### {model}: batch {row.batch_size}, {row.attention} attention, device `{row.device}`, "
            f"{row.threads} threads, {repeats}")


ZO_SGD = "ZO-SGD (q = 1)"


def _ratio(table: pd.DataFrame, a: str, b: str, column: str) -> float:
    rows = table.set_index("optimizer")[column]
    return float(rows[a] / rows[b]) if a in rows.index and b in rows.index else float("nan")


def efficiency_statements(tables: dict, paper: pd.DataFrame) -> list[str]:
    """The Table 2 page's text: every ratio is a quotient of two values printed in the tables
    (`efficiency_table` per model, `paper_table_2`), so the text cannot disagree with them."""
    def paper_time(label: str) -> float:
        return _ratio(paper, label, ZO_SGD, "CIFAR-100 s / epoch")

    paper_memory = _ratio(paper, "FO-SGD", ZO_SGD, "memory (GB)")
    lines = []
    for model, table in tables.items():
        memory = _ratio(table, "FO-SGD", ZO_SGD, "peak memory (MB)")
        if np.isnan(memory):
            continue
        net = 1 / _ratio(table, ZO_SGD, "FO-SGD", "net memory ÷ FO-SGD")
        lines.append(f"- **{model}**: FO-SGD's peak memory is **{memory:.2f}×** ZO-SGD's ({net:.2f}× net of the "
                     f"process base); the paper reports {paper_memory:.2f}× on a GPU. "
                     + ("That agrees with the paper's claim of about fivefold (at least 4.5×)." if memory >= 4.5 else
                        "Below the paper's fivefold: at this model and batch size the activations backprop keeps "
                        "are a smaller share of the total than on ViT-B/16 at batch 48."))
        rows = table.set_index("optimizer")

        def timed(label, column, unit=""):
            spread = rows.loc[label, f"{column} spread"] if f"{column} spread" in rows else np.nan
            return f"{rows.loc[label, column]:g}{unit}" + ("" if pd.isna(spread) else f" ± {spread:g}{unit}")

        lines.append(f"  A ZO-SGD step takes {_ratio(table, ZO_SGD, 'FO-SGD', 's / step'):.2f}× FO-SGD's time "
                     f"({timed(ZO_SGD, 's / step', ' s')} against {timed('FO-SGD', 's / step', ' s')}; in units of "
                     f"each process's own forward, {timed(ZO_SGD, 'step ÷ forward')} against "
                     f"{timed('FO-SGD', 'step ÷ forward')}); the paper, per epoch: "
                     f"{1 / paper_time('FO-SGD'):.2f}×.")
        lines += _equal_forwards(table)
        for label in [l for l in table.optimizer if l.startswith("ZO-SGD (q = ") and l != ZO_SGD]:
            in_paper = label in set(paper.optimizer)  # the hybrid-head rows are ours alone
            lines.append(f"  {label}: memory {_ratio(table, label, ZO_SGD, 'peak memory (MB)'):.2f}× and step time "
                         f"{_ratio(table, label, ZO_SGD, 's / step'):.2f}× ZO-SGD (q = 1)'s"
                         + (f"; the paper: memory {_ratio(paper, label, ZO_SGD, 'memory (GB)'):.2f}×, time "
                            f"{paper_time(label):.2f}×." if in_paper else " (not in the paper's table)."))
        if "ZO-SGD-Conserve" in set(table.optimizer):
            lines.append(f"  ZO-SGD-Conserve: {_ratio(table, 'ZO-SGD-Conserve', ZO_SGD, 's / step'):.2f}× ZO-SGD's "
                         f"step time (5 forwards against 2; paper: {paper_time('ZO-SGD-Conserve'):.2f}×).")
    return lines


def _equal_forwards(table: pd.DataFrame) -> list[str]:
    """Forward-pass optimizers that take as many forwards per step: whether their steps, each in units of its own
    process's forward (medians and the spread between quartiles of the timed steps), differ beyond the spreads."""
    lines = []
    # a hybrid-head row does its head's backwards on top of its forwards: not an equal of the plain rows
    head_backwards = table["head backwards / step"] if "head backwards / step" in table else 0
    forward_only = table[(table["backwards / step"] == 0) & (head_backwards == 0) & table["step ÷ forward"].notna()]
    for forwards, group in forward_only.groupby("forwards / step", sort=False):
        if len(group) < 2:
            continue
        fast, slow = group.loc[group["step ÷ forward"].idxmin()], group.loc[group["step ÷ forward"].idxmax()]
        spreads = fast.get("step ÷ forward spread", np.nan), slow.get("step ÷ forward spread", np.nan)
        names = ", ".join(group.optimizer)
        head = (f"  {len(group)} optimizers take {forwards:g} forwards per step ({names}): in units of its own "
                f"forward, a step takes from {fast['step ÷ forward']:g} ({fast.optimizer}) to "
                f"{slow['step ÷ forward']:g} ({slow.optimizer})")
        if any(pd.isna(x) for x in spreads):
            lines.append(head + "; one timed step each, so no spread to compare them by.")
        elif slow["step ÷ forward"] - fast["step ÷ forward"] > sum(spreads):
            lines.append(head + ", beyond the spreads between quartiles: their updates cost differently beyond "
                                "their forwards.")
        else:
            lines.append(head + ", within the spreads between quartiles: the same cost, as their forwards say; a "
                                "larger gap between their raw times is the load of the machine while each ran.")
    return lines


def load_batching(efficiency_dir, models) -> pd.DataFrame:
    """ZO-SGD one query per forward against all in one (runs/efficiency/<model>.batched.json), every model that has
    them (the `efficiency.batched_q` budgets)."""
    rows = []
    for model in models:
        path = Path(efficiency_dir) / f"{model}.batched.json"
        if path.is_file():
            rows += json.loads(path.read_text())
    return pd.DataFrame(rows)


def batching_table(rows: pd.DataFrame) -> pd.DataFrame:
    """The batched rows as shown: each step as a multiple of its n forwards of the batch, beside one plain forward of
    the n copies of the batch (what one large batch alone gains), the batched step over the sequential one (medians ± the spread between quartiles of interleaved repeats), and each mode's peak memory."""
    return pd.DataFrame({
        "model, batch": [f"{m}, {b}" for m, b in zip(rows.model, rows.batch_size)], "q": rows.q,
        "forwards / step (n)": [f"{n:g}" for n in rows.forwards_per_step],
        "one forward (s)": [f"{m:.4f} ± {s:.4f}" for m, s in zip(rows.forward_seconds, rows.forward_spread)],
        "sequential step ÷ n forwards": rows.sequential_over_forwards.round(2),
        "batched step ÷ n forwards": rows.batched_over_forwards.round(2),
        # what one large batch alone gains, the rest of the batched step's ratio is its perturbations and update
        "one forward of the n copies ÷ n forwards": rows.copies_forward_over_forwards.round(2),
        "batched ÷ sequential": [f"{m:.2f} ± {s:.2f}" for m, s in zip(rows.batched_over_sequential, rows.ratio_spread)],
        "peak MB, sequential / batched": [f"{a:.0f} / {b:.0f}" for a, b in zip(rows.sequential_peak_mb,
                                                                              rows.batched_peak_mb)],
    })


def batching_statements(rows: pd.DataFrame) -> list[str]:
    """Per model and q, what batching does to a step's time and peak memory, from `batching_table`'s numbers."""
    return [f"{row.model}, batch {row.batch_size}, q = {row.q}: a batched ZO-SGD step takes "
            f"{row.batched_over_sequential:.2f}× the sequential one ({row.batched_over_forwards:.2f}× the "
            f"{row.forwards_per_step:g} plain forwards it replaces, against {row.sequential_over_forwards:.2f}× for the "
            f"sequential step; one plain forward of the {row.forwards_per_step:g} copies of the batch takes "
            f"{row.copies_forward_over_forwards:.2f}×: what one large batch alone gains), at {row.batched_peak_mb / row.sequential_peak_mb:.2f}× "
            "its peak memory."
            for row in rows.itertuples()]


def paper_table_2(reference_dir) -> pd.DataFrame:
    """The paper's Table 2 with the same row labels as ours and memory relative to FO-SGD."""
    path = Path(reference_dir) / "table2_efficiency.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the paper's Table 2 is missing (it ships in reference/)")
    paper = pd.read_csv(path)
    fo = paper[paper.optimizer == "FO-SGD"].iloc[0]
    labels = [name if pd.isna(q) or name != "ZO-SGD" else f"{name} (q = {int(q)})"
              for name, q in zip(paper.optimizer, paper.query_budget)]
    return pd.DataFrame({
        "optimizer": labels,
        "memory (GB)": paper.memory_gb,
        "memory ÷ FO-SGD": (paper.memory_gb / fo.memory_gb).round(2),
        "CIFAR-100 s / epoch": paper.cifar100_s,
        "epoch ÷ FO-SGD": (paper.cifar100_s / fo.cifar100_s).round(2),
    })


# -------------------------------------------------------------------------------- Figure 5, Tables 3–4
def _cell_row(path: Path, **keys) -> dict:
    metrics = json.loads(path.read_text())
    spent = run_spent(path.parent)
    return {**keys, **{k: metrics[k] for k in TABLE_METRICS},
            "loss_drop": mean_loss_drop(metrics.get("loss_curves", [])), "step": mean_step(metrics),
            "forward_passes": metrics.get("forward_passes"), "train_image_forwards": metrics.get("train_image_forwards"),
            "seconds": spent["seconds"], "peak_memory_mb": spent["peak_memory_mb"], "lr": metrics.get("lr")}


def load_ablation(ablation_dir, method: str, dataset: str, optimizers, values, seeds, hyper: str) -> pd.DataFrame:
    """One row per cell (optimizer, value, seed) with its accuracy, forgetting, training-loss drop, mean step,
    passes, image-forwards, seconds and peak memory; `values` a list, or a list per optimizer."""
    rows, missing = [], []
    for optimizer in optimizers:
        for value in (values[optimizer] if isinstance(values, dict) else values):
            for seed in seeds:
                path = Path(ablation_dir) / sweep_cell_name(method, optimizer, dataset, hyper, value, seed) / "metrics.json"
                if not path.is_file():
                    missing.append(path)
                    continue
                rows.append(_cell_row(path, optimizer=optimizer, value=value, seed=seed))
    if missing:
        raise FileNotFoundError(f"{len(missing)} ablation cells have no metrics.json, e.g. {missing[0]}; "
                                f"run `dvc repro ablation@{Path(ablation_dir).name}`")
    return pd.DataFrame(rows)


def load_control(ablation_dir, method: str, dataset: str, seeds) -> pd.Series:
    """A sweep's zero-step control (its method with every step skipped, in the sweep's own settings): mean and std
    over seeds, the row every value of the sweep is read against."""
    rows = []
    for seed in seeds:
        path = Path(ablation_dir) / control_cell_name(method, dataset, None, None, seed) / "metrics.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: the sweep's zero-step control is missing; run "
                                    f"`dvc repro ablation@{Path(ablation_dir).name}`")
        rows.append(_cell_row(path, method=method, optimizer=NO_OPTIMIZER, seed=seed))
    return aggregate(pd.DataFrame(rows), by=("method", "optimizer")).iloc[0]


def load_matched(ablation_dir, method: str, dataset: str, optimizers, values, seeds, hyper: str) -> pd.DataFrame:
    """A `step_matched` sweep's controls, per optimizer and value: plain at the rate matching the value's measured
    mean step; mean and std over seeds of the metrics, the rate, and the mean step each reached."""
    rows = []
    for optimizer in optimizers:
        for value in (values[optimizer] if isinstance(values, dict) else values)[1:]:
            for seed in seeds:
                folder = Path(ablation_dir) / MATCHED_DIR / matched_cell_name(method, optimizer, dataset, hyper, value,
                                                                              seed)
                if not (folder / "metrics.json").is_file():
                    raise FileNotFoundError(f"{folder}/metrics.json: a step-matched control is missing; run "
                                            f"`dvc repro ablation@{Path(ablation_dir).name}`")
                lr = yaml.safe_load((folder / "config.yaml").read_text())["optimizer_hyper"]["lr"]
                rows.append(_cell_row(folder / "metrics.json", optimizer=optimizer, value=value, seed=seed) | {"lr": lr})
    cells = pd.DataFrame(rows)
    summary = aggregate(cells, metrics=(*TABLE_METRICS, "loss_drop", "step"), by=("optimizer", "value"))
    return summary.merge(cells.groupby(["optimizer", "value"], sort=False).lr.first().reset_index(),
                         on=["optimizer", "value"])


def ablation_summary(cells: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds per (optimizer, value), with the training-loss drop, the mean step and whether the
    cell trained (trained.trained: a drop beyond its spread over seeds)."""

    summary = aggregate(cells, metrics=(*TABLE_METRICS, "loss_drop", "step", "seconds", "train_image_forwards",
                                        "peak_memory_mb"), by=("optimizer", "value"))
    summary["trained"] = [trained(m, s) for m, s in zip(summary.loss_drop_mean, summary.loss_drop_std)]
    return summary


def sweep_against_control(summary: pd.DataFrame, anchor: pd.Series, hyper: str) -> list[str]:
    """Per optimizer of a sweep: its best and worst trained value against the zero-step control (`anchor`); the
    values that did not train are named, with no verdict."""
    lines = []
    for optimizer, part in summary.groupby("optimizer", sort=False):
        untrained = part[~part.trained]
        if len(untrained):
            lines.append(f"{optimizer_label(optimizer)}: {hyper} = "
                         f"{', '.join(f'{v:g}' if isinstance(v, float) else str(v) for v in untrained.value)}: "
                         "**did not train** (the training loss does not fall beyond its spread): no verdict.")
        done = part[part.trained]
        if done.empty:
            continue
        for label, row in (("best", done.loc[done.avg_acc_mean.idxmax()]), ("worst", done.loc[done.avg_acc_mean.idxmin()])):
            call = verdict(row.avg_acc_mean, row.avg_acc_std, anchor.avg_acc_mean, anchor.avg_acc_std)
            lines.append(f"{optimizer_label(optimizer)}, {label} trained {hyper} = {row.value:g}: "
                         f"{row.avg_acc_mean - anchor.avg_acc_mean:+.2f} points of average accuracy against its "
                         f"zero-step control ({method_label(anchor.method)} without a step, {anchor.avg_acc_mean:.2f}): "
                         f"{call}.")
    return lines


def training_lines(summary: pd.DataFrame, hyper: str) -> list[str]:
    """Per optimizer and value of a sweep: the mean per-task training-loss drop ± its spread, and whether it trained."""
    return [f"{optimizer_label(row.optimizer)}, {hyper} = {row.value:g}: training-loss drop "
            f"{format_mean_std(row.loss_drop_mean, row.loss_drop_std, 3)} per task: "
            f"{'trained' if row.trained else '**did not train**'}." for row in summary.itertuples()]


def against_baseline(summary: pd.DataFrame, baseline_value, metric: str = "avg_acc") -> pd.DataFrame:
    """Each value's mean minus the baseline value's (same optimizer), and whether that exceeds the spread; a value
    that did not train (or whose baseline did not) gets "did not train"."""
    lower = metric in LOWER_IS_BETTER
    rows = []
    for optimizer, part in summary.groupby("optimizer", sort=False):
        base = part[part.value == baseline_value]
        if base.empty:
            raise ValueError(f"no cell with value {baseline_value} for {optimizer} to compare with")
        b = base.iloc[0]
        for row in part.itertuples():
            mean, std = getattr(row, f"{metric}_mean"), getattr(row, f"{metric}_std")
            call = "baseline" if row.value == baseline_value else "did not train" if not (row.trained and b.trained) \
                else verdict(mean, std, b[f"{metric}_mean"], b[f"{metric}_std"], lower_is_better=lower)
            rows.append({"optimizer": optimizer, "value": row.value, "difference": mean - b[f"{metric}_mean"],
                         "verdict": call})
    return pd.DataFrame(rows)


def trend(summary: pd.DataFrame, optimizer: str, metric: str = "avg_acc") -> tuple[float, str]:
    """Least-squares slope of the metric against log2(value) for one optimizer, and the verdict of its
    last value against its first (so 'rises with q' is called only beyond the spread)."""
    part = summary[summary.optimizer == optimizer].sort_values("value")
    slope = float(np.polyfit(np.log2(part.value.astype(float)), part[f"{metric}_mean"], 1)[0])
    first, last = part.iloc[0], part.iloc[-1]
    return slope, verdict(last[f"{metric}_mean"], last[f"{metric}_std"], first[f"{metric}_mean"],
                          first[f"{metric}_std"], lower_is_better=metric in LOWER_IS_BETTER)


class Sweep(NamedTuple):
    """One sweep read for its page: every cell, the summary per optimizer and value, the sweep's own zero-step
    control, its step-matched controls (empty without `step_matched`), and what the page says first (Markdown)."""

    cells: pd.DataFrame
    summary: pd.DataFrame
    anchor: pd.Series
    matched: pd.DataFrame
    read: str
    notes: list[str]


def load_sweep(out: Path, ablation_dir, method: str, dataset: str, optimizers, values, seeds, hyper: str,
               run_settings: dict, sweep_optimizers: dict, step_matched: bool = False) -> Sweep:
    """A sweep page's inputs, with its cells and summary written to out/runs.csv and out/summary.csv."""
    cells = load_ablation(ablation_dir, method, dataset, optimizers, values, seeds, hyper)
    summary = ablation_summary(cells)
    cells.to_csv(out / "runs.csv", index=False)
    summary.to_csv(out / "summary.csv", index=False)
    matched = load_matched(ablation_dir, method, dataset, optimizers, values, seeds, hyper) if step_matched \
        else pd.DataFrame()
    if len(matched):
        matched.to_csv(out / "step_matched.csv", index=False)
    read = f"{len(cells)} runs of {method_label(method)} on {dataset_label(dataset)} read from {ablation_dir}/"
    return Sweep(cells, summary, load_control(ablation_dir, method, dataset, seeds), matched, read,
                 sweep_notes(run_settings, sweep_optimizers, optimizers))


def sweep_notes(run_settings: dict, sweep_optimizers: dict, optimizers) -> list[str]:
    """What a sweep's page says first (Markdown paragraphs): the settings its runs take over the grid's."""
    notes = []
    if run_settings:
        notes.append("The sweep's runs use their own settings over the grid's (`ablations.train`): "
                     + _settings(run_settings) + ", so its plain-ZO cell need not equal Table 1's run.")
    if sweep_optimizers:
        notes.append("Its optimizers' settings over the grid's (`ablations.optimizers`): "
                     + "; ".join(f"{optimizer_label(o)} " + _settings(hyper) for o, hyper in sweep_optimizers.items()
                                 if o in optimizers) + ".")
    return notes


def _settings(settings: dict) -> str:
    return ", ".join(f"`{key}: {value}`" for key, value in settings.items())


def sweep_tables(summary: pd.DataFrame, method: str, dataset: str, seeds) -> dict[str, tuple[str, pd.DataFrame]]:
    """Per optimizer of a sweep, the paper's layout of Tables 3 and 4 (one row per metric, one column per
    proportion, mean ± std over seeds) with its caption (Markdown)."""
    tables = {}
    for optimizer, part in summary.groupby("optimizer", sort=False):
        part = part.set_index("value")
        table = pd.DataFrame({f"{v:.0%}": [format_mean_std(part.loc[v, f"{m}_mean"], part.loc[v, f"{m}_std"])
                                           for m in TABLE_METRICS]
                              + [format_mean_std(part.loc[v, "loss_drop_mean"], part.loc[v, "loss_drop_std"], 3)
                                 + ("" if part.loc[v, "trained"] else " (did not train)")] for v in part.index},
                             index=[*TABLE_METRICS.values(), "training-loss drop"])
        tables[optimizer] = (f"**Ours**: {method_label(method)} + {optimizer_label(optimizer)} on "
                             f"{dataset_label(dataset)}, mean ± std over {len(seeds)} seeds", table)
    return tables


def sweep_rows(summary: pd.DataFrame, hyper: str) -> pd.DataFrame:
    """A sweep's summary as shown: one row per optimizer and value, mean ± std over seeds."""
    table = summary.assign(**{m: [format_mean_std(a, b) for a, b in zip(summary[f"{m}_mean"], summary[f"{m}_std"])]
                              for m in TABLE_METRICS},
                           loss_drop=[format_mean_std(a, b, 3) + ("" if t else " (did not train)") for a, b, t in
                                      zip(summary.loss_drop_mean, summary.loss_drop_std, summary.trained)])
    table = table[["optimizer", "value", "n_seeds", *TABLE_METRICS, "loss_drop"]]
    return table.rename(columns={"value": hyper, **TABLE_METRICS, "loss_drop": "training-loss drop"})


def paper_table_3(reference_dir) -> pd.DataFrame:
    """The paper's Table 3 in its layout: one row per metric, one column per proportion p."""
    path = Path(reference_dir) / "table3_historical.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the paper's Table 3 is missing (it ships in reference/)")
    paper = pd.read_csv(path)
    return pd.DataFrame({f"{p:.0%}": [a, l, f] for p, a, l, f in zip(paper.proportion, paper.avg, paper["last"],
                                                                      paper.fgt)},
                        index=list(TABLE_METRICS.values()))


def table_3_claim(paper: pd.DataFrame) -> str:
    """The paper's claim on Table 3, naming the proportions its own table puts above plain ZO-SGD."""
    plain, *mixed = paper.columns
    higher = [p for p in mixed if paper.at["Avg", p] > paper.at["Avg", plain]]
    return ("modest proportions (20–60%) outperform plain ZO-SGD (0%) on average accuracy (its table: higher Avg "
            f"at {', '.join(higher)}, forgetting slightly higher at every p > 0).")


def paper_table_4(reference_dir) -> pd.DataFrame:
    """The paper's Table 4 in its layout: one row per metric, one column per sparsity ratio r. The seed text prints
    no numbers for it; these are the ICML 2025 version's (arXiv 2501.01045v4, reference/table4_sparsity.csv)."""
    path = Path(reference_dir) / "table4_sparsity.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the paper's Table 4 is missing (it ships in reference/)")
    paper = pd.read_csv(path)
    return pd.DataFrame({f"{r:.0%}": [a, l, f] for r, a, l, f in zip(paper.ratio, paper.avg, paper["last"], paper.fgt)},
                        index=list(TABLE_METRICS.values()))


def table_4_claim(paper: pd.DataFrame) -> str:
    """The paper's claim on Table 4, and what its own numbers show that its text does not say: forgetting rises at
    every ratio, each computed from the table."""
    plain, *sparse = paper.columns
    def at_every(metric, above):
        return all((paper.at[metric, r] > paper.at[metric, plain]) == above for r in sparse)

    avg_last = ("higher Avg and Last at every ratio" if at_every("Avg", True) and at_every("Last", True)
                else "not higher Avg and Last at every ratio")
    fgt = paper.loc["Fgt", sparse]
    rises = "rises at every ratio" if at_every("Fgt", True) else "does not rise at every ratio"
    return (f"every sparsity from {sparse[0]} to {sparse[-1]} improves Avg and Last over plain ZO-SGD ({plain}), so "
            f"forgetting is controlled (its table, the ICML 2025 version's: {avg_last}). What the text does not say: "
            f"by its own numbers forgetting {rises}, from {paper.at['Fgt', plain]:.2f} at {plain} to between "
            f"{fgt.min():.2f} and {fgt.max():.2f}.")


# --------------------------------------------------------------------------- Table 5: the enhancements combined
# The setting that switches each enhancement of the ICML version on, and how its Table 5 names it: a variant of the
# enhancements sweep is labelled by the enhancements its settings switch on, so a label cannot contradict a setting.
ENHANCEMENTS = {"fo_epochs": "hybrid", "history": "history", "sparsity": "sparsity"}


def enhancements_of(settings: dict) -> list[str]:
    """The enhancements a variant's settings switch on, in Table 5's order."""
    return [name for key, name in ENHANCEMENTS.items() if settings.get(key)]


def variant_label(optimizer: str, settings: dict) -> str:
    """Table 5's name for a row: the optimizer alone, "+ <enhancement>", or "all three"."""
    on = enhancements_of(settings)
    if not on:
        return optimizer_label(optimizer)
    return "all three" if len(on) == len(ENHANCEMENTS) else " ".join(f"+ {name}" for name in on)


def paper_table_5(reference_dir) -> pd.DataFrame:
    """The ICML version's Table 5 (EASE + ZO-SGD on ImageNet-A, reference/table5_enhancements.csv): avg and last per
    configuration. The seed text has no Table 5."""
    path = Path(reference_dir) / "table5_enhancements.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the ICML version's Table 5 is missing (it ships in reference/)")
    paper = pd.read_csv(path)
    return paper.set_index("label")[["avg", "last"]].rename(columns={"avg": "Avg", "last": "Last"})


def table_5_claim(paper: pd.DataFrame) -> str:
    """The ICML version's claim on Table 5, with the rows its own table puts above FO-SGD computed from it."""
    fo = paper.loc["FO-SGD"]
    above = [label for label, row in paper.iterrows() if label not in ("FO-SGD", "ZO-SGD")
             and row.Avg > fo.Avg and row.Last > fo.Last]
    return ("the enhancements are complementary: each improves plain ZO-SGD, and combined they overtake backprop "
            f"(its table: above FO-SGD's {fo.Avg:.2f} / {fo.Last:.2f} on both Avg and Last: "
            f"{', '.join(above) or 'no row'}).")


def _split_rows(summary: pd.DataFrame, variants: dict) -> tuple[pd.Series | None, pd.Series | None, pd.DataFrame]:
    """(the plain forward-pass row, the backprop row, the forward-pass rows with an enhancement) of the sweep."""
    forward = summary[summary.optimizer.map(lambda o: OPTIMIZERS[o].forward_pass_only)]
    backprop = summary[~summary.optimizer.map(lambda o: OPTIMIZERS[o].forward_pass_only)]
    plain = forward[[not enhancements_of(variants[v]) for v in forward.value]]
    enhanced = forward[[bool(enhancements_of(variants[v])) for v in forward.value]]
    return (plain.iloc[0] if len(plain) else None, backprop.iloc[0] if len(backprop) else None, enhanced)


def _call(row: pd.Series, other: pd.Series | None, metric: str) -> str:
    if other is None:
        return "—"
    if not (row.trained and other.trained):
        return "did not train"
    return verdict(row[f"{metric}_mean"], row[f"{metric}_std"], other[f"{metric}_mean"], other[f"{metric}_std"],
                   lower_is_better=metric in LOWER_IS_BETTER)


def enhancement_table(summary: pd.DataFrame, anchor: pd.Series, variants: dict) -> pd.DataFrame:
    """The enhancements sweep in Table 5's order: the zero-step control, backprop, plain ZO, each enhancement and the
    combination, with mean ± std over seeds, the training-loss drop (and whether it trained), and each enhanced
    row's verdicts on average accuracy against plain ZO, against backprop and against the zero-step control."""
    plain, backprop, enhanced = _split_rows(summary, variants)
    rows = [{"row": f"{method_label(anchor.method)} without a step (zero-step control)",
             **{name: format_mean_std(anchor[f"{m}_mean"], anchor[f"{m}_std"]) for m, name in TABLE_METRICS.items()},
             "training-loss drop": "—", "settings": "—"}]
    for row in [r for r in (backprop, plain) if r is not None] + [r for _, r in enhanced.iterrows()]:
        settings = variants[row.value]
        entry = {"row": variant_label(row.optimizer, settings),
                 **{name: format_mean_std(row[f"{m}_mean"], row[f"{m}_std"]) for m, name in TABLE_METRICS.items()},
                 "training-loss drop": format_mean_std(row.loss_drop_mean, row.loss_drop_std, 3)
                 + ("" if row.trained else " (did not train)"),
                 "settings": _settings(settings) or "the grid's"}
        if enhancements_of(settings):
            entry |= {"Avg against plain ZO": _call(row, plain, "avg_acc"),
                      "Avg against backprop": _call(row, backprop, "avg_acc"),
                      "Avg against zero-step": verdict(row.avg_acc_mean, row.avg_acc_std, anchor.avg_acc_mean,
                                                       anchor.avg_acc_std) if row.trained else "did not train"}
        rows.append(entry)
    return pd.DataFrame(rows).fillna("")


def enhancement_statements(summary: pd.DataFrame, anchor: pd.Series, variants: dict) -> list[str]:
    """What the enhancements sweep says, per enhanced row: against plain ZO (avg, last, forgetting), against backprop
    (avg, last), each called only beyond the spread and only between rows that trained; and whether plain ZO and
    backprop themselves trained, and by how much they beat the zero-step control."""
    plain, backprop, enhanced = _split_rows(summary, variants)
    lines = []
    for row in [r for r in (backprop, plain) if r is not None]:
        call = verdict(row.avg_acc_mean, row.avg_acc_std, anchor.avg_acc_mean, anchor.avg_acc_std)
        lines.append(f"{variant_label(row.optimizer, variants[row.value])}: training-loss drop "
                     f"{format_mean_std(row.loss_drop_mean, row.loss_drop_std, 3)} per task, "
                     + (f"trained; average accuracy {row.avg_acc_mean - anchor.avg_acc_mean:+.2f} points against the "
                        f"zero-step control ({call})." if row.trained else "**did not train**: no verdict."))
    for _, row in enhanced.iterrows():
        label = variant_label(row.optimizer, variants[row.value])
        if not row.trained:
            lines.append(f"{label}: **did not train** (its training loss does not fall beyond its spread): no verdict.")
            continue
        parts = []
        for other, name, metrics in ((plain, "plain ZO", TABLE_METRICS), (backprop, "backprop",
                                                                          {"avg_acc": "Avg", "last_acc": "Last"})):
            if other is None:
                continue
            calls = {metric_name: _call(row, other, metric) for metric, metric_name in metrics.items()}
            parts.append(f"against {name}: " + ", ".join(f"{metric_name} {call}" for metric_name, call in calls.items()))
        lines.append(f"{label} ({_settings(variants[row.value])}): Avg {format_mean_std(row.avg_acc_mean, row.avg_acc_std)}; "
                     + "; ".join(parts) + ".")
    return lines


def table_5_text(paper: pd.DataFrame, summary: pd.DataFrame, anchor: pd.Series, variants: dict) -> str:
    """The closing text of the enhancements page (Markdown): the ICML version's claim, then ours."""
    return (f"**The paper's claim** (ICML version, Table 5): {table_5_claim(paper)}\n\n**Ours** (a difference is "
            "called only where it exceeds the two standard deviations together, and only between rows that trained):"
            "\n\n" + bullets(enhancement_statements(summary, anchor, variants)))


def sweep_text(paper_claim: str, summary: pd.DataFrame, anchor: pd.Series, hyper: str,
               matched: pd.DataFrame | None = None) -> str:
    """The closing text of Tables 3 and 4 (Markdown): the paper's claim, then ours: per optimizer and metric,
    the values better than the sweep's first (plain ZO), worse, within the spread or untrained; each value against
    its step-matched control (`matched`: plain ZO at the rate that gives the same mean step), which tells a better
    direction from a smaller step; and the best and worst value against the zero-step control (`anchor`)."""
    plain = summary.value.min()
    calls = {metric: against_baseline(summary, plain, metric) for metric in TABLE_METRICS}
    lines = training_lines(summary, hyper)
    for optimizer in summary.optimizer.unique():
        for metric, name in TABLE_METRICS.items():
            mine = calls[metric][(calls[metric].optimizer == optimizer) & (calls[metric].verdict != "baseline")]
            said = {call: ", ".join(f"{v:.0%}" for v in mine[mine.verdict == call].value) or "no value"
                    for call in ("better", "worse", "within the spread", "did not train")}
            lines.append(f"{optimizer_label(optimizer)}, {name}: better than {plain:.0%} at {said['better']}; "
                         f"worse at {said['worse']}; within the spread at {said['within the spread']}"
                         + (f"; did not train at {said['did not train']}" if said["did not train"] != "no value" else "")
                         + ".")
    if matched is not None and len(matched):
        lines += step_matched_lines(summary, matched, hyper)
    lines += sweep_against_control(summary, anchor, hyper)
    return (f"**The paper's claim**: {paper_claim}\n\n**Ours** (a difference is called only where it exceeds the "
            "two standard deviations together, and only between rows that trained):\n\n" + bullets(lines))


def step_matched_table(summary: pd.DataFrame, matched: pd.DataFrame, hyper: str) -> pd.DataFrame:
    """Per optimizer and value: the value's mean step and accuracy beside its step-matched control's (plain at the
    rate that reaches the same mean step, measured), and the verdict of the value against the control."""
    rows = []
    for control in matched.itertuples():
        value = summary[(summary.optimizer == control.optimizer) & (summary.value == control.value)].iloc[0]
        rows.append({
            "optimizer": optimizer_label(control.optimizer), hyper: f"{control.value:.0%}",
            "mean step": f"{value.step_mean:.4f}", "control's lr": f"{control.lr:.4g}",
            "control's mean step": f"{control.step_mean:.4f}",
            "Avg": format_mean_std(value.avg_acc_mean, value.avg_acc_std),
            "control's Avg": format_mean_std(control.avg_acc_mean, control.avg_acc_std),
            "verdict": "did not train" if not value.trained else verdict(
                value.avg_acc_mean, value.avg_acc_std, control.avg_acc_mean, control.avg_acc_std)})
    return pd.DataFrame(rows)


def step_matched_lines(summary: pd.DataFrame, matched: pd.DataFrame, hyper: str) -> list[str]:
    """Whether each value helps beyond the smaller step it takes (`step_matched_table`'s verdicts, in words)."""
    table = step_matched_table(summary, matched, hyper)
    said = {"better": "helps beyond its smaller step", "worse": "does worse than a plain run taking steps of its size",
            "within the spread": "is within the spread of a plain run taking steps of its size: what it gives, a "
                                 "smaller step gives too",
            "did not train": "did not train: no verdict"}
    lines = []
    for _, row in table.iterrows():
        lr, step, accuracy = row["control's lr"], row["control's mean step"], row["control's Avg"]
        lines.append(f"{row.optimizer}, {hyper} = {row[hyper]}: mean step {row['mean step']} (its control, at lr {lr}, "
                     f"reached {step}); average accuracy {row.Avg} against {accuracy}: it {said[row.verdict]}.")
    return lines


def query_budget_statements(summary: pd.DataFrame, anchor: pd.Series, hyper: str) -> list[str]:
    """Figure 5's claim that accuracy rises with q, per optimizer: whether each q trained, the slope per doubling of
    q and the largest q against the smallest (both trained); then the best and worst q against the zero-step
    control (`anchor`)."""
    lines = training_lines(summary, hyper)
    for optimizer in summary.optimizer.unique():
        part = summary[summary.optimizer == optimizer].set_index("value")
        q_low, q_high = part.index.min(), part.index.max()
        said = {"better": f"average accuracy at q = {q_high} is above q = {q_low} beyond the spread: **agrees** with "
                          "the paper",
                "worse": f"average accuracy at q = {q_high} is below q = {q_low} beyond the spread: **disagrees** "
                         "with the paper",
                "within the spread": f"q = {q_high} and q = {q_low} differ by less than their spread: our runs "
                                     "neither confirm nor contradict the paper's rise"}
        if not (part.loc[q_low, "trained"] and part.loc[q_high, "trained"]):
            lines.append(f"**{optimizer_label(optimizer)}**: q = {q_low} or q = {q_high} did not train: no verdict on q.")
            continue
        slope, call = trend(summary, optimizer, "avg_acc")
        drop_slope = float(np.polyfit(np.log2(part.index.astype(float)), part.loss_drop_mean, 1)[0])
        lines.append(f"**{optimizer_label(optimizer)}**: slope {slope:+.2f} points of average accuracy per doubling of "
                     f"q ({drop_slope:+.3f} of training-loss drop); {said[call]}.")
    return lines + sweep_against_control(summary, anchor, hyper)


# ------------------------------------------------------------------ official code vs ours, measured
def switch_summary(ablation_dir, method: str, dataset: str, seeds, switches: dict) -> pd.DataFrame:
    """One row per switch × optimizer × choice: accuracy and forgetting (mean, std over seeds) and, for the
    choice that is not the official code's, the verdict against it."""
    rows = []
    for name, sweep in switches.items():
        cells = load_ablation(Path(ablation_dir) / name, method, dataset, sweep["optimizers"], sweep["values"], seeds,
                              sweep["hyper"])
        for optimizer, part in ablation_summary(cells).groupby("optimizer", sort=False):
            official = part[part.value == sweep["official"]].iloc[0]
            for row in part.itertuples():
                is_official = row.value == sweep["official"]
                untrained = not (row.trained and official.trained)
                rows.append({
                    "switch": name, "optimizer": optimizer, "value": row.value, "official": is_official,
                    "trained": row.trained, "loss_drop_mean": row.loss_drop_mean, "loss_drop_std": row.loss_drop_std,
                    **{f"{m}_{s}": getattr(row, f"{m}_{s}") for m in TABLE_METRICS for s in ("mean", "std")},
                    **{f"{m}_verdict": "official" if is_official else "did not train" if untrained else verdict(
                        getattr(row, f"{m}_mean"), getattr(row, f"{m}_std"), official[f"{m}_mean"],
                        official[f"{m}_std"], lower_is_better=m in LOWER_IS_BETTER) for m in TABLE_METRICS},
                })
    return pd.DataFrame(rows)


def switch_notes(run_settings: dict, sweep_optimizers: dict) -> list[str]:
    """What the switches' page says first (Markdown): the settings its runs take over the grid's."""
    if not (run_settings or sweep_optimizers):
        return []
    return ["The switches run with the sweeps' settings over the grid's: " + _settings(run_settings)
            + "".join(f"; {optimizer_label(o)} " + _settings(hyper) for o, hyper in sweep_optimizers.items())
            + " (`ablations.train`, `ablations.optimizers`)."]


def switch_table(summary: pd.DataFrame, switches: dict, anchor: pd.Series) -> pd.DataFrame:
    """`switch_summary` as shown, each side's verdict against the official code's, and the no-training row
    (`anchor`) last: what every side of every switch is worth against."""
    def choice(row):
        fixed = "".join(f", {k} = {v}" for k, v in switches[row.switch].get("with", {}).items())
        return official_side(row.value, row.official) + (f" [{fixed[2:]}]" if fixed else "")

    table = pd.DataFrame({
        "switch": summary.switch,
        "optimizer": [optimizer_label(o) for o in summary.optimizer],
        "choice": [choice(row) for row in summary.itertuples()],
        **{label: [format_mean_std(m, s) for m, s in zip(summary[f"{key}_mean"], summary[f"{key}_std"])]
           for key, label in TABLE_METRICS.items()},
        "loss drop": [format_mean_std(m, s, 3) + ("" if t else " (did not train)")
                      for m, s, t in zip(summary.loss_drop_mean, summary.loss_drop_std, summary.trained)],
        "Avg vs official": summary.avg_acc_verdict,
        "Fgt vs official": summary.forgetting_verdict,
    })
    table.loc[len(table)] = {"switch": "zero-step control", "optimizer": "none", "choice": method_label(anchor.method),
                             **{label: format_mean_std(anchor[f"{key}_mean"], anchor[f"{key}_std"])
                                for key, label in TABLE_METRICS.items()},
                             "loss drop": "", "Avg vs official": "", "Fgt vs official": ""}
    return table


def official_side(value, official: bool) -> str:
    """A switch's value as the page names it: the official code's marked so, once (a value named `official` is
    already marked)."""
    return f"{value}" + (" (official)" if official and str(value) != "official" else "")


def switch_statements(summary: pd.DataFrame, anchor: pd.Series) -> list[str]:
    """Per switch and optimizer: each side against the official code's, and the official side against no
    training (`anchor`)."""
    lines = []
    for name, part in summary.groupby("switch", sort=False):
        for optimizer, rows in part.groupby("optimizer", sort=False):
            official = rows[rows.official].iloc[0]
            against_none = "did not train" if not official.trained else verdict(
                official.avg_acc_mean, official.avg_acc_std, anchor.avg_acc_mean, anchor.avg_acc_std)
            for row in rows[~rows.official].itertuples():
                if row.avg_acc_verdict == "did not train":
                    side = "this side" if not row.trained else "the official side"
                    lines.append(f"`{name}`, {optimizer_label(optimizer)}: {row.value} against "
                                 f"{_official_value(official.value)}: {side} **did not train** (its training loss does "
                                 "not fall beyond its spread): no verdict.")
                    continue
                lines.append(
                    f"`{name}`, {optimizer_label(optimizer)}: {row.value} against {_official_value(official.value)}: "
                    f"{row.avg_acc_mean - official.avg_acc_mean:+.2f} points of average accuracy "
                    f"({row.avg_acc_verdict}), {row.forgetting_mean - official.forgetting_mean:+.2f} points of "
                    f"forgetting ({row.forgetting_verdict}); "
                    f"the official side is {official.avg_acc_mean - anchor.avg_acc_mean:+.2f} points from the zero-step "
                    f"control ({against_none}).")
    return lines


def _official_value(value) -> str:
    return "the official side" if str(value) == "official" else f"the official {value}"


def zo_scope_statement(summary: pd.DataFrame) -> str:
    """Whether the official ZO scope (every tensor, EASE's stored prototypes too) raises forgetting."""
    scope = summary[summary.switch == "zo_scope"]
    official, ours = scope[scope.official].iloc[0], scope[~scope.official].iloc[0]
    if not (official.trained and ours.trained):
        return ("**Does the official ZO scope raise EASE's forgetting?** Not answered here: a side did not train, and "
                "low forgetting from learning nothing says nothing about the scope.")
    raised = verdict(official.forgetting_mean, official.forgetting_std, ours.forgetting_mean, ours.forgetting_std,
                     lower_is_better=True)
    return (f"**Does the official ZO scope raise EASE's forgetting?** Perturbing the stored prototypes gives "
            f"{format_mean_std(official.forgetting_mean, official.forgetting_std)} forgetting against "
            f"{format_mean_std(ours.forgetting_mean, ours.forgetting_std)} with the trainable scope: "
            + ("more forgetting, beyond the spread." if raised == "worse" else "less forgetting, beyond the spread."
               if raised == "better" else "within the spread, so not resolved at this scale.")
            + " The paper reports 15.64 for ZO-SGD against 7.32 for FO on CIFAR-100 (Table 1).")


def forgetting_formulas(runs: pd.DataFrame) -> pd.DataFrame:
    """Per method × optimizer × dataset: forgetting by PILOT's formula and by the best-before-the-end one,
    mean and std over seeds, from the same accuracy matrices."""
    from zeroflow_core.metrics import FORGETTING_FORMULAS, forgetting

    def matrix(m):
        return np.array([[np.nan if v is None else v for v in row] for row in m], dtype=float)

    tidy = runs.assign(**{f"forgetting_{f}": [forgetting(matrix(m), f) for m in runs.acc_matrix]
                          for f in FORGETTING_FORMULAS})
    return aggregate(tidy, metrics=[f"forgetting_{f}" for f in FORGETTING_FORMULAS])


def forgetting_formulas_table(formulas: pd.DataFrame) -> pd.DataFrame:
    """`forgetting_formulas` as shown: both formulas' mean ± std and the difference of their means."""
    return pd.DataFrame({
        "method": [method_label(m) for m in formulas.method],
        "optimizer": [optimizer_label(o) for o in formulas.optimizer],
        "dataset": [dataset_label(d) for d in formulas.dataset],
        "PILOT (ours now)": [format_mean_std(m, s) for m, s in zip(formulas.forgetting_pilot_mean,
                                                                   formulas.forgetting_pilot_std)],
        "best before the end": [format_mean_std(m, s) for m, s in zip(formulas.forgetting_before_final_mean,
                                                                      formulas.forgetting_before_final_std)],
        "difference": (formulas.forgetting_pilot_mean - formulas.forgetting_before_final_mean).round(2),
    })


def forgetting_formulas_statement(table: pd.DataFrame) -> str:
    """How often PILOT's formula gives the higher forgetting, from `forgetting_formulas_table`."""
    moved = table[table.difference > 0]
    return (f"PILOT's formula gives a higher forgetting in {len(moved)} of {len(table)} method × optimizer rows "
            + (f"(by up to {table.difference.max():.2f} points)" if len(moved) else
               "(no old task ended above its earlier best, so the two formulas agree here)")
            + "; it cannot give a lower one, since its maximum runs over more stages.")


# ------------------------------------------------------------------------------------------ Figure 7
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


# ------------------------------------------------------------------------------- Figures 3 and 6
# landscape.summary_table's statistics as shown, with the digits each needs.
TRAJECTORY_COLUMNS = {"final_distance": ("final distance to θ*", 3), "final_loss": ("final total loss", 3),
                      "path_length": ("path length", 3), "jitter": ("jitter", 3), "turning": ("turning (°)", 1)}


def toy_problem_text(problem, panels) -> str:
    """The toy problem's minima and each panel's optimizer and hyper-parameters (landscape.TwoTaskProblem,
    landscape.Panel)."""
    lines = [f"old-task minimum a = {problem.a}, new-task minimum b = {problem.b}, "
             f"total minimum θ* = {problem.total_minimum().round(3)}; every trajectory starts at a"]
    lines += [f"({panel.letter}) {panel.title}: {panel.optimizer}, "
              + ", ".join(f"{key}={value}" for key, value in panel.hyper.items()) for panel in panels]
    return "\n".join(lines)


def trajectory_table(summary: pd.DataFrame) -> pd.DataFrame:
    """landscape.summary_table as shown: each statistic's mean ± std over seeds."""
    shown = summary[["panel", "title", "optimizer", "n_seeds"]].copy()
    for name, (label, digits) in TRAJECTORY_COLUMNS.items():
        shown[label] = [format_mean_std(mean, std, digits)
                        for mean, std in zip(summary[f"{name}_mean"], summary[f"{name}_std"])]
    return shown


def trajectory_claims(convergence: str, problem, stats: pd.DataFrame, summary: pd.DataFrame,
                      verdicts: pd.DataFrame) -> str:
    """The trajectory figures' claims (Markdown): the `convergence` claim, judged by every panel ending within
    10% of the start distance from θ* in every seed (landscape.statistics), then landscape.check_claims'
    verdicts, one line per claim, and their count."""
    start = float(np.linalg.norm(problem.a - problem.total_minimum()))
    reached = stats.groupby("panel", sort=False).final_distance.max() < 0.1 * start
    titles = summary.set_index("panel").title
    missed = [titles[letter] for letter, ok in reached.items() if not ok]
    outcome = "agrees" if reached.all() else "disagrees" if not reached.any() else "partly"
    lines = [f"{convergence} — ours: **{outcome}**: {reached.sum()} of {len(reached)} panels end within 10% of "
             f"the start distance from θ\\* ({start:.2f}) in every seed"
             + (f"; not {', '.join(missed)}" if missed else "")]

    def mean_std(mean, std, metric):
        return format_mean_std(mean, std, 1 if metric == "turning" else 2)

    for claim, rows in verdicts.groupby("claim", sort=False):
        parts = [f"{row.metric} **{row.outcome}** ({row.rougher} "
                 f"{mean_std(row.rougher_mean, row.rougher_std, row.metric)} vs {row.smoother} "
                 f"{mean_std(row.smoother_mean, row.smoother_std, row.metric)})"
                 for row in rows.itertuples()]
        lines.append(f"{claim} — ours: " + "; ".join(parts))
    counts = verdicts.outcome.value_counts()
    return (bullets(lines) + f"\n\nOver all {len(verdicts)} comparisons: "
            + ", ".join(f"{n} {o}" for o, n in counts.items()))
