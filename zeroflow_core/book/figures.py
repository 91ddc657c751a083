"""The book's figures: every page's matplotlib drawing, each figure saved as a PNG that the page displays.

Each function draws from tables that report.py, the pages' modules and landscape.py compute (landscape's objects
are passed in, not imported: only the trajectory pages depend on it), saves to `path` and returns it, so a
figure is drawn without a kernel (tests/test_report.py). An optimizer's colour comes from its registry
entry, its line style and marker from its family, the same in every figure.

Every figure is laid out for the page it is shown on: at most PAGE_WIDTH inches wide, which the book shows at
report.SCREEN_DPI pixels per inch (the content width at a 1400 px window), so a font's size in points is what a
reader sees; saved at report.FIGURE_DPI for the full-size view a click opens. `_save` refuses a figure that is
wider, whose text is smaller than MIN_FONT points, or whose legend covers data.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D

from zeroflow_core.book.figure_7 import heldout_summary, step_losses
from zeroflow_core.book.report import (FIGURE_5_PAPER, FIGURE_DPI, PAPER_SETUP, SCREEN_DPI, dataset_label,
                                       format_mean_std, method_label, optimizer_colour, optimizer_label)
from zeroflow_core.methods import METHODS
from zeroflow_core.optim.registry import NO_TRAINING, row_spec
from zeroflow_core.run.config import NO_OPTIMIZER

# Lines and markers by family: first-order solid circles, zeroth-order dashed squares, forward gradient dotted
# triangles; the colour tells the optimizers of a family apart.
FAMILY_LINES = {"backprop": "-", "zeroth-order": "--", "forward-grad": ":"}
FAMILY_MARKERS = {"backprop": "o", "zeroth-order": "s", "forward-grad": "^"}
TITLES = {"avg_acc": "average accuracy (%)", "forgetting": "forgetting (%), lower is better"}
TRAJECTORY = "#00b8d4"  # cyan, dark enough to read on white
PAGE_WIDTH = 7.8  # inches: the book's content width at a 1400 px window (784 px, measured by tests/browser_check.py), at SCREEN_DPI
MIN_FONT = 8.5  # points


def setup(out_dir) -> Path:
    """Agg (no display needed) and one readable style for every page; returns the page's folder, made."""
    matplotlib.use("Agg")
    sns.set_theme(style="whitegrid", context="notebook")
    plt.rcParams.update({"figure.dpi": SCREEN_DPI, "savefig.dpi": FIGURE_DPI, "savefig.bbox": "tight",
                         "font.size": 10, "axes.titlesize": 10.5, "axes.labelsize": 10, "xtick.labelsize": 9.5,
                         "ytick.labelsize": 9.5, "legend.fontsize": 9.5, "legend.title_fontsize": 9.5,
                         "figure.titlesize": 11.5})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return out


def style(optimizer: str) -> dict:
    """An optimizer's line in every figure: its registry colour, its family's line style and marker."""
    spec = row_spec(optimizer)  # a registry optimizer or an `<optimizer>+head` row
    family = spec.family if spec is not None else "backprop"
    return {"color": optimizer_colour(optimizer), "linestyle": FAMILY_LINES[family],
            "marker": FAMILY_MARKERS[family]}


def layout_problems(fig) -> list[str]:
    """What keeps a figure from reading well at the book's width: wider than PAGE_WIDTH (its text would be shrunk),
    text below MIN_FONT points, or a legend over an axes that shows data."""
    renderer = fig.canvas.get_renderer()
    problems = []
    width = fig.get_tightbbox(renderer).width
    if width > PAGE_WIDTH * 1.02:
        problems.append(f"{width:.1f} in wide, more than the page's {PAGE_WIDTH} in: its text would be shrunk")
    small = sorted({round(t.get_fontsize(), 1) for t in fig.findobj(matplotlib.text.Text)
                    if t.get_visible() and t.get_text().strip() and t.get_fontsize() < MIN_FONT})
    if small:
        problems.append(f"text of {small} points, below {MIN_FONT}")
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    for legend in legends:
        box = legend.get_window_extent(renderer)
        for ax in fig.axes:
            if ax.axison and ax.get_visible() and box.overlaps(ax.get_window_extent(renderer)):
                problems.append(f"a legend ({', '.join(t.get_text() for t in legend.get_texts()[:2])}, ...) covers "
                                f"the axes '{ax.get_title()}'")
    return problems


def _save(fig, path) -> Path:
    fig.canvas.draw()
    problems = layout_problems(fig)
    if problems:
        plt.close(fig)
        raise ValueError(f"{Path(path).name}: " + "; ".join(problems))
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def _legend_below(fig, handles, labels, ncol: int):
    """The figure's legend under everything the axes draw (tick labels too), outside every axes."""
    fig.tight_layout()
    renderer = fig.canvas.get_renderer()
    # a hidden axes (an empty place of a grid) has no box
    bottom = min(fig.transFigure.inverted().transform((0, ax.get_tightbbox(renderer).y0))[1] for ax in fig.axes
                 if ax.axison and ax.get_visible())
    # as many columns as fit the page: the labels' lengths depend on the optimizers the grid runs
    for columns in range(ncol, 0, -1):
        legend = fig.legend(handles, labels, loc="upper center", ncol=columns, frameon=False,
                            bbox_to_anchor=(0.5, bottom - 0.01), bbox_transform=fig.transFigure)
        if columns == 1 or legend.get_window_extent(renderer).width / fig.dpi <= PAGE_WIDTH:
            return legend
        legend.remove()


def _unique(handles, labels):
    seen = dict(zip(labels, handles))
    return list(seen.values()), list(seen)


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
    """Bars of ours (error bars: one std) and the paper's (hatched) per optimizer, one panel per method and metric
    (average accuracy, forgetting); the no-training rows as lines (ours with a band of one std, the paper's dashed
    in its dataset's colour) and each method's zero-step control dotted."""
    series = [(f"ours: {dataset_label(d)}", overview.ours[overview.ours.dataset == d], {}) for d in datasets]
    series += [(f"paper: {dataset_label(d)} ({PAPER_SETUP})", overview.paper[overview.paper.dataset == d],
                {"hatch": "//", "alpha": 0.6}) for d in overview.paper_datasets]
    palette = plt.get_cmap("Blues")(np.linspace(0.55, 0.85, len(datasets))).tolist()
    paper_colours = plt.get_cmap("Oranges")(np.linspace(0.45, 0.85, len(overview.paper_datasets))).tolist()
    palette += paper_colours
    panels = [("avg_acc", "average accuracy (%), higher is better"), ("forgetting", "forgetting (%), lower is better")]
    baseline = method_label(overview.baseline)
    rows = [(method, metric, title) for method in overview.methods for metric, title in panels]
    fig, axes = plt.subplots(len(rows), 1, figsize=(PAGE_WIDTH, 2.6 * len(rows)), squeeze=False)
    width = 0.8 / len(series)
    x = np.arange(len(optimizers))
    for ax, (method, metric, title) in zip(axes[:, 0], rows):
        for k, (label, frame, extra) in enumerate(series):
            frame = frame[frame.method == method].set_index("optimizer").reindex(optimizers)
            # no error bar where there is no spread measured (the paper's values, a single seed)
            std = frame.get(f"{metric}_std")
            std = None if std is None or std.isna().all() else std.fillna(0)
            ax.bar(x + _bar_offset(k, len(series), width), frame[f"{metric}_mean"], width, yerr=std,
                   capsize=1.5, color=palette[k], edgecolor="black", linewidth=0.4, label=label, **extra)
        for anchor in overview.anchors.itertuples():
            mean, std = getattr(anchor, f"{metric}_mean"), getattr(anchor, f"{metric}_std")
            ax.axhline(mean, color=NO_TRAINING.colour, linewidth=1.2,
                       label=f"ours: no training ({baseline}, {dataset_label(anchor.dataset)}), band one std")
            ax.axhspan(mean - np.nan_to_num(std), mean + np.nan_to_num(std), color=NO_TRAINING.colour, alpha=0.08,
                       linewidth=0)
        for control in overview.ours[(overview.ours.method == method)
                                     & (overview.ours.optimizer == NO_OPTIMIZER)].itertuples():
            ax.axhline(getattr(control, f"{metric}_mean"), color=NO_TRAINING.colour, linestyle=":", linewidth=1.5,
                       label=f"ours: the method's zero-step control ({dataset_label(control.dataset)})")
        for anchor in overview.paper_anchors.itertuples():
            value = getattr(anchor, f"{metric}_mean")
            if not np.isnan(value):
                colour = paper_colours[list(overview.paper_datasets).index(anchor.dataset)]
                ax.axhline(value, color=colour, linestyle="--", linewidth=1.3,
                           label=f"published no training ({baseline}, APER release, IN-21K, "
                                 f"{dataset_label(anchor.dataset)})")
        ax.set_title(f"{method_label(method)}: {title}")
        ax.set_xticks(x, [optimizer_label(o) for o in optimizers], rotation=30, ha="right")
    handles, labels = _unique(*zip(*[item for ax in axes[:, 0] for item in zip(*ax.get_legend_handles_labels())]))
    _legend_below(fig, handles, labels, ncol=2)
    return _save(fig, path)


# ------------------------------------------------------------------------------------------ Figure 4
def figure_4(summary: pd.DataFrame, methods, datasets, optimizers, baseline: str, path) -> Path:
    """report.curve_summary: one panel per method and dataset, one line per optimizer (mean, band one std; colour
    from the registry, line style and marker from the family, each optimizer's points shifted a little along the
    stage so that lines that meet stay apart), the no-training row (`baseline`) as a thick black line and the
    method's zero-step control as a dotted one."""
    anchor = summary[summary.method == baseline]
    columns = min(len(datasets), 2)
    rows = len(methods) * -(-len(datasets) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(PAGE_WIDTH, 3.3 * rows), squeeze=False, sharey=True)
    panels = [(method, dataset) for method in methods for dataset in datasets]
    shift = 0.25 / max(len(optimizers), 1)
    for ax, (method, dataset) in zip(axes.flat, panels):
        for k, optimizer in enumerate(optimizers):
            s = summary[(summary.method == method) & (summary.dataset == dataset) & (summary.optimizer == optimizer)]
            stages = s.stage + (k - (len(optimizers) - 1) / 2) * shift
            look = style(optimizer)
            ax.plot(stages, s["mean"], markersize=4.5, linewidth=1.4, label=optimizer_label(optimizer), **look)
            band = s["std"].fillna(0)
            ax.fill_between(stages, s["mean"] - band, s["mean"] + band, color=look["color"], alpha=0.08, linewidth=0)
        a = anchor[anchor.dataset == dataset]
        ax.plot(a.stage, a["mean"], "-", color=NO_TRAINING.colour, linewidth=2.4,
                label=f"no training ({method_label(baseline)})")
        control = summary[(summary.method == method) & (summary.dataset == dataset)
                          & (summary.optimizer == NO_OPTIMIZER)]
        ax.plot(control.stage, control["mean"], ":", color=NO_TRAINING.colour, linewidth=2.4,
                label="zero-step control (the method, no step)")
        ax.set_title(f"{method_label(method)} on {dataset_label(dataset)}")
        ax.set_xlabel("incremental stage (tasks learned)")
        ax.set_ylabel("accuracy on seen classes (%)")
        ax.set_xticks(sorted(summary.stage.unique()))
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    _legend_below(fig, handles, labels, ncol=4)
    return _save(fig, path)


# ------------------------------------------------------------------------------------------ Table 2
def table_2(tables: dict, paper: pd.DataFrame, path) -> Path:
    """Memory and time relative to FO-SGD, one panel each: peak memory (gross: the whole process), peak memory net
    of the process before the model existed (closer to what the paper's GPU counter saw), and time per step with
    error bars from the spreads of the timed steps; bars per model measured (table_2.efficiency_table) beside the
    paper's (hatched, table_2.paper_table_2: one GPU number, in both memory panels); one legend below."""
    labels = list(dict.fromkeys(list(paper.optimizer) + [l for t in tables.values() for l in t.optimizer]))
    series = [(f"ours: {m}", t.set_index("optimizer"), False) for m, t in tables.items()]
    series.append((f"paper: {PAPER_SETUP} (GPU)", paper.set_index("optimizer"), True))
    panels = [("memory ÷ FO-SGD", None, "memory ÷ FO-SGD", "peak memory ÷ FO-SGD's (gross: the whole process)"),
              ("net memory ÷ FO-SGD", None, "memory ÷ FO-SGD",
               "peak memory ÷ FO-SGD's, net of the process before the model (paper: GPU memory)"),
              ("step ÷ FO-SGD step", "step ÷ FO-SGD step spread", "epoch ÷ FO-SGD",
               "time per step ÷ FO-SGD's (paper: per epoch); error bars: the spread between quartiles")]
    fig, axes = plt.subplots(len(panels), 1, figsize=(PAGE_WIDTH, 2.5 * len(panels)), sharex=True)
    width = 0.8 / len(series)
    x = np.arange(len(labels))
    colours = plt.get_cmap("tab10").colors
    for ax, (ours_col, spread_col, paper_col, title) in zip(axes, panels):
        for k, (label, frame, is_paper) in enumerate(series):
            values = frame[paper_col if is_paper else ours_col].reindex(labels)
            spread = None
            if not is_paper and spread_col and spread_col in frame and frame[spread_col].notna().any():
                spread = frame[spread_col].reindex(labels).fillna(0)
            ax.bar(x + _bar_offset(k, len(series), width), values, width, yerr=spread, capsize=1.5, label=label,
                   hatch="//" if is_paper else None, color="white" if is_paper else colours[k],
                   edgecolor="black", linewidth=0.5)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_title(title)
    axes[-1].set_xticks(x, labels, rotation=30, ha="right")
    handles, names = axes[0].get_legend_handles_labels()
    _legend_below(fig, handles, names, ncol=len(series))
    return _save(fig, path)


# ---------------------------------------------------------------------------------- Figure 5, Tables 3–4
def figure_5(summary: pd.DataFrame, anchor: pd.Series, paper_points: pd.DataFrame, path) -> Path:
    """Ours against q (average accuracy, forgetting; band one std; the no-training row `anchor` as a line) and the
    paper's points (report.figure_5_paper_points): printed ones filled, read-off ones hollow, and a line only between
    points of one provenance (a printed point and a read-off one are never joined)."""
    fig = plt.figure(figsize=(PAGE_WIDTH, 6.4))
    grid = fig.add_gridspec(2, 2)
    axes = [fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1]), fig.add_subplot(grid[1, :])]
    for optimizer, part in summary.groupby("optimizer", sort=False):
        part = part.sort_values("value")
        look, label = style(optimizer), optimizer_label(optimizer)
        for ax, metric in zip(axes, ("avg_acc", "forgetting")):
            mean, std = part[f"{metric}_mean"], part[f"{metric}_std"].fillna(0)
            ax.plot(part.value, mean, label=label, **look)
            ax.fill_between(part.value, mean - std, mean + std, color=look["color"], alpha=0.15)
            ax.set_title(f"ours: {TITLES[metric]}")
        points = paper_points[paper_points.optimizer == optimizer]
        for printed, group in points.groupby("printed", sort=False):
            if len(group) > 1:  # several points of one provenance: joined among themselves only
                axes[2].plot(group.q, group.avg, look["linestyle"], color=look["color"], linewidth=1)
            kind = "printed (Table 1)" if printed else "≈ read off the figure"
            axes[2].plot(group.q, group.avg, look["marker"], color=look["color"], markersize=7,
                         markerfacecolor=look["color"] if printed else "white", label=f"{label}, {kind}")
    for ax, metric in zip(axes, ("avg_acc", "forgetting")):
        _no_training_line(ax, anchor, metric)
    axes[2].set_title(f"paper: {method_label(FIGURE_5_PAPER['method'])} on {dataset_label(FIGURE_5_PAPER['dataset'])} "
                      f"({PAPER_SETUP}), known points")
    axes[2].set_ylabel("average accuracy (%)")
    values = sorted(summary.value.unique())
    for ax, ticks in ((axes[0], values), (axes[1], values), (axes[2], FIGURE_5_PAPER["q"])):
        ax.set_xscale("log", base=2)
        ax.set_xticks(ticks, [str(v) for v in ticks])
        ax.set_xlabel("query budget q")
    fig.tight_layout()
    ours = _unique(*zip(*[item for ax in axes[:2] for item in zip(*ax.get_legend_handles_labels())]))
    axes[1].legend(*ours, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    if axes[2].get_legend_handles_labels()[0]:
        axes[2].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    fig.tight_layout()
    return _save(fig, path)


def sweep(summary: pd.DataFrame, hyper: str, anchor: pd.Series, path) -> Path:
    """Tables 3 and 4 as curves: average accuracy and forgetting against the proportion (%), error bars one
    std, the no-training row `anchor` as a line; the legend below."""
    fig, axes = plt.subplots(1, 2, figsize=(PAGE_WIDTH, 3.4))
    for optimizer, part in summary.groupby("optimizer", sort=False):
        part = part.sort_values("value")
        look = style(optimizer)
        for ax, metric in zip(axes, ("avg_acc", "forgetting")):
            mean, std = part[f"{metric}_mean"], part[f"{metric}_std"].fillna(0)
            ax.errorbar(part.value * 100, mean, yerr=std, capsize=3, label=optimizer_label(optimizer),
                        color=look["color"], marker=look["marker"], linestyle=look["linestyle"])
            ax.set_xlabel(f"{hyper} (%)")
            ax.set_title(TITLES[metric])
    for ax, metric in zip(axes, ("avg_acc", "forgetting")):
        _no_training_line(ax, anchor, metric)
    _legend_below(fig, *axes[0].get_legend_handles_labels(), ncol=3)
    return _save(fig, path)


# ------------------------------------------------------------------ official code vs ours, measured
def switches(summary: pd.DataFrame, anchor: pd.Series, path) -> Path:
    """official_vs_ours.switch_summary: each side of each switch (official: black dots), error bars one std, beside
    the no-training row `anchor`."""
    fig, axes = plt.subplots(1, 2, figsize=(PAGE_WIDTH, 0.42 * len(summary) + 1.3), sharey=True)
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
    _legend_below(fig, legend, [h.get_label() for h in legend], ncol=3)
    return _save(fig, path)


# ------------------------------------------------------------------------------------------ Figure 7
def figure_7(runs: pd.DataFrame, curves: pd.DataFrame, path) -> Path:
    """One panel per optimizer of `runs`, two to a row: the mini-batch loss of every step (figure_7.step_losses,
    red) and the held-out losses (`curves`, figure_7.heldout_curves) of the new task (red, dashed) and the old ones
    (green), mean ± one std over seeds; grey lines at the task boundaries; the legend below."""
    losses, heldout = step_losses(runs), heldout_summary(curves)
    columns = min(len(losses), 2)
    rows = -(-len(losses) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(PAGE_WIDTH, 3.0 * rows), squeeze=False, sharey=True)
    for ax, (optimizer, loss) in zip(axes.flat, losses.items()):
        steps = np.arange(1, len(loss.mean) + 1)
        ax.plot(steps, loss.mean, color="tab:red", linewidth=0.8, label="new task: mini-batch loss")
        ax.fill_between(steps, loss.mean - loss.std, loss.mean + loss.std, color="tab:red", alpha=0.15)
        held = heldout[heldout.optimizer == optimizer]
        for which, color, linestyle, label in (("new", "tab:red", "--", "new task: held-out loss"),
                                               ("old", "tab:green", "-", "old tasks: held-out loss")):
            h = held[held.which == which]
            ax.plot(h.step, h["mean"], linestyle, color=color, linewidth=1.6, label=label)
            ax.fill_between(h.step, h["mean"] - h["std"].fillna(0), h["mean"] + h["std"].fillna(0), color=color,
                            alpha=0.15)
        for end in loss.task_ends:
            ax.axvline(end + 0.5, color="grey", linewidth=0.6)
        ax.set_title(optimizer_label(optimizer))
        ax.set_xlabel("training step")
    for ax in axes[:, 0]:
        ax.set_ylabel("cross-entropy")
    for ax in axes.flat[len(losses):]:
        ax.set_visible(False)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    handles.append(Line2D([], [], color="grey", linewidth=0.6))
    labels.append("a task boundary")
    _legend_below(fig, handles, labels, ncol=2)
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

    side = min(PAGE_WIDTH / len(panels), 4.3)
    fig, axes = plt.subplots(1, len(panels), figsize=(side * len(panels), side + 0.4))
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
    fig.suptitle(f"FO and ZO from the old task's minimum ({steps} steps; arrows at steps "
                 f"{', '.join(map(str, arrow_steps))})")
    _legend_below(fig, legend, [h.get_label() for h in legend], ncol=2)
    return _save(fig, path)


def figure_6(problem, panels, paths: dict, summary: pd.DataFrame, steps: int, seeds, out_dir) -> list[Path]:
    """The ten panels' trajectories as two figures, one per family of descent rule (the paper's (a–e) Adam and
    (f–j) SGD), each two rows of three panels with the legend in the sixth place, each panel titled with its
    jitter and turning (landscape.summary_table). Returns the figures' paths (figure_6_<family>.png)."""
    box = _landscape_box(problem, paths)
    by_panel = summary.set_index("panel")
    families = {}
    for panel in panels:
        families.setdefault(panel.title.split(":")[0], []).append(panel)
    saved = []
    for family, members in families.items():
        columns = 3
        rows = -(-(len(members) + 1) // columns)
        fig, axes = plt.subplots(rows, columns, figsize=(PAGE_WIDTH, rows * PAGE_WIDTH / columns + 0.5))
        for ax, panel in zip(axes.flat, members):
            row = by_panel.loc[panel.letter]
            _draw_panel(ax, problem, paths[panel.letter], box,
                        f"({panel.letter}) {panel.title}\njitter {format_mean_std(row.jitter_mean, row.jitter_std)}\n"
                        f"turning {format_mean_std(row.turning_mean, row.turning_std, 1)}°")
        for ax in axes.flat[len(members):]:
            ax.axis("off")
        axes.flat[len(members)].legend(handles=_landscape_legend(seeds[0]), loc="center", frameon=False)
        letters = f"{members[0].letter}–{members[-1].letter}"
        fig.suptitle(f"({letters}) {family}: trajectories from the old task's minimum ({steps} steps)")
        fig.tight_layout()
        saved.append(_save(fig, Path(out_dir) / f"figure_6_{family.lower()}.png"))
    return saved


# ------------------------------------------------------------------------------------ beyond the paper
def cost(summary: pd.DataFrame, path) -> Path:
    """The cost page: each optimizer's gain in average accuracy over the zero-step control (error bars: the two
    spreads together) against what it spent (cost.SPENDS), one point per budget, joined per optimizer."""
    from zeroflow_core.book.cost import SPENDS

    fig, axes = plt.subplots(1, len(SPENDS), figsize=(PAGE_WIDTH, 3.4), sharey=True)
    for optimizer, part in summary.groupby("optimizer", sort=False):
        part = part.sort_values("value")
        look = style(optimizer)
        for ax, column in zip(axes, SPENDS):
            ax.errorbar(part[f"{column}_mean"], part.gain, yerr=part.gain_spread, fmt=look["linestyle"],
                        marker=look["marker"], color=look["color"], capsize=3, label=optimizer_label(optimizer))
    for ax, (column, label) in zip(axes, SPENDS.items()):
        ax.axhline(0, color=NO_TRAINING.colour, linewidth=1)
        if column != "peak_memory_mb":  # forwards and seconds span decades; a process's peak memory does not
            ax.set_xscale("log")
        ax.set_xlabel(label)
    axes[0].set_ylabel("average accuracy −\nzero-step control (points)")
    handles, names = axes[0].get_legend_handles_labels()
    _legend_below(fig, handles, names, ncol=4)
    return _save(fig, path)


def updates(summary: pd.DataFrame, method: str, path) -> Path:
    """Where training goes (updates.updates_summary), one method: per optimizer and group (adapters, heads), the
    held-out loss's fall from the group's move alone, the cosine of its update with the backprop gradient, and how
    far it moved relative to its size (error bars one std), one panel each."""
    part = summary[summary.method == method]
    labels = [optimizer_label(o) for o in part.optimizer]
    x = np.arange(len(part))
    panels = (("loss_drop", "held-out loss's fall from the group's move alone"),
              ("cosine", "cos(update, −∇L at the task's start)"), ("relative", "‖Δθ‖ / ‖θ‖ over a task"))
    fig, axes = plt.subplots(len(panels), 1, figsize=(PAGE_WIDTH, 2.3 * len(panels)), sharex=True)
    for k, (group, colour) in enumerate((("adapters", "tab:purple"), ("heads", "tab:olive"))):
        offset = _bar_offset(k, 2, 0.38)
        for ax, (field, _) in zip(axes, panels):
            ax.bar(x + offset, part[f"{group}_{field}_mean"], 0.38, yerr=part[f"{group}_{field}_std"].fillna(0),
                   capsize=2, color=colour, label=group)
    for ax, (_, title) in zip(axes, panels):
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_title(title)
    axes[-1].set_xticks(x, labels, rotation=30, ha="right")
    handles, names = axes[0].get_legend_handles_labels()
    _legend_below(fig, handles, names, ncol=2)
    return _save(fig, path)
