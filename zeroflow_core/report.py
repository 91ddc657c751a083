"""What the table and figure notebooks share: reading runs, averaging seeds, the paper's names, banners.

The notebooks stay thin and only plot; everything here is plain pandas so it is tested without a kernel
(tests/test_report.py). Data comes only from each run's metrics.json and from reference/*.csv.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from zeroflow_core.config import NO_OPTIMIZER
from zeroflow_core.params import (NOTEBOOK_INPUTS, RESULTS_DIR, RUNS_DIR, notebook_parameters, optimizers_of, run_folder,
                                  run_name, sweep_cells)

# The notebook stages of dvc.yaml, in the book's order; a name outside this list is refused before a kernel starts.
NOTEBOOKS = tuple(NOTEBOOK_INPUTS)
REPO_ROOT = Path(__file__).resolve().parent.parent

# Our registry names → the paper's Table 1 rows (optimizer family, strategy); Forward-Grad has no family.
PAPER_ROWS = {
    "fo-sgd": ("SGD", "FO"), "zo-sgd": ("SGD", "ZO"), "zo-sgd-sign": ("SGD", "Sign"),
    "zo-sgd-conserve": ("SGD", "Conserve"),
    "fo-adam": ("Adam", "FO"), "zo-adam": ("Adam", "ZO"), "zo-adam-sign": ("Adam", "Sign"),
    "zo-adam-conserve": ("Adam", "Conserve"),
    "forward-grad": ("-", "Forward"),
    NO_OPTIMIZER: ("—", "No training"),
}
OPTIMIZER_LABELS = {
    "fo-sgd": "FO-SGD", "zo-sgd": "ZO-SGD", "zo-sgd-sign": "ZO-SGD-Sign", "zo-sgd-conserve": "ZO-SGD-Conserve",
    "fo-adam": "FO-Adam", "zo-adam": "ZO-Adam", "zo-adam-sign": "ZO-Adam-Sign",
    "zo-adam-conserve": "ZO-Adam-Conserve", "forward-grad": "Forward-Grad", NO_OPTIMIZER: "No training",
}
METHOD_LABELS = {"simplecil": "SimpleCIL", "ease": "EASE", "aper": "APER", "finetune": "Fine-tune", "replay": "Replay",
                 "lwf": "LwF"}
PAPER_METHODS = ("ease", "aper")
PAPER_DATASETS = ("cifar100", "cub", "imagenet_a", "omnibenchmark")
DATASET_LABELS = {"cifar100": "CIFAR-100", "cub": "CUB", "imagenet_a": "ImageNet-A",
                  "omnibenchmark": "OmniBenchmark", "digits": "Digits", "synthetic": "Synthetic-100", "hues": "Hues"}
PAPER_SETUP = "ViT-B/16-IN21K"
# One colour per optimizer in every figure, so a line in figure 4 and a bar in figure 2 read the same.
OPTIMIZER_COLORS = dict(zip(OPTIMIZER_LABELS, ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                                               "#e377c2", "#7f7f7f", "#17becf"]))
# metrics.json key → Table 1 column; forgetting is the one where lower is better.
TABLE_METRICS = {"avg_acc": "Avg", "last_acc": "Last", "forgetting": "Fgt"}
LOWER_IS_BETTER = {"forgetting"}
SCALAR_KEYS = ("avg_acc", "last_acc", "forgetting", "bwt", "peak_memory_mb", "seconds_per_epoch",
               "forward_passes", "backward_passes", "forwards_per_step", "steps")


class MissingRunError(FileNotFoundError):
    """A grid cell has no metrics.json; the message names the folder and the dvc stage that writes it."""


class NotebookError(RuntimeError):
    """A notebook failed while papermill ran it; the partial output notebook is kept for reading."""


def optimizer_label(optimizer: str) -> str:
    return OPTIMIZER_LABELS.get(optimizer, optimizer)


def method_label(method: str) -> str:
    return METHOD_LABELS.get(method, method)


def dataset_label(dataset: str) -> str:
    return DATASET_LABELS.get(dataset, dataset)


def paper_row(optimizer: str) -> tuple[str, str]:
    """(family, strategy) of Table 1; an optimizer the paper does not have keeps its own name."""
    return PAPER_ROWS.get(optimizer, ("-", optimizer))


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
    # a folder renamed by hand would otherwise put one run's numbers under another's name
    expected = {"method": method, "optimizer": optimizer, "dataset": dataset, "seed": seed}
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
    row["acc_seen"] = list(metrics["acc_seen"])
    row["acc_matrix"] = metrics.get("acc_matrix")
    return row


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
    to_ours = {row: name for name, row in PAPER_ROWS.items()}
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


def load_paper_baseline(reference_dir) -> pd.DataFrame:
    """Published SimpleCIL numbers (the APER paper; the ZeroFlow paper has no no-training row), in the
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


# ------------------------------------------------------------------------------------------- Table 1
@dataclass
class Table:
    tidy: pd.DataFrame  # one row per (source, method, optimizer, dataset): the CSV
    html: str
    markdown: str


def table_1(runs: pd.DataFrame, reference: pd.DataFrame, methods, optimizers, datasets, profile: str,
            paper_baseline: pd.DataFrame | None = None) -> Table:
    """Table 1's layout: rows method / optimizer family / strategy, column groups per dataset (Avg, Last, Fgt).

    `methods` may start with the no-training baseline (optimizer `none`, one row). Our block first, then
    the paper's block for the same rows (the baseline's published numbers from `paper_baseline`); the best
    of each column within a method is bold (highest Avg and Last, lowest Fgt), in each block separately
    since the two are different setups.
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

    ours_label = f"Ours ({profile} profile)"
    paper_label = f"Paper ({PAPER_SETUP})"
    blocks = [(ours_label, "ours", list(datasets)), (paper_label, "paper", paper_sets)]
    columns = pd.MultiIndex.from_tuples([(label, dataset_label(d), name) for label, _, sets in blocks
                                         for d in sets for name in TABLE_METRICS.values()])
    index = pd.MultiIndex.from_tuples([(method_label(m), *paper_row(o)) for m in methods
                                       for o in optimizers_of(m, optimizers)],
                                      names=["Method", "Optimizer", "Strategy"])
    cells = {"html": pd.DataFrame("—", index=index, columns=columns),
             "md": pd.DataFrame("—", index=index, columns=columns)}
    for label, source, sets in blocks:
        part = tidy[tidy.source == source]
        for method in methods:
            rows = part[part.method == method]
            for dataset in sets:
                col_rows = rows[rows.dataset == dataset]
                for metric, name in TABLE_METRICS.items():
                    means = col_rows.set_index("optimizer")[f"{metric}_mean"]
                    best = (means.min() if metric in LOWER_IS_BETTER else means.max()) if len(means) else None
                    for optimizer, mean in means.items():
                        std = col_rows.set_index("optimizer").at[optimizer, f"{metric}_std"]
                        text = format_mean_std(mean, std)
                        bold = len(means) > 1 and mean == best
                        key = (method_label(method), *paper_row(optimizer))
                        cells["html"].at[key, (label, dataset_label(dataset), name)] = f"<b>{text}</b>" if bold else text
                        cells["md"].at[key, (label, dataset_label(dataset), name)] = f"**{text}**" if bold else text
    html = cells["html"].to_html(escape=False, classes="zeroflow-table", border=0)
    flat = cells["md"].copy()
    flat.columns = [" / ".join(c) for c in flat.columns]
    markdown = flat.reset_index().to_markdown(index=False)
    return Table(tidy=tidy, html=html, markdown=markdown)


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
    seed_text = f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''} ({', '.join(map(str, seeds))})"
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


def setup_plotting():
    """Agg (no display needed) and one readable style; notebooks display the saved PNGs themselves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 110, "savefig.bbox": "tight"})
    return plt


# ------------------------------------------------------------------------------------------ papermill
def execute_notebook(name: str, params: dict, params_path="params.yaml", *, root=None, notebooks_dir=None,
                     overrides: dict | None = None) -> Path:
    """Run notebooks/<name>.ipynb with papermill into results/<name>/<name>.ipynb (relative to root).

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
    parameters = notebook_parameters(params, name, params_path)
    parameters.update(overrides or {})

    _check_inputs(name, parameters, params, root)

    out_dir = root / parameters["out_dir"]
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    output = out_dir / f"{name}.ipynb"
    try:
        papermill.execute_notebook(str(source), str(output), parameters=parameters, kernel_name="python3",
                                   cwd=str(root), progress_bar=False, log_output=False)
    except papermill.PapermillExecutionError as error:
        raise NotebookError(f"{source} failed in cell {error.exec_count}: {error.ename}: {error.evalue}\n"
                            f"The partial output is in {output}") from None
    return output


def _check_inputs(name: str, parameters: dict, params: dict, root: Path) -> None:
    """Fail before a kernel starts when an input is missing, naming the stage that makes it."""
    kind = NOTEBOOK_INPUTS[name]
    if kind in ("grid", "efficiency"):
        load_runs(root / parameters["runs_dir"], [parameters["baseline"], *parameters["methods"]],
                  parameters["optimizers"], parameters["datasets"], parameters["seeds"])
    if kind == "efficiency":
        for model in parameters["models"]:
            path = root / parameters["efficiency_dir"] / f"{model}.json"
            if not path.is_file():
                raise MissingRunError(f"{path}: no efficiency measurements; run `dvc repro efficiency@{model}`")
    elif kind in params["ablations"]["sweeps"]:
        for cell in sweep_cells(params, kind):
            path = root / parameters["ablation_dir"] / cell.name / "metrics.json"
            if not path.is_file():
                raise MissingRunError(f"{path}: missing; run `dvc repro ablation@{kind}`")


__all__ = ["NOTEBOOKS", "PAPER_ROWS", "MissingRunError", "NotebookError", "load_runs", "aggregate",
           "format_mean_std", "seen_curves", "curve_summary", "load_reference", "load_read_off", "load_paper_baseline", "paper_values",
           "table_1", "optimizers_of",
           "paper_last_table", "banner", "execute_notebook", "optimizer_label", "method_label", "dataset_label",
           "paper_row", "stage_name", "setup_plotting", "RUNS_DIR", "RESULTS_DIR", "REPO_ROOT"]
