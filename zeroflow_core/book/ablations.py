"""The one-setting sweeps of params.yaml's ablations (runs/ablation/<sweep>/): loading and summarising a sweep, each
value against the sweep's first, its step-matched control and the zero-step control, and the pages they make:
Figure 5 (the query budget q), Table 3 (historical mixing), Table 4 (sparse directions); Table 5, Cost and Claims
read the same summaries."""
from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import yaml

from zeroflow_core.book.report import (LOWER_IS_BETTER, TABLE_METRICS, aggregate, bullets, dataset_label,
                                       format_mean_std, method_label, optimizer_label, run_spent, verdict)
from zeroflow_core.book.trained import trained
from zeroflow_core.pipeline.cells import MATCHED_DIR, control_cell_name, matched_cell_name, mean_step, sweep_cell_name
from zeroflow_core.run.config import NO_OPTIMIZER
from zeroflow_core.run.metrics import mean_loss_drop

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
                     + settings_text(run_settings) + ", so its plain-ZO cell need not equal Table 1's run.")
    if sweep_optimizers:
        notes.append("Its optimizers' settings over the grid's (`ablations.optimizers`): "
                     + "; ".join(f"{optimizer_label(o)} " + settings_text(hyper) for o, hyper in sweep_optimizers.items()
                                 if o in optimizers) + ".")
    return notes


def settings_text(settings: dict) -> str:
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
