"""What the table and figure notebooks share: reading runs, averaging seeds, the paper's names, banners.

Plain pandas, so it is tested without a kernel (tests/test_report.py); the drawing is in figures.py and each
page's tables and statements in the module named after it (table_2.py; ablations.py for Figure 5, Tables 3-4).
Data comes only from each run's metrics.json (and, for its seconds and memory, its timing file: run/timing.py) and
from reference/*.csv; an optimizer's label, Table 1 row and colour from its registry entry (`OptimizerSpec.display`),
a method's and a dataset's label from their own declarations (`ContinualMethod.label`, `register_dataset`).
"""
from __future__ import annotations

import json
import math
import shutil
from html import escape as html_escape
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from zeroflow_core.book.pages import BOOK, DOWNLOADS, NOTEBOOKS, check_pages_against, notebook_parameters, switches
from zeroflow_core.data import dataset_label
from zeroflow_core.methods import METHODS
from zeroflow_core.optim.registry import NO_TRAINING, OPTIMIZERS, Display, grid_row, row_spec
from zeroflow_core.pipeline.cells import optimizers_of, run_folder, run_name, sweep_cells
from zeroflow_core.run.bench import EFFICIENCY_DIR
from zeroflow_core.run.config import NO_OPTIMIZER
from zeroflow_core.run.metrics import mean_loss_drop
from zeroflow_core.run.timing import read_timing

PAPER_METHODS = ("ease", "aper")
PAPER_DATASETS = ("cifar100", "cub", "imagenet_a", "omnibenchmark")
PAPER_SETUP = "ViT-B/16-IN21K"
# metrics.json key → Table 1 column; forgetting is the one where lower is better.
TABLE_METRICS = {"avg_acc": "Avg", "last_acc": "Last", "forgetting": "Fgt"}
LOWER_IS_BETTER = {"forgetting"}
SCALAR_KEYS = ("avg_acc", "last_acc", "forgetting", "bwt", "forward_passes", "backward_passes", "forwards_per_step",
               "steps", "train_image_forwards")
# from the run's timing file, where it has one (a checkout that pulled its runs has none: NaN)
TIMING_KEYS = ("peak_memory_mb", "seconds_per_epoch")
# The paper's Figure 5: EASE on ImageNet-A, these two optimizers against these q; q = 1 is Table 1's setting, so
# those points are Table 1's rows, printed, and the others can only be read off the figure.
# Figures are laid out for the book's content width at 1400 px (figures.PAGE_WIDTH inches at SCREEN_DPI pixels per
# inch, so that a font's points are what a reader sees) and saved at FIGURE_DPI, which the full-size view shows.
SCREEN_DPI, FIGURE_DPI = 100, 200
FIGURE_5_PAPER = {"method": "ease", "dataset": "imagenet_a", "optimizers": ("zo-sgd", "zo-adam"),
                  "q": (1, 2, 4, 8, 16, 32)}


class MissingRunError(FileNotFoundError):
    """A grid cell has no metrics.json; the message names the folder and the dvc stage that writes it."""


class NotebookError(RuntimeError):
    """A notebook failed while papermill ran it; the partial output notebook is kept for reading."""


def _display(optimizer: str) -> Display | None:
    if optimizer == NO_OPTIMIZER:
        return NO_TRAINING
    spec = row_spec(optimizer)  # an optimizer, or a grid row such as `zo-sgd+head`
    return spec.display if spec else None


def optimizer_label(optimizer: str) -> str:
    """The paper's name for an optimizer; one it does not have keeps its own name."""
    display = _display(optimizer)
    return display.label if display else optimizer


def optimizer_colour(optimizer: str) -> str | None:
    """One colour per optimizer in every figure, so a line in figure 4 and a point in figure 5 read the same."""
    display = _display(optimizer)
    return display.colour if display else None


def method_label(method: str) -> str:
    """The name the book prints for a method (its class's `label`); an unknown one keeps its own."""
    return METHODS[method].label if method in METHODS else method


def paper_row(optimizer: str) -> tuple[str, str]:
    """(family, strategy) of Table 1; an optimizer the paper does not have keeps its own name."""
    display = _display(optimizer)
    return display.table1_row if display else ("-", optimizer)


def stage_name(method: str, dataset: str) -> str:
    """The dvc stage that runs every cell of one method on one dataset."""
    return f"train@{method}-{dataset}"


# ----------------------------------------------------------------------------------------------- runs
def load_runs(runs_dir, methods, optimizers, datasets, seeds, profile: str | None = None) -> pd.DataFrame:
    """One row per grid cell, read from runs_dir/<method>-<dataset>/<run name>/metrics.json.

    A method that trains nothing (the no-training baseline) has the single optimizer `none`. Row order is
    the grid's order (method, optimizer, dataset, seed), which the tables and legends keep. With
    `profile`, a run written under another profile is refused: it would silently mix scales.
    """
    runs_dir = Path(runs_dir)
    rows, missing = [], []
    for method in methods:
        for optimizer in optimizers_of(method, optimizers):
            for dataset in datasets:
                for seed in seeds:
                    path = run_folder(method, optimizer, dataset, seed, runs_dir) / "metrics.json"
                    if not path.is_file():
                        missing.append((path, stage_name(method, dataset)))
                        continue
                    rows.append(_run_row(path, method, optimizer, dataset, seed, profile))
    if missing:
        listed = "\n".join(f"  {path.parent}/ (made by the dvc stage {stage})" for path, stage in missing[:20])
        more = f"\n  ... and {len(missing) - 20} more" if len(missing) > 20 else ""
        raise MissingRunError(
            f"{len(missing)} of {len(missing) + len(rows)} runs have no metrics.json:\n{listed}{more}\n"
            f"Run `dvc repro` for the whole grid, or `dvc repro {missing[0][1]}` for one run.")
    return pd.DataFrame(rows)


def _run_row(path: Path, method, optimizer, dataset, seed, profile) -> dict:
    try:
        metrics = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not a readable metrics file ({error}); remove {path.parent} and run "
                         f"`dvc repro {stage_name(method, dataset)}`") from None
    # a folder renamed by hand would otherwise put one run's numbers under another's name; a grid row such as
    # `zo-sgd+head` ran its optimizer (the row's settings are in its config.yaml)
    ran = optimizer if optimizer == NO_OPTIMIZER else grid_row(optimizer)[0].name
    expected = {"method": method, "optimizer": ran, "dataset": dataset, "seed": seed}
    for key, value in expected.items():
        if key in metrics and metrics[key] != value:
            raise ValueError(f"{path}: holds {key}={metrics[key]!r}, but its folder says {value!r}")
    if profile is not None and metrics.get("profile", profile) != profile:
        raise ValueError(f"{path}: written by the {metrics['profile']!r} profile, but params.yaml says "
                         f"{profile!r}; rerun `dvc repro {stage_name(method, dataset)}`")
    for key in ("avg_acc", "last_acc", "forgetting", "acc_seen"):
        if key not in metrics:
            raise ValueError(f"{path}: no {key!r} in metrics.json")
    family, strategy = paper_row(optimizer)
    row = {"method": method, "optimizer": optimizer, "dataset": dataset, "seed": seed,
           "run": run_name(method, optimizer, dataset, seed), "family": family, "strategy": strategy,
           "profile": metrics.get("profile"), "path": str(path)}
    row.update({key: metrics.get(key) for key in SCALAR_KEYS})
    row.update(run_spent(path.parent))
    # the mean per-task drop of the training loss (None for a run without steps: a control)
    row["loss_drop"] = mean_loss_drop(metrics.get("loss_curves", []))
    row["acc_seen"] = list(metrics["acc_seen"])
    row["acc_matrix"] = metrics.get("acc_matrix")
    return row


def run_spent(folder: Path) -> dict:
    """What a run spent, from its timing file: seconds (training and evaluating its tasks), seconds per epoch and peak
    memory; NaN for each where the checkout has no timing file (its runs were pulled, not run, here)."""
    timing = read_timing(folder)
    spent = {key: timing.get(key, float("nan")) for key in TIMING_KEYS}
    spent["seconds"] = float(sum(timing["task_seconds"])) if "task_seconds" in timing else float("nan")
    return spent


def aggregate(runs: pd.DataFrame, metrics=tuple(TABLE_METRICS), by=("method", "optimizer", "dataset")) -> pd.DataFrame:
    """Mean and sample standard deviation (ddof=1) over seeds: columns <metric>_mean, <metric>_std, n_seeds.

    One seed gives std NaN rather than 0, so a table never claims a spread it did not measure.
    """
    grouped = runs.groupby(list(by), sort=False)
    out = grouped.size().rename("n_seeds").to_frame()
    for metric in metrics:
        out[f"{metric}_mean"] = grouped[metric].mean()
        out[f"{metric}_std"] = grouped[metric].std(ddof=1)
    return out.reset_index()


def format_mean_std(mean, std, digits: int = 2) -> str:
    if mean is None or pd.isna(mean):
        return "—"
    if std is None or pd.isna(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def seen_curves(runs: pd.DataFrame) -> pd.DataFrame:
    """Long table of acc_seen: accuracy on all classes seen after each incremental stage (stage from 1)."""
    rows = [{"method": run.method, "optimizer": run.optimizer, "dataset": run.dataset, "seed": run.seed,
             "stage": stage, "acc_seen": acc}
            for run in runs.itertuples() for stage, acc in enumerate(run.acc_seen, start=1)]
    return pd.DataFrame(rows, columns=["method", "optimizer", "dataset", "seed", "stage", "acc_seen"])


def curve_summary(curves: pd.DataFrame) -> pd.DataFrame:
    by = ["method", "optimizer", "dataset", "stage"]
    grouped = curves.groupby(by, sort=False)["acc_seen"]
    return pd.DataFrame({"mean": grouped.mean(), "std": grouped.std(ddof=1), "n_seeds": grouped.size()}).reset_index()


# ------------------------------------------------------------------------------------------ reference
def load_reference(reference_dir) -> pd.DataFrame:
    """The paper's Table 1 with our optimizer and method names added (columns optimizer_name, method_name)."""
    path = Path(reference_dir) / "table1_accuracy.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the paper's Table 1 is missing (it ships in reference/)")
    table = pd.read_csv(path, dtype={"optimizer": str})
    to_ours = {paper_row(name): name for name in [*OPTIMIZERS, NO_OPTIMIZER]}
    table["optimizer_name"] = [to_ours.get((fam, strat)) for fam, strat in zip(table.optimizer, table.strategy)]
    table["method_name"] = table.method.str.lower()
    return table


def load_read_off(reference_dir, figure: int) -> pd.DataFrame:
    """Points read off one of the paper's figures (reference/figure_read_off.csv): approximate values,
    each row with its source, which the pages draw as approximate (hollow markers)."""
    path = Path(reference_dir) / "figure_read_off.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the points read off the paper's figures are missing (they ship in reference/)")
    table = pd.read_csv(path)
    return table[table.figure == figure].reset_index(drop=True)


def figure_5_paper_points(reference_dir, optimizers) -> pd.DataFrame:
    """The paper's Figure 5 points of those `optimizers` it plots, by optimizer in their order, then by q:
    average accuracy per q, `printed` for q = 1 (Table 1's row, reference/table1_accuracy.csv) and not for
    the points read off the figure (reference/figure_read_off.csv, approximate), each with its source."""
    method, dataset = FIGURE_5_PAPER["method"], FIGURE_5_PAPER["dataset"]
    reference = load_reference(reference_dir)
    read_off = load_read_off(reference_dir, figure=5)
    read_off = read_off[(read_off.method == method) & (read_off.dataset == dataset)]
    rows = []
    for optimizer in [o for o in optimizers if o in FIGURE_5_PAPER["optimizers"]]:
        row = reference[(reference.method_name == method) & (reference.optimizer_name == optimizer)
                        & (reference.dataset == dataset)]
        points = [{"optimizer": optimizer, "q": 1, "avg": float(row.avg.iloc[0]), "printed": True,
                   "source": "Table 1"}]
        points += [{"optimizer": optimizer, "q": int(point.x), "avg": float(point.avg), "printed": False,
                    "source": point.source} for point in read_off[read_off.optimizer == optimizer].itertuples()]
        rows += sorted(points, key=lambda point: point["q"])
    return pd.DataFrame(rows, columns=["optimizer", "q", "avg", "printed", "source"])


def load_paper_baseline(reference_dir) -> pd.DataFrame:
    """Published SimpleCIL numbers (APER's release logs; the ZeroFlow paper has no no-training row), in the
    columns paper_values() gives, plus their source, splits and whether they were checked."""
    path = Path(reference_dir) / "simplecil_aper.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the published SimpleCIL numbers are missing (they ship in reference/)")
    table = pd.read_csv(path)
    return pd.DataFrame({"method": table.method.str.lower(), "optimizer": NO_OPTIMIZER, "dataset": table.dataset,
                         "avg_acc_mean": table.avg, "last_acc_mean": table["last"], "forgetting_mean": float("nan"),
                         "source": table.source, "splits": table.splits, "verified": table.verified})


def paper_values(reference: pd.DataFrame, methods, optimizers, datasets) -> pd.DataFrame:
    """Paper rows for our method × optimizer names, in our grid's order; columns as aggregate() gives."""
    keep = reference[reference.method_name.isin(methods) & reference.optimizer_name.isin(optimizers)
                     & reference.dataset.isin(datasets)]
    rows = []
    for method in methods:
        for optimizer in optimizers:
            for dataset in datasets:
                hit = keep[(keep.method_name == method) & (keep.optimizer_name == optimizer) & (keep.dataset == dataset)]
                if len(hit):
                    rows.append({"method": method, "optimizer": optimizer, "dataset": dataset,
                                 "avg_acc_mean": hit.avg.iloc[0], "last_acc_mean": hit["last"].iloc[0],
                                 "forgetting_mean": hit.fgt.iloc[0]})
    return pd.DataFrame(rows, columns=["method", "optimizer", "dataset", "avg_acc_mean", "last_acc_mean",
                                       "forgetting_mean"])


def paper_datasets_for(datasets) -> list[str]:
    """The paper datasets to show beside ours: the same ones when the grid uses them, else all four."""
    same = [d for d in datasets if d in PAPER_DATASETS]
    return same or list(PAPER_DATASETS)


# --------------------------------------------------------------------------------------- the verdict
def verdict(mean_a: float, std_a: float, mean_b: float, std_b: float, *, lower_is_better: bool = False) -> str:
    """'better', 'worse' (a against b) or 'within the spread'.

    A difference is called only when it exceeds the two spreads together (|Δ| > std_a + std_b, i.e. the
    mean ± one std intervals do not overlap); without a spread (one seed) nothing is called.
    """
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in (mean_a, std_a, mean_b, std_b)):
        return "within the spread"
    difference = mean_a - mean_b
    if abs(difference) <= std_a + std_b:
        return "within the spread"
    better = difference < 0 if lower_is_better else difference > 0
    return "better" if better else "worse"


# ------------------------------------------------------------------------------------------- Table 1
@dataclass
class Table:
    tidy: pd.DataFrame  # one row per (source, method, optimizer, dataset): the CSV, with each cell's mark
    tables: dict  # one table per dataset: its tab's label → its HTML
    html: str  # every dataset's table, one after the other (table_1.html)
    markdown: str  # the same tables in Markdown (table_1.md)


# How a Table 1 cell is marked among the optimizers of its method (one column of one block and dataset).
BEST, TIE = "best", "tie"


def table_1(runs: pd.DataFrame, reference: pd.DataFrame, methods, optimizers, datasets, profile: str,
            paper_baseline: pd.DataFrame | None = None) -> Table:
    """Table 1, one table per dataset: rows method / optimizer family / strategy, columns Avg, Last, Fgt of ours
    (mean ± std over seeds) and of the paper where it ran that dataset.

    `methods` may start with the no-training baseline (optimizer `none`, one row). Each column of a method is
    marked (`best_marks`): bold is a best beyond the spread of every other optimizer, "(tie)" the rows that no
    row is beyond; ours and the paper's separately, since the two are different setups. The cells' texts and
    marks make one table each, so the HTML and the Markdown are two renderings of the same cells.
    """
    ours = aggregate(runs)
    ours.insert(0, "source", "ours")
    paper_sets = paper_datasets_for(datasets)
    paper = paper_values(reference, methods, optimizers, paper_sets)
    if paper_baseline is not None:
        published = paper_baseline[paper_baseline.method.isin(methods) & paper_baseline.dataset.isin(paper_sets)]
        paper = pd.concat([published[paper.columns], paper], ignore_index=True)
    paper.insert(0, "source", "paper")
    tidy = pd.concat([ours, paper], ignore_index=True)
    tidy.insert(2, "family", [paper_row(o)[0] for o in tidy.optimizer])
    tidy.insert(3, "strategy", [paper_row(o)[1] for o in tidy.optimizer])
    tidy = tidy[["source", "method", "optimizer", "family", "strategy", "dataset", "n_seeds"]
                + [f"{m}_{s}" for m in TABLE_METRICS for s in ("mean", "std")]]
    for metric in TABLE_METRICS:
        tidy[f"{metric}_mark"] = best_marks(tidy, metric)

    blocks = {"ours": f"Ours ({profile} profile)", "paper": f"Paper ({PAPER_SETUP})"}
    index = pd.MultiIndex.from_tuples([(method_label(m), *paper_row(o)) for m in methods
                                       for o in optimizers_of(m, optimizers)],
                                      names=["Method", "Optimizer", "Strategy"])
    tables, markdown = {}, []
    for dataset in dict.fromkeys([*datasets, *paper_sets]):
        sources = [source for source in blocks if ((tidy.source == source) & (tidy.dataset == dataset)).any()]
        columns = pd.MultiIndex.from_tuples([(blocks[s], name) for s in sources for name in TABLE_METRICS.values()])
        text = pd.DataFrame("—", index=index, columns=columns)
        marks = pd.DataFrame("", index=index, columns=columns)
        for row in tidy[tidy.dataset == dataset].itertuples():
            key = (method_label(row.method), *paper_row(row.optimizer))
            for metric, name in TABLE_METRICS.items():
                cell = (key, (blocks[row.source], name))
                text.at[cell] = format_mean_std(getattr(row, f"{metric}_mean"), getattr(row, f"{metric}_std"))
                marks.at[cell] = getattr(row, f"{metric}_mark")
        label = dataset_label(dataset) + ("" if len(sources) == 2 else f" ({sources[0]})")
        tables[label] = _marked(text, marks, "<b>", "</b>", ' <span class="zeroflow-tie">(tie)</span>').to_html(
            escape=False, classes="zeroflow-table", border=0)
        flat = _marked(text, marks, "**", "**", " (tie)")
        flat.columns = [" / ".join(c) for c in flat.columns]
        markdown.append(f"**{label}**\n\n" + flat.reset_index().to_markdown(index=False))
    html = "\n".join(f"<h4>{label}</h4>\n{table}" for label, table in tables.items())
    return Table(tidy=tidy, tables=tables, html=html, markdown="\n\n".join(markdown))


def best_marks(tidy: pd.DataFrame, metric: str) -> pd.Series:
    """Each row's mark in its column (source, method, dataset) of `metric`: BEST, TIE or "".

    Ours (mean ± std over seeds): the best mean (highest; lowest for forgetting) is BEST only when it is beyond the
    spread of every other optimizer of its method (`verdict`'s rule: the two means differ by more than the
    two standard deviations together); otherwise it and every row within its spread are a TIE. One seed measures no
    spread, so nothing is marked. The paper's rows have one run each and no spread: its highest printed value is
    BEST as in the paper's own table, and equal highest values a TIE. A zero-step control (optimizer `none`) is the
    method's reference, not one of its optimizers: never marked; a column of one optimizer has nothing to be best
    among.
    """
    lower = metric in LOWER_IS_BETTER
    marks = pd.Series("", index=tidy.index)
    ranked = tidy[(tidy.optimizer != NO_OPTIMIZER) & tidy[f"{metric}_mean"].notna()]
    for (source, _, _), column in ranked.groupby(["source", "method", "dataset"], sort=False):
        if len(column) < 2:
            continue
        means, stds = column[f"{metric}_mean"], column[f"{metric}_std"]
        top = means.idxmin() if lower else means.idxmax()
        if source == "paper":
            tied = column.index[means == means[top]]
            marks[tied] = BEST if len(tied) == 1 else TIE
            continue
        if pd.isna(stds[top]):
            continue
        within = [i for i in column.index if i != top and abs(means[i] - means[top]) <= stds[top] + stds[i]]
        if within:
            marks[[top, *within]] = TIE
        else:
            marks[top] = BEST
    return marks


def _marked(text: pd.DataFrame, marks: pd.DataFrame, opening: str, closing: str, tie: str) -> pd.DataFrame:
    return text.mask(marks == BEST, opening + text + closing).mask(marks == TIE, text + tie)


def best_statements(tidy: pd.DataFrame) -> list[str]:
    """Per method and dataset of our block of Table 1: which optimizer is best in each column, or which tie (the
    paper's block has no spread: its bold is the paper's own)."""
    lines = []
    ours = tidy[(tidy.source == "ours") & (tidy.optimizer != NO_OPTIMIZER)]
    for (method, dataset), part in ours.groupby(["method", "dataset"], sort=False):
        if len(part) < 2:
            continue
        calls = []
        for metric, name in TABLE_METRICS.items():
            best = [optimizer_label(o) for o in part.optimizer[part[f"{metric}_mark"] == BEST]]
            tied = [optimizer_label(o) for o in part.optimizer[part[f"{metric}_mark"] == TIE]]
            if best:
                calls.append(f"{name}: **{best[0]}**, beyond the spread of every other optimizer")
            elif len(tied) == len(part):
                calls.append(f"{name}: {'both' if len(tied) == 2 else f'all {len(tied)}'} optimizers tie")
            elif tied:
                calls.append(f"{name}: a tie of {_and(tied)}")
            else:
                calls.append(f"{name}: no best called (one seed: no spread measured)")
        lines.append(f"{method_label(method)} on {dataset_label(dataset)}: " + "; ".join(calls) + ".")
    return lines


def _and(names) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def tab_set(tables: dict) -> str:
    """MyST for a sphinx-design tab set, one tab per entry (label → HTML), for a notebook output rendered as MyST
    (the cell's metadata `mystnb: {markdown_format: myst}`): each table on screen alone, none scrolled sideways."""
    # an HTML block ends at a blank line only: one before each closing fence
    items = [f":::{{tab-item}} {label}\n\n{html.strip()}\n\n:::" for label, html in tables.items()]
    return "::::{tab-set}\n\n" + "\n\n".join(items) + "\n\n::::"


# ------------------------------------------------------------------------------------------- Figure 2
@dataclass
class Overview:
    """Figure 2's numbers: ours and the paper's per method × optimizer × dataset, and both no-training rows."""

    baseline: str
    methods: list[str]  # one row of panels each
    paper_datasets: list[str]
    ours: pd.DataFrame  # aggregate() of the trained methods
    anchors: pd.DataFrame  # our no-training rows, one per dataset
    paper: pd.DataFrame  # paper_values() of `methods`
    paper_anchors: pd.DataFrame  # the published no-training numbers of the paper datasets
    tidy: pd.DataFrame  # all of the above with a source column (ours, paper): the CSV


def overview(runs: pd.DataFrame, reference: pd.DataFrame, paper_baseline: pd.DataFrame, baseline: str, methods,
             optimizers, datasets) -> Overview:
    """Figure 2's numbers for the grid's runs (`baseline` among them)."""
    # EASE and APER as in the paper when the grid has them; otherwise the grid's own methods.
    shown = [m for m in PAPER_METHODS if m in methods]
    shown = (shown + [m for m in methods if m not in shown])[:2]
    summary = aggregate(runs)
    # The paper's bars: the same datasets when the grid uses the paper's, else its CIFAR-100.
    paper_sets = [d for d in datasets if d in PAPER_DATASETS] or ["cifar100"]
    paper = paper_values(reference, shown, optimizers, paper_sets)
    paper_anchors = paper_baseline[paper_baseline.dataset.isin(paper_sets)]
    tidy = pd.concat([summary.assign(source="ours"), paper.assign(source="paper"),
                      paper_anchors.assign(source="paper")], ignore_index=True)
    return Overview(baseline, shown, paper_sets, summary[summary.method != baseline],
                    summary[summary.method == baseline], paper, paper_anchors, tidy)


# ------------------------------------------------------------------------------------------- Figure 4
def paper_last_table(reference: pd.DataFrame, methods, optimizers, datasets) -> pd.DataFrame:
    """The paper's last-task accuracy (its Figure 4) for our methods × optimizers: rows optimizer, columns."""
    values = paper_values(reference, [m for m in methods if m in PAPER_METHODS], optimizers,
                          paper_datasets_for(datasets))
    if values.empty:
        return pd.DataFrame()
    values["Method"] = values.method.map(method_label)
    values["Optimizer"] = values.optimizer.map(optimizer_label)
    values["Dataset"] = values.dataset.map(dataset_label)
    table = values.pivot_table(index=["Method", "Optimizer"], columns="Dataset", values="last_acc_mean", sort=False)
    return table


# ---------------------------------------------------------------------------------------------- text
def banner(profile: str, datasets, seeds, code_version: str, params_hash: str) -> str:
    """The first thing every notebook shows: which profile made these numbers and how far they are from the paper's."""
    data = ", ".join(dataset_label(d) for d in datasets)
    seed_text = _seeds_text(seeds)
    where = f"code {code_version}, params.yaml {params_hash}"
    if profile == "smoke":
        return (f"> **Produced by the SMOKE profile** on {data}, {seed_text}; {where}.\n>\n"
                "> A small ViT pretrained here by backprop on generated data, a few epochs on a CPU: these numbers "
                "check the pipeline and the trends, they are **not the paper's scale**. The paper's numbers "
                f"({PAPER_SETUP}, CIFAR-100 / CUB / ImageNet-A / OmniBenchmark, 10 tasks, GPU) are shown "
                "beside ours for reference, not as a target. Switch with `profile: paper` in params.yaml.")
    if profile == "paper":
        return (f"> **Produced by the PAPER profile** on {data}, {seed_text}; {where}.\n>\n"
                f"> {PAPER_SETUP}, the paper's datasets and settings: these numbers are directly comparable "
                "with the paper's, shown beside them.")
    return f"> **Produced by the {profile.upper()} profile** on {data}, {seed_text}; {where}."


def toy_banner(profile: str, steps: int, seeds, code_version: str, params_hash: str) -> str:
    """The banner of the trajectory figures (3 and 6), which use neither the benchmark's models nor its datasets."""
    return (f"> **Two-task toy problem**, {steps} steps, {_seeds_text(seeds)}; code {code_version}, params.yaml "
            f"{params_hash}.\n>\n"
            "> Two quadratic bowls in a 2-D parameter space, optimised by the benchmark's own optimizers in seconds "
            f"on a CPU; the same under every profile (this one: {profile}). The paper does not say which landscape "
            "it drew, so these are our trajectories on our toy: compare their shapes with the paper's figure, not "
            "their numbers.")


class Sources:
    """What a page says under each of its tables and figures: the CSVs that item wrote and read, as downloads
    shipped with the book (`zeroflow book` copies results/<page>/ and reference/ into the site's data/ folder), the
    notebook, the params.yaml section the page takes with its hash, and the code version. One per page, built from
    the page's papermill parameters."""

    def __init__(self, out_dir, params_section: str, section_hash: str, code_version: str):
        self.out_dir, self.page = Path(out_dir), Path(out_dir).name
        self.params_section, self.section_hash, self.code_version = params_section, section_hash, code_version

    def line(self, writes=(), reads=()) -> str:
        """The provenance line (HTML). `writes`: files of this page's folder, which must exist; `reads`: files under
        reference/ (linked, shipped) or folders of results (named)."""
        missing = [name for name in writes if not (self.out_dir / name).is_file()]
        if missing:
            raise FileNotFoundError(f"{self.out_dir}: the provenance line names {', '.join(missing)}, which the page "
                                    "did not write")
        links = [_download(f"{DOWNLOADS}/{self.page}/{name}", name) for name in writes]
        read = [_download(f"{DOWNLOADS}/{path}", path) if str(path).startswith("reference/")
                else f"<code>{html_escape(str(path))}{'' if Path(path).suffix else '/'}</code>" for path in reads]
        parts = ([f"data {', '.join(links)}"] if links else []) + ([f"read {', '.join(read)}"] if read else [])
        parts += [f"notebook {_download(f'{DOWNLOADS}/{self.page}/{self.page}.ipynb', f'notebooks/{self.page}.ipynb')}",
                  f'params.yaml <a href="reproducibility.html#parameters"><code>{html_escape(self.params_section)}'
                  f'</code></a> <code title="sha256 of the params this page takes: profile and '
                  f'{html_escape(self.params_section)}">{self.section_hash}</code>',
                  f"code <code>{html_escape(self.code_version)}</code>"]
        return f'<p class="zeroflow-provenance">{" · ".join(parts)}</p>'

    def table(self, table, writes=(), reads=(), **to_html) -> None:
        """Display a table (a DataFrame, or its HTML) with its provenance line under it."""
        from IPython.display import HTML, display

        shown = table if isinstance(table, str) else table.to_html(**{"index": False, **to_html})
        display(HTML(shown + "\n" + self.line(writes, reads)))

    def figure(self, path, writes=(), reads=()) -> None:
        """Display a figure at the size its fonts were set for (FIGURE_DPI pixels per inch saved, SCREEN_DPI shown:
        the book links the image to itself at full size) with its provenance line under it."""
        from IPython.display import HTML, Image, display
        from PIL import Image as PILImage

        with PILImage.open(path) as image:
            width = round(image.width * SCREEN_DPI / FIGURE_DPI)
        display(Image(filename=str(path), width=width))
        display(HTML(self.line([Path(path).name, *writes], reads)))


def _download(href: str, text: str) -> str:
    return f'<a href="{html_escape(href)}" download>{html_escape(text)}</a>'


def _seeds_text(seeds) -> str:
    return f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''} ({', '.join(map(str, seeds))})"


def bullets(lines) -> str:
    """A Markdown list of the pages' computed statements."""
    return "\n".join(f"- {line}" for line in lines)


# ------------------------------------------------------------------------------------------ papermill
def execute_notebook(name: str, params: dict, params_path="params.yaml", *, root=None, notebooks_dir=None,
                     overrides: dict | None = None) -> Path:
    """Run notebooks/<name>.ipynb with papermill into results/<name>/<name>.ipynb (relative to root), with the
    parameters its page record gives it (pages.notebook_parameters).

    The kernel's working directory is root (the repo by default), so the parameters' relative paths
    (runs/train, reference, results/<name>) resolve there. results/<name>/ is emptied first: the DVC
    output must hold only what this execution wrote.
    """
    import papermill

    if name not in NOTEBOOKS:
        raise ValueError(f"unknown notebook {name!r}; known: {', '.join(NOTEBOOKS)}")
    root = Path(root).resolve() if root is not None else Path.cwd().resolve()
    source = Path(notebooks_dir or root / "notebooks") / f"{name}.ipynb"
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no such notebook")
    params_path = Path(params_path) if Path(params_path).is_absolute() else root / params_path
    check_pages_against(params, str(params_path))
    parameters = notebook_parameters(params, name, params_path)
    parameters.update(overrides or {})
    _check_inputs(name, params, root)

    out_dir = root / parameters["out_dir"]
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    output = out_dir / f"{name}.ipynb"
    from jupyter_client.manager import AsyncKernelManager

    class LocalSocketKernel(AsyncKernelManager):
        """The kernel talks to papermill over Unix sockets (IPC), not unencrypted TCP on localhost: nothing is
        reachable from the network, and the kernel has no reason to warn that it is."""
        transport = "ipc"

    try:
        papermill.execute_notebook(str(source), str(output), parameters=parameters, kernel_name="python3",
                                   cwd=str(root), progress_bar=False, log_output=False,
                                   kernel_manager_class=LocalSocketKernel)
    except papermill.PapermillExecutionError as error:
        raise NotebookError(f"{source} failed in cell {error.exec_count}: {error.ename}: {error.evalue}\n"
                            f"The partial output is in {output}") from None
    _drop_execution_times(output)
    return output


def _drop_execution_times(path: Path) -> None:
    """Remove the times papermill and the kernel record, and name the injected parameters cell (papermill gives it a
    random id): the executed notebook is a DVC output, and the same results must give the same file (and the same
    book version)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for record in [nb.metadata.get("papermill", {})] + [cell.metadata.get("papermill", {}) for cell in nb.cells]:
        for key in ("start_time", "end_time", "duration"):
            record.pop(key, None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell.id = "injected-parameters"
    nbformat.write(nb, path)


def _check_inputs(name: str, params: dict, root: Path) -> None:
    """Fail before a kernel starts when an input of the page is missing, naming the stage that makes it."""
    page, grid = BOOK.notebooks[name], params["grid"]
    if page.kind in ("grid", "efficiency", "switches"):
        load_runs(root / page.beside, [grid["baseline"], *grid["methods"]], grid["optimizers"], grid["datasets"],
                  grid["seeds"])
    if page.kind == "efficiency":
        for model in params["efficiency"]["models"]:
            path = root / EFFICIENCY_DIR / f"{model}.json"
            if not path.is_file():
                raise MissingRunError(f"{path}: no efficiency measurements; run `dvc repro efficiency@{model}`")
    sweeps = [page.sweep] if page.kind == "sweep" else list(switches(params)) if page.kind == "switches" else []
    for sweep in sweeps:
        for cell in sweep_cells(params, sweep):
            path = root / cell.out / "metrics.json"
            if not path.is_file():
                raise MissingRunError(f"{path}: missing; run `dvc repro ablation@{sweep}`")
