"""Table 2: memory and time of one optimizer step (runs/efficiency/*.json), sequential and batched, beside the
paper's table, and the statements made from them."""
from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import yaml

from zeroflow_core.book.report import optimizer_label

# A CIFAR-100 task of the paper: 50,000 training images / 10 tasks (Table 2's per-epoch projection).
CIFAR100_TASK_IMAGES = 5000


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
