"""The book's figures: every page's matplotlib drawing, each figure saved as a PNG that the page displays.

Each function draws from tables that report.py, analysis.py and landscape.py compute (landscape's objects
are passed in, not imported: only the trajectory pages depend on it), saves to `path` and returns it, so a
figure is drawn without a kernel (tests/test_report.py). An optimizer's colour comes from its registry
entry and its line style from its family, the same in every figure.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D

from zeroflow_core.analysis import heldout_summary, step_losses
from zeroflow_core.config import NO_OPTIMIZER
from zeroflow_core.methods import METHODS
from zeroflow_core.optim.registry import NO_TRAINING, row_spec
from zeroflow_core.report import (FIGURE_5_PAPER, PAPER_SETUP, dataset_label, format_mean_std, method_label,
                                  optimizer_colour, optimizer_label)

# Figure 4's lines: first-order solid, zeroth-order dashed, forward gradient dotted.
FAMILY_LINES = {"backprop": "-", "zeroth-order": "--", "forward-grad": ":"}
TITLES = {"avg_acc": "average accuracy (%)", "forgetting": "forgetting (%), lower is better"}
TRAJECTORY = "#00b8d4"  # cyan, dark enough to read on white


def setup(out_dir) -> Path:
    """Agg (no display needed) and one readable style for every page; returns the page's folder, made."""
    matplotlib.use("Agg")
    sns.set_theme(style="whitegrid", context="notebook")
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 110, "savefig.bbox": "tight"})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _save(fig, path) -> Path:
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def _bar_offset(k: int, n: int, width: float) -> float:
    """Where bar k of n sits beside the others in a group of total width n · width, centred on the tick."""
    return (k - (n - 1) / 2) * width


def anchor_label(anchor: pd.Series) -> str:
    """A reference row's name: a method's zero-step control, or the no-training baseline."""
    trains = anchor.method in METHODS and METHODS[anchor.method].trains
    return f"{'zero-step control' if trains else 'no training'} ({method_label(anchor.method)})"


def _no_training_line(ax, anchor: pd.Series, metric: str) -> None:
    ax.axhline(anchor[f"{metric}_mean"], color=NO_TRAINING.colour, linewidth=1.2, label=anchor_label(anchor))


# ------------------------------------------------------------------------------------------ Figure 2
def figure_2(overview, optimizers, datasets, path) -> Path:
    """Bars of ours (error bars: one std) and the paper's (hatched) per optimizer, one row per method, average
    accuracy and forgetting; the no-training rows as lines (ours with a band of one std, the paper's dashed)."""
    series = [(f"ours: {dataset_label(d)}", overview.ours[overview.ours.dataset == d], {}) for d in datasets]
    series += [(f"paper: {dataset_label(d)} ({PAPER_SETUP})", overview.paper[overview.paper.dataset == d],
                {"hatch": "//", "alpha": 0.55}) for d in overview.paper_datasets]
    palette = plt.get_cmap("Blues")(np.linspace(0.55, 0.85, len(datasets))).tolist()
    palette += plt.get_cmap("Greys")(np.linspace(0.35, 0.6, len(overview.paper_datasets))).tolist()
    panels = [("avg_acc", "average accuracy (%), higher is better"), ("forgetting", "forgetting (%), lower is better")]
    baseline = method_label(overview.baseline)
    fig, axes = plt.subplots(len(overview.methods), 2, figsize=(13, 4 * len(overview.methods)), squeeze=False)
    width = 0.8 / len(series)
    x = np.arange(len(optimizers))
    for row, method in enumerate(overview.methods):
        for col, (metric, title) in enumerate(panels):
            ax = axes[row, col]
            for k, (label, frame, style) in enumerate(series):
                frame = frame[frame.method == method].set_index("optimizer").reindex(optimizers)
                # no error bar where there is no spread measured (the paper's values, a single seed)
                std = frame.get(f"{metric}_std")
                std = None if std is None or std.isna().all() else std.fillna(0)
                ax.bar(x + _bar_offset(k, len(series), width), frame[f"{metric}_mean"], width, yerr=std,
                       capsize=2, color=palette[k], edgecolor="black", linewidth=0.4, label=label, **style)
            for anchor in overview.anchors.itertuples():
                mean, std = getattr(anchor, f"{metric}_mean"), getattr(anchor, f"{metric}_std")
                ax.axhline(mean, color=NO_TRAINING.colour, linewidth=1.2,
                           label=f"ours: no training ({baseline}, {dataset_label(anchor.dataset)})")
                ax.axhspan(mean - np.nan_to_num(std), mean + np.nan_to_num(std), color=NO_TRAINING.colour, alpha=0.08,
                           linewidth=0)
            for control in overview.ours[(overview.ours.method == method)
                                         & (overview.ours.optimizer == NO_OPTIMIZER)].itertuples():
                ax.axhline(getattr(control, f"{metric}_mean"), color=NO_TRAINING.colour, linestyle=":", linewidth=1.4,
                           label=f"ours: zero-step control ({dataset_label(control.dataset)})")
            for anchor in overview.paper_anchors.itertuples():
                value = getattr(anchor, f"{metric}_mean")
                if not np.isnan(value):
                    ax.axhline(value, color="grey", linestyle="--", linewidth=1.2,
                               label=f"published no training ({baseline}, APER release, IN-21K, "
                                     f"{dataset_label(anchor.dataset)})")
            ax.set_title(f"{method_label(method)}: {title}")
            ax.set_xticks(x, [optimizer_label(o) for o in optimizers], rotation=35, ha="right")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, bbox_to_anchor=(0.5, 1.0), frameon=False)
    fig.tight_layout()
    return _save(fig, path)


# ------------------------------------------------------------------------------------------ Figure 4
def figure_4(summary: pd.DataFrame, methods, datasets, optimizers, baseline: str, path) -> Path:
    """report.curve_summary: one panel per method and dataset, one line per optimizer (mean, band one std), the
    no-training row (`baseline`) as a thick black line and the method's zero-step control as a dotted one."""
    anchor = summary[summary.method == baseline]
    fig, axes = plt.subplots(len(methods), len(datasets), figsize=(6 * len(datasets), 3.8 * len(methods)),
                             squeeze=False, sharey=True)
    for i, method in enumerate(methods):
        for j, dataset in enumerate(datasets):
            ax = axes[i, j]
            for optimizer in optimizers:
                s = summary[(summary.method == method) & (summary.dataset == dataset)
                            & (summary.optimizer == optimizer)]
                color = optimizer_colour(optimizer)
                ax.plot(s.stage, s["mean"], FAMILY_LINES[row_spec(optimizer).family], marker="o", markersize=3,
                        color=color, label=optimizer_label(optimizer))
                band = s["std"].fillna(0)
                ax.fill_between(s.stage, s["mean"] - band, s["mean"] + band, color=color, alpha=0.12, linewidth=0)
            a = anchor[anchor.dataset == dataset]
            ax.plot(a.stage, a["mean"], "-", color=NO_TRAINING.colour, linewidth=2.2,
                    label=f"no training ({method_label(baseline)})")
            control = summary[(summary.method == method) & (summary.dataset == dataset)
                              & (summary.optimizer == NO_OPTIMIZER)]
            ax.plot(control.stage, control["mean"], ":", color=NO_TRAINING.colour, linewidth=2.2,
                    label="zero-step control (the method, no step)")
            ax.set_title(f"{method_label(method)} on {dataset_label(dataset)}")
            ax.set_xlabel("incremental stage (tasks learned)")
            ax.set_ylabel("accuracy on seen classes (%)")
            ax.set_xticks(sorted(summary.stage.unique()))
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.tight_layout()
    return _save(fig, path)


# ------------------------------------------------------------------------------------------ Table 2
def table_2(tables: dict, paper: pd.DataFrame, path) -> Path:
    """Memory and time relative to FO-SGD: bars per model measured (analysis.efficiency_table) beside the
    paper's (hatched, analysis.paper_table_2), with one legend below both charts, where it covers no bar."""
    labels = list(dict.fromkeys(list(paper.optimizer) + [l for t in tables.values() for l in t.optimizer]))
    series = [(f"ours: {m}", t.set_index("optimizer"), False) for m, t in tables.items()]
    series.append((f"paper: {PAPER_SETUP} (GPU)", paper.set_index("optimizer"), True))
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
    width = 0.8 / len(series)
    x = np.arange(len(labels))
    for ax, (ours_col, paper_col, title) in zip(axes, [
            ("memory ÷ FO-SGD", "memory ÷ FO-SGD", "peak memory ÷ FO-SGD's"),
            ("step ÷ FO-SGD step", "epoch ÷ FO-SGD", "time per step (paper: per epoch) ÷ FO-SGD's")]):
        for k, (label, frame, is_paper) in enumerate(series):
            values = frame[paper_col if is_paper else ours_col].reindex(labels)
            ax.bar(x + _bar_offset(k, len(series), width), values, width, label=label,
                   hatch="//" if is_paper else None, edgecolor="black", linewidth=0.4)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_title(title)
        ax.set_xticks(x, labels, rotation=35, ha="right")
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=len(series), frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return _save(fig, path)


# ---------------------------------------------------------------------------------- Figure 5, Tables 3–4
def figure_5(summary: pd.DataFrame, anchor: pd.Series, paper_points: pd.DataFrame, path) -> Path:
    """Ours against q (average accuracy, forgetting; band one std; the no-training row `anchor` as a line)
    and the paper's points (report.figure_5_paper_points): printed ones filled, read-off ones hollow."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for optimizer, part in summary.groupby("optimizer", sort=False):
        part = part.sort_values("value")
        color, label = optimizer_colour(optimizer), optimizer_label(optimizer)
        for ax, metric in zip(axes, ("avg_acc", "forgetting")):
            mean, std = part[f"{metric}_mean"], part[f"{metric}_std"].fillna(0)
            ax.plot(part.value, mean, "o-", color=color, label=label)
            ax.fill_between(part.value, mean - std, mean + std, color=color, alpha=0.2)
            ax.set_title(f"ours: {TITLES[metric]}")
        points = paper_points[paper_points.optimizer == optimizer]
        if points.empty:
            continue
        printed, read_off = points[points.printed], points[~points.printed]
        axes[2].plot(points.q, points.avg, "--", color=color, linewidth=1)
        axes[2].plot(printed.q, printed.avg, "s", color=color, label=f"{label}, printed (Table 1)")
        if len(read_off):
            axes[2].plot(read_off.q, read_off.avg, "s", markerfacecolor="white", color=color,
                         label=f"{label}, ≈ read off the figure")
    for ax, metric in zip(axes, ("avg_acc", "forgetting")):
        _no_training_line(ax, anchor, metric)
    axes[2].set_title(f"paper: {method_label(FIGURE_5_PAPER['method'])} on {dataset_label(FIGURE_5_PAPER['dataset'])} "
                      f"({PAPER_SETUP}), known points")
    values = sorted(summary.value.unique())
    for ax, ticks in ((axes[0], values), (axes[1], values), (axes[2], FIGURE_5_PAPER["q"])):
        ax.set_xscale("log", base=2)
        ax.set_xticks(ticks, [str(v) for v in ticks])
        ax.set_xlabel("query budget q")
        ax.legend(frameon=False)
    fig.tight_layout()
    return _save(fig, path)


def sweep(summary: pd.DataFrame, hyper: str, anchor: pd.Series, path) -> Path:
    """Tables 3 and 4 as curves: average accuracy and forgetting against the proportion (%), error bars one
    std, the no-training row `anchor` as a line."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for optimizer, part in summary.groupby("optimizer", sort=False):
        part = part.sort_values("value")
        for ax, metric in zip(axes, ("avg_acc", "forgetting")):
            mean, std = part[f"{metric}_mean"], part[f"{metric}_std"].fillna(0)
            ax.errorbar(part.value * 100, mean, yerr=std, fmt="o-", capsize=3, label=optimizer_label(optimizer))
            ax.set_xlabel(f"{hyper} (%)")
            ax.set_title(TITLES[metric])
    for ax, metric in zip(axes, ("avg_acc", "forgetting")):
        _no_training_line(ax, anchor, metric)
    axes[0].legend(frameon=False)
    fig.tight_layout()
    return _save(fig, path)


# ------------------------------------------------------------------ official code vs ours, measured
def switches(summary: pd.DataFrame, anchor: pd.Series, path) -> Path:
    """analysis.switch_summary: each side of each switch (official: black dots), error bars one std, beside
    the no-training row `anchor`."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.45 * len(summary) + 1.2), sharey=True)
    labels = [f"{row.switch}: {optimizer_label(row.optimizer)}, {row.value}" for row in summary.itertuples()]
    for ax, metric in zip(axes, ("avg_acc", "forgetting")):
        for y, row in enumerate(summary.itertuples()):
            std = getattr(row, f"{metric}_std")
            ax.errorbar(getattr(row, f"{metric}_mean"), y, xerr=0 if pd.isna(std) else std,
                        fmt="o" if row.official else "s", color="black" if row.official else "tab:orange", capsize=3)
        ax.axvline(anchor[f"{metric}_mean"], color="tab:blue", linewidth=1.2)
        ax.set_title(TITLES[metric])
    axes[0].set_yticks(range(len(labels)), labels)
    axes[0].invert_yaxis()
    legend = [Line2D([], [], marker="o", color="black", linestyle="", label="official code's side"),
              Line2D([], [], marker="s", color="tab:orange", linestyle="", label="the other side"),
              Line2D([], [], color="tab:blue", label=anchor_label(anchor))]
    fig.legend(handles=legend, loc="lower center", ncol=3, frameon=False)
    fig.tight_layout(rect=(0, 0.6 / fig.get_figheight(), 1, 1))
    return _save(fig, path)


# ------------------------------------------------------------------------------------------ Figure 7
def figure_7(runs: pd.DataFrame, curves: pd.DataFrame, path) -> Path:
    """One panel per optimizer of `runs`: the mini-batch loss of every step (analysis.step_losses, red) and the
    held-out losses (`curves`, analysis.heldout_curves) of the new task (red, dashed) and the old ones (green),
    mean ± one std over seeds; grey lines at the task boundaries."""
    losses, heldout = step_losses(runs), heldout_summary(curves)
    fig, axes = plt.subplots(1, len(losses), figsize=(4.2 * len(losses), 3.8), squeeze=False, sharey=True)
    for ax, (optimizer, loss) in zip(axes[0], losses.items()):
        steps = np.arange(1, len(loss.mean) + 1)
        ax.plot(steps, loss.mean, color="tab:red", linewidth=0.9, label="new task: mini-batch loss")
        ax.fill_between(steps, loss.mean - loss.std, loss.mean + loss.std, color="tab:red", alpha=0.15)
        held = heldout[heldout.optimizer == optimizer]
        for which, color, style, label in (("new", "tab:red", "--", "new task: held-out"),
                                           ("old", "tab:green", "-", "old tasks: held-out")):
            h = held[held.which == which]
            ax.plot(h.step, h["mean"], style, color=color, label=label)
            ax.fill_between(h.step, h["mean"] - h["std"].fillna(0), h["mean"] + h["std"].fillna(0), color=color,
                            alpha=0.15)
        for end in loss.task_ends:
            ax.axvline(end + 0.5, color="grey", linewidth=0.5)
        ax.set_title(optimizer_label(optimizer))
        ax.set_xlabel("training step (grey lines: task boundaries)")
    axes[0, 0].set_ylabel("cross-entropy")
    axes[0, 0].legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


# ------------------------------------------------------------------------------- Figures 3 and 6
def _landscape_box(problem, paths: dict, margin: float = 0.3) -> tuple[float, float, float, float]:
    """One (xmin, xmax, ymin, ymax) for every panel: the three minima and every trajectory, with a margin."""
    points = np.concatenate([np.stack([problem.a, problem.b, problem.total_minimum()])]
                            + [path for panel_paths in paths.values() for path in panel_paths])
    low, high = points.min(0) - margin, points.max(0) + margin
    return low[0], high[0], low[1], high[1]


def _draw_panel(ax, problem, panel_paths, box, title: str) -> None:
    """Total-loss contours (denser near θ*), the minima, and the trajectories: first seed bold, others faint."""
    x, y, _, _, total = problem.grid(box, 250)
    levels = total.min() + (total.max() - total.min()) * np.linspace(0, 1, 22)[1:] ** 2
    ax.contour(x, y, total, levels=levels, colors="0.6", linewidths=0.6)
    for path in panel_paths[1:]:
        ax.plot(path[:, 0], path[:, 1], color=TRAJECTORY, linewidth=0.8, alpha=0.45)
    ax.plot(panel_paths[0][:, 0], panel_paths[0][:, 1], color=TRAJECTORY, linewidth=2.2)
    ax.plot(*problem.a, "o", color="tab:blue", markersize=9, markeredgecolor="black")
    ax.plot(*problem.b, "o", color="tab:red", markersize=9, markeredgecolor="black")
    ax.plot(*problem.total_minimum(), "*", color="gold", markersize=15, markeredgecolor="black")
    ax.set_xlim(box[0], box[1])
    ax.set_ylim(box[2], box[3])
    ax.set_aspect("equal")
    ax.grid(False)
    ax.set_title(title)


def _landscape_legend(first_seed: int) -> list[Line2D]:
    return [Line2D([], [], marker="o", linestyle="", color="tab:blue", markeredgecolor="black", markersize=9,
                   label="old-task minimum a (start)"),
            Line2D([], [], marker="o", linestyle="", color="tab:red", markeredgecolor="black", markersize=9,
                   label="new-task minimum b"),
            Line2D([], [], marker="*", linestyle="", color="gold", markeredgecolor="black", markersize=15,
                   label="total-loss minimum θ*"),
            Line2D([], [], color=TRAJECTORY, linewidth=2.2, label=f"trajectory on the total loss, seed {first_seed}"),
            Line2D([], [], color=TRAJECTORY, linewidth=0.8, alpha=0.45, label="other seeds")]


def figure_3(problem, panels, paths: dict, steps: int, seeds, path) -> Path:
    """The panels' trajectories (landscape.run_panels) side by side, with the per-task pulls −∇L_old (blue)
    and −∇L_new (red) at fixed steps of the first seed's trajectory."""
    box = _landscape_box(problem, paths)
    # spaced geometrically because the path moves most at the start; at θ* the two pulls cancel
    arrow_steps = np.unique(np.geomspace(2, steps, 6).astype(int))
    arrow_points = {p.letter: paths[p.letter][0][arrow_steps] for p in panels}
    pulls = {letter: [-g for g in problem.task_gradients(points)] for letter, points in arrow_points.items()}
    longest = max(np.linalg.norm(g, axis=1).max() for pair in pulls.values() for g in pair)
    scale = longest / 0.6  # the longest arrow is 0.6 parameter units long; lengths stay comparable

    fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 6))
    for ax, panel in zip(np.atleast_1d(axes), panels):
        _draw_panel(ax, problem, paths[panel.letter], box, f"({panel.letter}) {panel.title}")
        points = arrow_points[panel.letter]
        ax.plot(points[:, 0], points[:, 1], "o", color="black", markersize=3.5)
        for pull, color in zip(pulls[panel.letter], ("tab:blue", "tab:red")):
            ax.quiver(points[:, 0], points[:, 1], pull[:, 0], pull[:, 1], color=color, angles="xy",
                      scale_units="xy", scale=scale, width=0.006, zorder=3)
    legend = _landscape_legend(seeds[0]) + [
        Line2D([], [], color="tab:blue", linewidth=2.5, label="−∇L_old: the old task's pull"),
        Line2D([], [], color="tab:red", linewidth=2.5, label="−∇L_new: the new task's pull")]
    fig.legend(handles=legend, loc="lower center", ncol=4, bbox_to_anchor=(0.5, -0.1), frameon=False)
    fig.suptitle(f"Trajectories of FO and ZO optimisation from the old task's minimum ({steps} steps; "
                 f"arrows at steps {', '.join(map(str, arrow_steps))})")
    fig.tight_layout()
    return _save(fig, path)


def figure_6(problem, panels, paths: dict, summary: pd.DataFrame, steps: int, seeds, path) -> Path:
    """The ten panels' trajectories, two rows of five, each with its jitter and turning
    (landscape.summary_table)."""
    box = _landscape_box(problem, paths)
    fig, axes = plt.subplots(2, 5, figsize=(22, 10))
    by_panel = summary.set_index("panel")
    for ax, panel in zip(axes.flat, panels):
        _draw_panel(ax, problem, paths[panel.letter], box, f"({panel.letter}) {panel.title}")
        row = by_panel.loc[panel.letter]
        ax.text(0.03, 0.03, f"jitter {format_mean_std(row.jitter_mean, row.jitter_std)}\n"
                f"turning {format_mean_std(row.turning_mean, row.turning_std, 1)}°",
                transform=ax.transAxes, fontsize=9, va="bottom", bbox=dict(facecolor="white", alpha=0.8, linewidth=0))
    fig.legend(handles=_landscape_legend(seeds[0]), loc="lower center", ncol=5, bbox_to_anchor=(0.5, -0.04),
               frameon=False)
    fig.suptitle(f"Trajectories of the optimizers from the old task's minimum ({steps} steps): "
                 "(a–e) Adam, (f–j) SGD", fontsize=15)
    fig.tight_layout()
    return _save(fig, path)


# ------------------------------------------------------------------------------------ beyond the paper
FAMILY_MARKERS = {"backprop": "o", "zeroth-order": "s", "forward-grad": "^"}


def cost(summary: pd.DataFrame, path) -> Path:
    """The cost page: each optimizer's gain in average accuracy over the zero-step control (error bars: the two
    spreads together) against what it spent (cost.SPENDS), one point per budget, joined per optimizer."""
    from zeroflow_core.cost import SPENDS

    fig, axes = plt.subplots(1, len(SPENDS), figsize=(15, 4.4), sharey=True)
    for optimizer, part in summary.groupby("optimizer", sort=False):
        part = part.sort_values("value")
        family = row_spec(optimizer).family
        for ax, column in zip(axes, SPENDS):
            ax.errorbar(part[f"{column}_mean"], part.gain, yerr=part.gain_spread, fmt=FAMILY_LINES[family],
                        marker=FAMILY_MARKERS[family], color=optimizer_colour(optimizer), capsize=3,
                        label=optimizer_label(optimizer))
    for ax, (column, label) in zip(axes, SPENDS.items()):
        ax.axhline(0, color=NO_TRAINING.colour, linewidth=1)
        ax.set_xscale("log")
        ax.set_xlabel(label)
    axes[0].set_ylabel("average accuracy − zero-step control (points)")
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=len(names), frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return _save(fig, path)


def updates(summary: pd.DataFrame, method: str, path) -> Path:
    """Where training goes (updates.updates_summary), one method: per optimizer and group (adapters, heads), the
    held-out loss's fall from the group's move alone, the cosine of its update with the backprop gradient, and how
    far it moved relative to its size (error bars one std)."""
    part = summary[summary.method == method]
    labels = [optimizer_label(o) for o in part.optimizer]
    x = np.arange(len(part))
    panels = (("loss_drop", "held-out loss's fall from the group's move alone"),
              ("cosine", "cos(update, −∇L at the task's start)"), ("relative", "‖Δθ‖ / ‖θ‖ over a task"))
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.4))
    for k, (group, colour) in enumerate((("adapters", "tab:purple"), ("heads", "tab:olive"))):
        offset = _bar_offset(k, 2, 0.38)
        for ax, (field, _) in zip(axes, panels):
            ax.bar(x + offset, part[f"{group}_{field}_mean"], 0.38, yerr=part[f"{group}_{field}_std"].fillna(0),
                   capsize=2, color=colour, label=group)
    for ax, (_, title) in zip(axes, panels):
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_title(title)
        ax.set_xticks(x, labels, rotation=35, ha="right")
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="upper center", ncol=2, frameon=False, bbox_to_anchor=(0.5, 1.06))
    fig.tight_layout()
    return _save(fig, path)
