"""Report helpers, the three notebooks (papermill) and the versioned book, on hand-made metrics.json files."""
import datetime as dt
import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from zeroflow_core.book import report
from zeroflow_core.book.pages import NOTEBOOKS
from zeroflow_core.io import load_yaml
from zeroflow_core.pipeline.cells import run_folder
from zeroflow_core.pipeline.provenance import params_hash
from zeroflow_core.run.timing import write_timing

REPO = Path(__file__).resolve().parent.parent

# (method, optimizer, seed) → (avg, last, forgetting); two seeds so every mean and std is hand-checkable
VALUES = {
    ("ease", "fo-sgd", 0): (60.0, 50.0, 10.0), ("ease", "fo-sgd", 1): (70.0, 54.0, 14.0),
    ("ease", "zo-sgd", 0): (55.0, 41.0, 20.0), ("ease", "zo-sgd", 1): (57.0, 45.0, 16.0),
    ("aper", "fo-sgd", 0): (80.0, 75.0, 5.0), ("aper", "fo-sgd", 1): (82.0, 77.0, 3.0),
    ("aper", "zo-sgd", 0): (81.0, 76.0, 4.0), ("aper", "zo-sgd", 1): (79.0, 70.0, 8.0),
    # each method's zero-step control (optimizer none: every step skipped)
    ("ease", "none", 0): (54.0, 44.0, 12.0), ("ease", "none", 1): (56.0, 46.0, 10.0),
    ("aper", "none", 0): (78.0, 70.0, 6.0), ("aper", "none", 1): (78.0, 72.0, 4.0),
}
# the no-training row: the same numbers for both seeds (prototypes of a frozen backbone: no seed moves them)
BASELINE = {("simplecil", "none", 0): (58.0, 46.0, 11.0), ("simplecil", "none", 1): (58.0, 46.0, 11.0)}
GRID = {"baseline": "simplecil", "methods": ["ease", "aper"], "optimizers": ["fo-sgd", "zo-sgd"],
        "datasets": ["digits"], "seeds": [0, 1]}


def write_run(runs_dir: Path, method, optimizer, dataset, seed, avg, last, fgt, profile="smoke"):
    folder = run_folder(method, optimizer, dataset, seed, runs_dir)
    folder.mkdir(parents=True, exist_ok=True)
    first = 2 * avg - last  # two stages whose mean is avg and whose last is last
    metrics = {"avg_acc": avg, "last_acc": last, "forgetting": fgt, "bwt": -fgt,
               "acc_matrix": [[first, first - fgt], [None, last]], "acc_seen": [first, last],
               "loss_curves": [[], []] if optimizer == "none" else [[1.0, 0.5], [1.2, 0.7]],
               "heldout_losses": [{"step": 1, "task": 0, "losses": [1.1]}, {"step": 2, "task": 0, "losses": [0.6]},
                                  {"step": 3, "task": 1, "losses": [0.9, 1.3]}, {"step": 4, "task": 1, "losses": [0.8, 0.9]}],
               "forward_passes": 10, "backward_passes": 0, "forwards_per_step": 2.0,
               "steps": 5, "method": method, "optimizer": optimizer, "dataset": dataset, "seed": seed,
               "profile": profile}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    write_timing(folder, {"peak_memory_mb": 100.0, "seconds_per_epoch": 0.1, "task_seconds": [0.2, 0.2]})
    return folder


def fake_grid(runs_dir: Path):
    for (method, optimizer, seed), (avg, last, fgt) in {**BASELINE, **VALUES}.items():
        write_run(runs_dir, method, optimizer, "digits", seed, avg, last, fgt)


def load(runs_dir, methods=GRID["methods"]):
    return report.load_runs(runs_dir, methods, GRID["optimizers"], GRID["datasets"], GRID["seeds"])


def test_load_runs_one_row_per_run_in_grid_order(tmp_path):
    fake_grid(tmp_path)
    runs = load(tmp_path)
    assert len(runs) == 12
    assert list(runs.run[:3]) == ["ease-fo-sgd-digits-0", "ease-fo-sgd-digits-1", "ease-zo-sgd-digits-0"]
    assert list(runs.run[4:6]) == ["ease-digits-0", "ease-digits-1"]  # the zero-step control, after the optimizers
    assert runs.loc[0, "loss_drop"] == pytest.approx(0.5) and pd.isna(runs.loc[4, "loss_drop"])
    assert runs.loc[0, "acc_seen"] == [70.0, 50.0]
    trained_rows = runs[runs.optimizer != "none"]
    assert (trained_rows.family == "SGD").all() and set(trained_rows.strategy) == {"FO", "ZO"}
    assert set(runs[runs.optimizer == "none"].strategy) == {"No training"}


def test_aggregate_mean_and_sample_std_over_seeds(tmp_path):
    fake_grid(tmp_path)
    table = report.aggregate(load(tmp_path)).set_index(["method", "optimizer"])
    row = table.loc[("ease", "fo-sgd")]
    assert row.n_seeds == 2
    assert row.avg_acc_mean == pytest.approx(65.0) and row.avg_acc_std == pytest.approx(math.sqrt(50))
    assert row.last_acc_mean == pytest.approx(52.0) and row.last_acc_std == pytest.approx(math.sqrt(8))
    assert row.forgetting_mean == pytest.approx(12.0) and row.forgetting_std == pytest.approx(math.sqrt(8))
    assert table.loc[("aper", "zo-sgd")].avg_acc_mean == pytest.approx(80.0)
    assert list(table.index) == [("ease", "fo-sgd"), ("ease", "zo-sgd"), ("ease", "none"), ("aper", "fo-sgd"),
                                 ("aper", "zo-sgd"), ("aper", "none")]


def test_one_seed_has_no_std_and_formatting():
    runs = pd.DataFrame([{"method": "ease", "optimizer": "zo-sgd", "dataset": "digits", "avg_acc": 50.0,
                          "last_acc": 40.0, "forgetting": 5.0}])
    row = report.aggregate(runs).iloc[0]
    assert math.isnan(row.avg_acc_std)
    assert report.format_mean_std(row.avg_acc_mean, row.avg_acc_std) == "50.00"
    assert report.format_mean_std(65.0, math.sqrt(50)) == "65.00 ± 7.07"
    assert report.format_mean_std(float("nan"), None) == "—"


def test_missing_run_names_folder_and_stage(tmp_path):
    fake_grid(tmp_path)
    shutil.rmtree(tmp_path / "ease-digits" / "ease-zo-sgd-digits-1")
    with pytest.raises(report.MissingRunError) as error:
        load(tmp_path)
    message = str(error.value)
    assert "ease-digits/ease-zo-sgd-digits-1" in message and "dvc repro train@ease-digits" in message
    assert "1 of 12 runs" in message and "dvc repro" in message


def test_run_in_the_wrong_folder_or_profile_is_refused(tmp_path):
    fake_grid(tmp_path)
    path = tmp_path / "ease-digits" / "ease-fo-sgd-digits-0" / "metrics.json"
    metrics = json.loads(path.read_text())
    path.write_text(json.dumps({**metrics, "optimizer": "zo-adam"}))
    with pytest.raises(ValueError, match="zo-adam"):
        load(tmp_path)
    path.write_text(json.dumps(metrics))
    with pytest.raises(ValueError, match="profile"):
        report.load_runs(tmp_path, ["ease"], ["fo-sgd"], ["digits"], [0], profile="paper")


def test_optimizer_and_method_names_match_the_paper():
    from zeroflow_core.optim import OPTIMIZERS

    assert {name: report.paper_row(name) for name in [*OPTIMIZERS, "none"]} == {
        "fo-sgd": ("SGD", "FO"), "zo-sgd": ("SGD", "ZO"), "zo-sgd-sign": ("SGD", "Sign"),
        "zo-sgd-conserve": ("SGD", "Conserve"), "fo-adam": ("Adam", "FO"), "zo-adam": ("Adam", "ZO"),
        "zo-adam-sign": ("Adam", "Sign"), "zo-adam-conserve": ("Adam", "Conserve"), "forward-grad": ("-", "Forward"),
        "fzoo": ("—", "FZOO, beyond the paper"), "lozo": ("—", "LOZO, beyond the paper"),
        "hizoo": ("—", "HiZOO, beyond the paper"), "sparse-mezo": ("—", "Sparse MeZO, beyond the paper"),
        "none": ("—", "No training")}
    assert report.method_label("ease") == "EASE" and report.method_label("aper") == "APER"
    reference = report.load_reference(REPO / "reference")
    # every row of the paper's Table 1 maps to one of our optimizers, and the datasets are the paper's
    assert reference.optimizer_name.notna().all()
    assert set(reference.dataset) == set(report.PAPER_DATASETS)
    assert set(reference.method_name) == {"ease", "aper"}
    paper = report.paper_values(reference, ["ease"], ["zo-sgd"], ["cifar100"])
    assert paper.iloc[0][["avg_acc_mean", "last_acc_mean", "forgetting_mean"]].tolist() == [78.62, 68.40, 15.64]


def test_the_baseline_has_one_row_per_dataset_and_seed(tmp_path):
    fake_grid(tmp_path)
    runs = load(tmp_path, ["simplecil", "ease"])
    assert list(runs.run[:2]) == ["simplecil-digits-0", "simplecil-digits-1"]
    assert list(runs[runs.method == "simplecil"].strategy) == ["No training"] * 2


def test_every_row_is_read_against_its_zero_step_control(tmp_path):
    from zeroflow_core.book import trained

    fake_grid(tmp_path)
    runs = load(tmp_path, ["simplecil", *GRID["methods"]])
    comparison = trained.versus_control(runs, "simplecil").set_index(["method", "optimizer", "metric"])
    # EASE + FO-SGD: 65 ± 7.07 against EASE's zero-step control 55 ± 1.41: +10 beyond a spread of 8.49
    row = comparison.loc[("ease", "fo-sgd", "avg_acc")]
    assert row.difference == pytest.approx(10.0) and row.spread == pytest.approx(math.sqrt(50) + math.sqrt(2))
    assert row.verdict == "better" and row.against == "zero-step"
    # EASE + ZO-SGD 56 ± 1.41 against 55 ± 1.41: within; APER + FO-SGD 81 ± 1.41 against 78 ± 0: better
    assert comparison.loc[("ease", "zo-sgd", "avg_acc")].verdict == "within the spread"
    assert comparison.loc[("aper", "fo-sgd", "avg_acc")].verdict == "better"
    # the controls against SimpleCIL (58 ± 0): EASE's structure alone 55 ± 1.41 is worse, APER's 78 better
    assert comparison.loc[("ease", "none", "avg_acc")].verdict == "worse"
    assert comparison.loc[("aper", "none", "avg_acc")].against == "simplecil"
    statements = trained.control_statements(comparison.reset_index(), "simplecil")
    assert statements[0].startswith("EASE on Digits without a single step") and "-3.00 ± 1.41" in statements[0]
    assert "EASE: 2 of 2 optimizers lowered the training loss" in statements[1]


def test_banner_says_which_profile():
    smoke = report.banner("smoke", ["digits"], [0, 1], "0.1.0 (abc)", "1234abcd")
    assert "SMOKE profile" in smoke and "not the paper's scale" in smoke
    assert "1234abcd" in smoke and "0.1.0 (abc)" in smoke and "2 seeds (0, 1)" in smoke
    assert "PAPER profile" in report.banner("paper", ["cifar100"], [0], "v", "h")
    toy = report.toy_banner("smoke", 150, [3], "0.1.0 (abc)", "1234abcd")
    assert toy.startswith("> **Two-task toy problem**, 150 steps, 1 seed (3); code 0.1.0 (abc), params.yaml 1234abcd.")
    assert "(this one: smoke)" in toy
    assert report.bullets(["one.", "two."]) == "- one.\n- two."


def test_labels_rows_and_colours_come_from_the_registry():
    from zeroflow_core.optim import OPTIMIZERS

    assert report.optimizer_label("zo-adam-sign") == "ZO-Adam-Sign" and report.optimizer_label("none") == "No training"
    assert report.optimizer_colour("fo-sgd") == "#1f77b4" and report.optimizer_colour("none") == "black"
    # an optimizer the registry does not have keeps its own name and has no colour of its own
    assert report.optimizer_label("zo-lion") == "zo-lion" and report.paper_row("zo-lion") == ("-", "zo-lion")
    assert report.optimizer_colour("zo-lion") is None
    assert len({report.optimizer_colour(name) for name in OPTIMIZERS}) == len(OPTIMIZERS)  # no two lines alike


def _marks(html: str, markdown: str) -> tuple[list, list]:
    """Each data cell's mark ("best": bold, "tie", or ""), row by row, in one dataset's HTML table and in its
    Markdown table (whose first three columns are the row's method, optimizer and strategy)."""
    import re

    def mark(cell: str, bold: str) -> str:
        return "best" if cell.startswith(bold) else "tie" if "(tie)" in cell else ""

    html_marks = [[mark(cell, "<b>") for cell in re.findall(r"<td>(.*?)</td>", row, re.S)]
                  for row in re.findall(r"<tr>(.*?)</tr>", html, re.S) if "<td>" in row]
    markdown_marks = [[mark(cell.strip(), "**") for cell in line.strip("|").split("|")[3:]]
                      for line in markdown.strip().splitlines()[2:]]
    return html_marks, markdown_marks


def test_table_1_one_table_per_dataset_marks_a_best_only_beyond_the_spread(tmp_path):
    fake_grid(tmp_path)
    methods = ["simplecil", *GRID["methods"]]
    table = report.table_1(load(tmp_path, methods), report.load_reference(REPO / "reference"), methods,
                           GRID["optimizers"], GRID["datasets"], "smoke",
                           report.load_paper_baseline(REPO / "reference"))
    # one tab per dataset, so that no table is wider than the page: ours on Digits, the paper's on its four
    assert list(table.tables) == ["Digits (ours)", "CIFAR-100 (paper)", "CUB (paper)", "ImageNet-A (paper)",
                                  "OmniBenchmark (paper)"]
    for label, html in table.tables.items():
        text = table.markdown.split(f"**{label}**\n\n")[1].split("\n\n**")[0]
        html_marks, markdown_marks = _marks(html, text)
        # SimpleCIL, then FO-SGD, ZO-SGD and the zero-step control of EASE and of APER: the same cells marked
        assert html_marks == markdown_marks and len(html_marks) == 7, label
    digits, _ = _marks(table.tables["Digits (ours)"], "")
    # EASE: FO-SGD's 65.00 ± 7.07 against ZO-SGD's 56.00 ± 1.41 differ by 9.00, beyond 7.07 + 1.41: bold (Avg, Last
    # and Fgt). APER: FO-SGD's 81.00 ± 1.41 against ZO-SGD's 80.00 ± 1.41, within the spread: a tie, not a bold.
    assert digits == [[""] * 3, ["best"] * 3, [""] * 3, [""] * 3, ["tie"] * 3, ["tie"] * 3, [""] * 3]
    cifar, _ = _marks(table.tables["CIFAR-100 (paper)"], "")
    # the paper's one run per row has no spread: its highest printed value is bold, equal ones tie (APER's Last)
    assert [row[0] for row in cifar[1:]] == ["best", "", "", "", "best", ""]
    assert [row[1] for row in cifar[4:6]] == ["tie", "tie"]
    assert "| **65.00 ± 7.07**" in table.markdown and "<td><b>65.00 ± 7.07</b></td>" in table.html
    assert set(table.tidy.avg_acc_mark) == {"", "best", "tie"}
    statements = "\n".join(report.best_statements(table.tidy))
    assert "EASE on Digits: Avg: **FO-SGD**, beyond the spread of every other optimizer" in statements
    assert "APER on Digits: Avg: both optimizers tie" in statements


def test_a_lower_mean_within_the_spread_is_a_tie_not_the_best():
    """The case the book once bolded: forgetting 15.92 ± 1.28 against 15.96 ± 4.74."""
    tidy = pd.DataFrame({"source": "ours", "method": "ease", "dataset": "cub", "optimizer": ["zo-sgd", "zo-adam"],
                         "forgetting_mean": [15.92, 15.96], "forgetting_std": [1.28, 4.74]})
    assert report.best_marks(tidy, "forgetting").tolist() == [report.TIE, report.TIE]
    tidy["forgetting_std"] = [0.01, 0.01]  # the same means, no spread to speak of: the lower one is the best
    assert report.best_marks(tidy, "forgetting").tolist() == [report.BEST, ""]
    tidy["forgetting_std"] = [float("nan")] * 2  # one seed: no spread measured, nothing is called
    assert report.best_marks(tidy, "forgetting").tolist() == ["", ""]


def test_figure_5_paper_points_are_printed_or_read_off():
    points = report.figure_5_paper_points(REPO / "reference", ["fo-sgd", "zo-sgd", "zo-adam"])
    assert list(points.optimizer.unique()) == ["zo-sgd", "zo-adam"]  # the ones the paper's figure has
    printed = points[points.printed].set_index("optimizer")
    # q = 1 is Table 1's setting: EASE on ImageNet-A, ZO-SGD and ZO-Adam
    assert printed.q.tolist() == [1, 1] and printed.avg.to_dict() == {"zo-sgd": 57.87, "zo-adam": 58.90}
    assert set(printed.source) == {"Table 1"}
    read_off = points[~points.printed]
    assert read_off[["optimizer", "q", "avg"]].values.tolist() == [["zo-sgd", 32, 59.5]]
    assert read_off.source.tolist() == ["read off Figure 5, approximate"]
    assert points[points.optimizer == "zo-sgd"].q.tolist() == [1, 32]  # in q order: the dashed line joins them


def test_overview_takes_the_papers_methods_and_both_no_training_rows(tmp_path):
    fake_grid(tmp_path)
    runs = load(tmp_path, ["simplecil", "aper", "ease"])
    overview = report.overview(runs, report.load_reference(REPO / "reference"),
                               report.load_paper_baseline(REPO / "reference"), "simplecil", ["aper", "ease"],
                               GRID["optimizers"], ["digits"])
    assert overview.methods == ["ease", "aper"]  # the paper's order
    assert overview.paper_datasets == ["cifar100"]  # Digits is not the paper's: its CIFAR-100 stands beside it
    assert list(overview.anchors.avg_acc_mean) == [58.0] and "simplecil" not in set(overview.ours.method)
    assert overview.paper_anchors.avg_acc_mean.tolist() == [87.57]
    # ours: 4 rows, the two zero-step controls and SimpleCIL; the paper: 4 rows and SimpleCIL
    assert overview.tidy.groupby("source").size().to_dict() == {"ours": 7, "paper": 5}


def _drawn(monkeypatch):
    """The figure a figures function draws, kept open instead of saved."""
    from zeroflow_core.book import figures

    drawn = []
    monkeypatch.setattr(figures, "_save", lambda fig, path: drawn.append(fig))
    return figures, drawn


def test_figure_4_line_style_is_the_family_s_and_colour_the_registry_s(tmp_path, monkeypatch):
    from zeroflow_core.optim import OPTIMIZERS

    figures, drawn = _drawn(monkeypatch)
    fake_grid(tmp_path)
    summary = report.curve_summary(report.seen_curves(load(tmp_path, ["simplecil", "ease"])))
    figures.figure_4(summary, ["ease"], ["digits"], GRID["optimizers"], "simplecil", tmp_path / "figure_4.png")
    lines = {line.get_label(): line for line in drawn[0].axes[0].get_lines()}
    assert lines["FO-SGD"].get_linestyle() == "-" and lines["ZO-SGD"].get_linestyle() == "--"
    assert lines["ZO-SGD"].get_color() == "#ff7f0e" and lines["no training (SimpleCIL)"].get_color() == "black"
    assert list(lines["FO-SGD"].get_ydata()) == [78.0, 52.0]  # stage 1 = 2·avg − last, stage 2 = last
    styles = {name: figures.FAMILY_LINES[spec.family] for name, spec in OPTIMIZERS.items()}
    assert styles["fo-adam"] == "-" and styles["zo-adam-sign"] == "--" and styles["forward-grad"] == ":"


def test_figure_5_draws_printed_points_filled_and_read_off_ones_hollow(tmp_path, monkeypatch):
    figures, drawn = _drawn(monkeypatch)
    summary = pd.DataFrame({"optimizer": ["zo-sgd"] * 2, "value": [1, 4], "n_seeds": [2] * 2,
                            "avg_acc_mean": [50.0, 52.0], "avg_acc_std": [1.0, 1.0],
                            "forgetting_mean": [9.0, 8.0], "forgetting_std": [0.5, 0.5]})
    anchor = pd.Series({"method": "simplecil", "avg_acc_mean": 45.0, "forgetting_mean": 5.0})
    points = report.figure_5_paper_points(REPO / "reference", ["zo-sgd", "zo-adam"])
    figures.figure_5(summary, anchor, points, tmp_path / "figure_5.png")
    paper = {line.get_label(): line for line in drawn[0].axes[2].get_lines()}
    printed, read_off = paper["ZO-SGD, printed (Table 1)"], paper["ZO-SGD, ≈ read off the figure"]
    assert list(printed.get_xdata()) == [1] and list(printed.get_ydata()) == [57.87]
    assert printed.get_markerfacecolor() == "#ff7f0e" and read_off.get_markerfacecolor() == "white"
    assert list(read_off.get_xdata()) == [32] and list(read_off.get_ydata()) == [59.5]
    assert not any(label.startswith("ZO-Adam") for label in paper)  # only the optimizers of the sweep
    assert drawn[0].axes[2].get_title() == "paper: EASE on ImageNet-A (ViT-B/16-IN21K), known points"


def test_a_figure_that_would_not_read_at_the_page_width_is_refused(tmp_path):
    """figures._save refuses a figure wider than the page (its text would be shrunk), text too small to read at the
    page's width, and a legend over the data."""
    import matplotlib.pyplot as plt

    from zeroflow_core.book import figures

    figures.setup(tmp_path)
    wide, ax = plt.subplots(figsize=(figures.PAGE_WIDTH * 1.5, 3))
    ax.plot([1, 2], [1, 2])
    with pytest.raises(ValueError, match="wide, more than the page's"):
        figures._save(wide, tmp_path / "wide.png")
    small, ax = plt.subplots(figsize=(4, 3))
    ax.set_title("tiny", fontsize=6)
    with pytest.raises(ValueError, match=r"text of \[6.0\] points"):
        figures._save(small, tmp_path / "small.png")
    covered, ax = plt.subplots(figsize=(4, 3))
    ax.plot([1, 2], [1, 2], label="a line")
    ax.legend(loc="center")
    with pytest.raises(ValueError, match="a legend .a line.*covers the axes"):
        figures._save(covered, tmp_path / "covered.png")
    fine, ax = plt.subplots(figsize=(4, 3))
    ax.plot([1, 2], [1, 2], label="a line")
    figures._legend_below(fine, *ax.get_legend_handles_labels(), ncol=1)
    assert figures._save(fine, tmp_path / "fine.png").is_file() and not list(tmp_path.glob("wide.png"))
    # a legend of the whole grid's long labels takes as many columns as fit the page (the real smoke grid's did not
    # at four: 8.0 in)
    crowded, ax = plt.subplots(figsize=(figures.PAGE_WIDTH, 3))
    for k in range(12):
        ax.plot([1, 2], [k, k + 1], label=f"a long optimizer label number {k}, beyond the paper")
    legend = figures._legend_below(crowded, *ax.get_legend_handles_labels(), ncol=4)
    assert legend._ncols < 4 and figures._save(crowded, tmp_path / "crowded.png").is_file()


def test_the_provenance_line_links_what_the_page_wrote_and_read(tmp_path):
    (tmp_path / "table_9").mkdir()
    (tmp_path / "table_9" / "table_9.csv").write_text("a\n1\n")
    sources = report.Sources(tmp_path / "table_9", "grid", "0123456789ab", "0.1.0 (abc)")
    line = sources.line(["table_9.csv"], ["reference/table1_accuracy.csv", "runs/train"])
    assert line.startswith('<p class="zeroflow-provenance">')
    assert '<a href="data/table_9/table_9.csv" download>table_9.csv</a>' in line  # shipped with the site
    assert '<a href="data/reference/table1_accuracy.csv" download>' in line and "<code>runs/train/</code>" in line
    assert '<a href="data/table_9/table_9.ipynb" download>notebooks/table_9.ipynb</a>' in line
    assert "<code>grid</code>" in line and "0123456789ab" in line and "0.1.0 (abc)" in line
    with pytest.raises(FileNotFoundError, match="names missing.csv, which the page did not write"):
        sources.line(["missing.csv"])


def test_unknown_notebook_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown notebook 'table_9'.*table_1"):
        report.execute_notebook("table_9", {"profile": "smoke", "grid": GRID}, root=tmp_path)


def test_committed_notebooks_are_stripped_and_parameterized():
    import nbformat

    for name in NOTEBOOKS:
        nb = nbformat.read(REPO / "notebooks" / f"{name}.ipynb", as_version=4)
        code = [cell for cell in nb.cells if cell.cell_type == "code"]
        assert "parameters" in code[0].metadata.get("tags", []), name
        assert all(not cell.outputs and cell.execution_count is None for cell in code), name
        assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# "), name


# ---------------------------------------------------------------------------- notebooks and book, end to end
def fake_efficiency(folder: Path):
    """Bench rows as the efficiency stage writes them: FO-SGD 5x ZO-SGD's memory, q = 4 four times the time."""
    rows = []
    for optimizer, q, peak, step, passes in (("fo-sgd", None, 2500.0, 0.3, (1, 1)), ("zo-sgd", 1, 500.0, 0.2, (2, 0)),
                                             ("zo-sgd", 4, 510.0, 0.8, (8, 0))):
        rows.append({"optimizer": optimizer, "q": q, "model": "vit-b16", "batch_size": 48, "device": "cpu",
                     "threads": 2, "steps": 1, "attention": "explicit", "peak_memory_mb": peak,
                     "forward_peak_memory_mb": 480.0, "baseline_memory_mb": 200.0,
                     "forward_baseline_memory_mb": 200.0, "step_seconds": step, "forward_seconds": 0.1,
                     "forward_unfused_seconds": None, "forwards_per_step": passes[0], "backwards_per_step": passes[1]})
    folder.mkdir(parents=True)
    (folder / "vit-b16.json").write_text(json.dumps(rows))


def fake_ablations(root: Path, params: dict):
    """Every cell of every sweep as its stage writes it (the zero-step controls and the step-matched controls too),
    with numbers made from the cell's position among the sweep's values and its seed."""
    from zeroflow_core.pipeline.cells import matched_cells, sweep_cell_name, sweep_cells, sweep_values

    ablations = root / "runs" / "ablation"
    for name, sweep in params["ablations"]["sweeps"].items():
        results = {}

        def write(cell, index, trained=True):
            cell.out.mkdir(parents=True)
            (cell.out / "config.yaml").write_text(yaml.safe_dump(cell.config))
            seed = cell.config["seed"]
            metrics = {"avg_acc": 50.0 + 10 * index + seed, "last_acc": 40.0 + index, "forgetting": 10.0 - index,
                       "forward_passes": 10, "loss_curves": [[1.0, 0.6 - 0.05 * index + 0.01 * seed], [1.0, 0.7]]
                       if trained else [[], []], "step_norms": [0.1 * (1 + index), 0.1 * (1 + index)] if trained
                       else [None, None], "train_image_forwards": 100 * (index + 1)}
            (cell.out / "metrics.json").write_text(json.dumps(metrics))
            write_timing(cell.out, {"task_seconds": [1.0 + index, 1.0], "peak_memory_mb": 300.0 + index})
            return metrics

        for cell in sweep_cells(params, name, ablations):
            if cell.config["optimizer"] == "none":
                write(cell, -1, trained=False)
                continue
            config = cell.config
            values = [sweep_cell_name(config["method"], config["optimizer"], config["dataset"], sweep["hyper"], value,
                                      config["seed"]) for value in sweep_values(sweep, config["optimizer"])]
            results[cell.name] = write(cell, values.index(cell.name))
        if sweep.get("step_matched"):
            for cell in matched_cells(params, name, results, ablations):
                write(cell, 0)


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """A repo-shaped folder with a fake grid, efficiency and ablations, run through every notebook."""

    root = tmp_path_factory.mktemp("repo")
    fake_grid(root / "runs" / "train")
    fake_efficiency(root / "runs" / "efficiency")
    shutil.copytree(REPO / "reference", root / "reference")
    params = load_yaml((REPO / "params.yaml").read_text())
    params["grid"] = GRID
    params["efficiency"]["models"] = {"vit-b16": {"batch_size": 48, "steps": 1, "warmup": 0}}
    params["ablations"].update(seeds=[0, 1], dataset="digits")
    for name, values in (("query_budget", [1, 4]), ("history", [0.0, 0.4]), ("sparsity", [0.0, 0.5])):
        params["ablations"]["sweeps"][name].update(optimizers=["zo-sgd"], values=values)
    params["landscape"] = {"steps": 20, "seeds": [0, 1]}
    fake_ablations(root, params)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    outputs = {name: report.execute_notebook(name, params, "params.yaml", root=root,
                                             notebooks_dir=REPO / "notebooks")
               for name in NOTEBOOKS}
    return root, params, outputs


def test_notebooks_write_their_tables_and_figures(executed):
    root, _, outputs = executed
    for name, path in outputs.items():
        assert path == root / "results" / name / f"{name}.ipynb" and path.is_file()
    for produced in ("table_1/table_1.csv", "table_1/table_1.html", "table_1/table_1.md", "figure_2/figure_2.png",
                     "figure_2/figure_2.csv", "figure_4/figure_4.png", "figure_4/figure_4.csv"):
        assert (root / "results" / produced).stat().st_size > 0, produced
    table = pd.read_csv(root / "results" / "table_1" / "table_1.csv")
    ours = table[table.source == "ours"].set_index(["method", "optimizer"])
    assert ours.loc[("ease", "fo-sgd"), "avg_acc_mean"] == pytest.approx(65.0)
    assert ours.loc[("ease", "fo-sgd"), "avg_acc_std"] == pytest.approx(math.sqrt(50))
    assert ours.loc[("ease", "zo-sgd"), "last_acc_mean"] == pytest.approx(43.0)
    assert ours.loc[("aper", "zo-sgd"), "forgetting_mean"] == pytest.approx(6.0)
    assert ours.loc[("aper", "fo-sgd"), "n_seeds"] == 2
    paper = table[table.source == "paper"].set_index(["method", "optimizer", "dataset"])
    assert paper.loc[("ease", "zo-sgd", "cifar100"), "avg_acc_mean"] == pytest.approx(78.62)
    # the no-training rows: ours per dataset, and the published SimpleCIL numbers in the paper block
    assert ours.loc[("simplecil", "none"), "avg_acc_mean"] == pytest.approx(58.0)
    assert paper.loc[("simplecil", "none", "cifar100"), "avg_acc_mean"] == pytest.approx(87.57)
    versus = pd.read_csv(root / "results" / "table_1" / "table_1_vs_control.csv")
    # per method: FO-SGD and ZO-SGD against its zero-step control, the control against SimpleCIL; 3 metrics each
    assert set(versus.method) == {"ease", "aper"} and len(versus) == 2 * 3 * 3
    assert set(versus[versus.optimizer == "none"].against) == {"simplecil"}
    training = pd.read_csv(root / "results" / "table_1" / "table_1_training.csv")
    assert set(training[training.optimizer != "none"].status) == {"trained"}
    statements = (root / "results" / "table_1" / "statements.md").read_text()
    assert ("In the paper on CIFAR-100, the rows whose average accuracy is below the published SimpleCIL (87.57, "
            "no training, on ViT-B/16-IN21K and its release's split, not the backbone of INFTY's code that made the "
            "paper's rows, IN-21K fine-tuned on IN-1K): EASE 1 of 2 (all but FO-SGD); APER 2 of 2.") in statements
    html = (root / "results" / "table_1" / "table_1.html").read_text()
    assert "<b>65.00 ± 7.07</b>" in html  # best Avg of EASE
    assert "<b>12.00 ± 2.83</b>" in html  # lowest Fgt of EASE
    executed_nb = (root / "results" / "table_1" / "table_1.ipynb").read_text()
    assert "SMOKE profile" in executed_nb and params_hash(root / "params.yaml") in executed_nb
    curves = pd.read_csv(root / "results" / "figure_4" / "figure_4.csv")
    first = curves[(curves.method == "ease") & (curves.optimizer == "fo-sgd") & (curves.stage == 1)]
    assert first["mean"].item() == pytest.approx(78.0)  # stage 1 = 2·avg − last: 70 and 86
    # Figure 4's text: each optimizer after the last stage against its method's zero-step control (EASE's 45.00 ± 1.41:
    # FO-SGD's 52.00 ± 2.83 above it beyond the spread, ZO-SGD's 43.00 ± 2.83 within it)
    figure_4 = outputs_text(root / "results" / "figure_4" / "figure_4.ipynb")
    assert ("EASE on Digits, after stage 2: 1 of 2 optimizers end above the method's zero-step control (45.00 ± 1.41) "
            "beyond the spread (FO-SGD); 1 within it. The highest is FO-SGD at 52.00 ± 2.83.") in figure_4


def test_section_4_to_6_notebooks_compute_their_numbers(executed):
    root, _, _ = executed
    results = root / "results"
    for produced in ("table_2/table_2.png", "table_2/table_2_vit-b16.csv", "table_2/table_2_paper.csv",
                     "figure_5/figure_5.png", "figure_5/summary.csv", "table_3/table_3.png", "table_3/zo-sgd.csv",
                     "table_4/table_4.png", "figure_7/figure_7.png", "figure_7/volatility.csv",
                     "figure_3/figure_3.png", "figure_6/figure_6_adam.png", "figure_6/figure_6_sgd.png"):
        assert (results / produced).stat().st_size > 0, produced
    ours = pd.read_csv(results / "table_2" / "table_2_vit-b16.csv").set_index("optimizer")
    assert ours.loc["ZO-SGD (q = 1)", "memory ÷ FO-SGD"] == pytest.approx(0.2)
    assert ours.loc["ZO-SGD (q = 4)", "s / epoch (105 steps, projected)"] == pytest.approx(84.0)
    text = (results / "table_2" / "table_2.ipynb").read_text()
    assert "**5.00×** ZO-SGD" in text and "agrees with the paper" in text
    # q = 4, the second value: 50 + 10 + seed → 60.5 ± 0.71 against q = 1's 50.5 ± 0.71: a rise beyond the spread
    summary = pd.read_csv(results / "figure_5" / "summary.csv").set_index("value")
    assert summary.loc[4, "avg_acc_mean"] == pytest.approx(60.5)
    assert "**agrees** with the paper" in (results / "figure_5" / "figure_5.ipynb").read_text()
    history = (results / "table_3" / "table_3.ipynb").read_text()
    assert "Avg: better than 0% at 40%" in history and "Fgt: better than 0% at 40%" in history  # 10 - p
    # 4 held-out records per run: old-task loss exists only while task 1 is learned
    volatility = pd.read_csv(results / "figure_7" / "volatility.csv")
    old = volatility[(volatility.optimizer == "zo-sgd") & (volatility.which == "old")]
    assert old.volatility_mean.item() == pytest.approx(0.1)  # task 0's loss 0.9 then 0.8 while task 1 is learned
    # official vs ours: each fake switch's second choice has 10 more points of accuracy and 1 less of forgetting
    switches = pd.read_csv(results / "official_vs_ours" / "switches.csv")
    zo_scope = switches[switches.switch == "zo_scope"].set_index("value")
    assert zo_scope.loc["official", "avg_acc_mean"] == pytest.approx(zo_scope.loc["trainable", "avg_acc_mean"] + 10)
    assert zo_scope.loc["trainable", "avg_acc_verdict"] == "worse" and zo_scope.loc["official", "official"]
    page = outputs_text(results / "official_vs_ours" / "official_vs_ours.ipynb")
    assert "gives 9.00 ± 0.00 forgetting against 10.00 ± 0.00 with the trainable scope: less forgetting" in page
    assert "PILOT's formula gives a higher forgetting in" in page
    # Tables 3 and 4: each value beside plain ZO-SGD at the rate that matched its measured mean step
    matched = (results / "table_3" / "step_matched.csv")
    assert matched.is_file() and set(pd.read_csv(matched).value) == {0.4}


def test_the_pages_beyond_the_paper_and_the_claims(executed):
    root, _, _ = executed
    results = root / "results"
    claims = pd.read_csv(results / "claims" / "claims.csv")
    assert len(claims) >= 10 and set(claims["verdict here"]) <= {
        "confirmed", "refuted", "within the spread", "did not train", "not testable here"}
    memory = claims[claims.claim.str.startswith("ZO needs about 5×")].iloc[0]
    assert memory["verdict here"] == "confirmed" and "5.00×" in memory.numbers  # the fake 2500 MB against 500
    # Table 5: the fake cells put each variant 10 points above the one before it, FO-SGD level with plain ZO-SGD
    hybrid = claims[claims.claim == "the hybrid schedule beats FO"].iloc[0]
    assert hybrid["verdict here"] == "confirmed" and "+ hybrid 60.50 ± 0.71 against FO-SGD 50.50" in hybrid.numbers
    table_5 = pd.read_csv(results / "table_5" / "table_5.csv").set_index("row")
    assert table_5.loc["all three", ["Avg against plain ZO", "Avg against backprop"]].tolist() == ["better", "better"]
    assert "(its table: above FO-SGD's 61.24 / 51.02 on both Avg and Last: + hybrid, all three)" in outputs_text(
        results / "table_5" / "table_5.ipynb")
    cost = pd.read_csv(results / "cost" / "summary.csv")
    budget = load_yaml((REPO / "params.yaml").read_text())["ablations"]["sweeps"]["budget"]
    assert set(cost.optimizer) == set(budget["optimizers"]) and "gain" in cost
    assert "At equal forwards" in outputs_text(results / "cost" / "cost.ipynb")
    where = pd.read_csv(results / "where_training_goes" / "where_training_goes.csv")
    assert {"adapters_cosine_mean", "heads_relative_mean", "own_task_gain"} <= set(where.columns)


def outputs_text(path: Path) -> str:
    """What an executed notebook displays (its outputs only, not its code)."""
    import nbformat

    parts = []
    for cell in nbformat.read(path, as_version=4).cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts += [str(v) for k, v in output.get("data", {}).items() if k.startswith("text/")]
    return "\n".join(parts)


def test_execute_notebook_starts_from_an_empty_folder(executed, capfd):
    root, params, _ = executed
    stale = root / "results" / "figure_4" / "stale.txt"
    stale.write_text("old")
    report.execute_notebook("figure_4", params, "params.yaml", root=root, notebooks_dir=REPO / "notebooks")
    assert not stale.exists() and (root / "results" / "figure_4" / "figure_4.png").is_file()
    # no execution times in the DVC output: the same results give the same file
    executed = (root / "results" / "figure_4" / "figure_4.ipynb").read_text()
    assert "start_time" not in executed and "iopub" not in executed and '"parameters"' in executed
    assert '"id": "injected-parameters"' in executed  # papermill's random id replaced
    # the kernel talks over Unix sockets: no "running over TCP without encryption" warning on the stage's stderr
    assert "without encryption" not in capfd.readouterr().err


def test_book_builds_versions_with_stamps(executed, tmp_path):
    from zeroflow_core.book.build import build_book, list_versions

    root, params, _ = executed
    site = tmp_path / "site"
    kwargs = dict(root=root, book_dir=REPO / "book", build_dir=tmp_path / "build", site_dir=site)
    lock = {"schema": "2.0", "stages": {"train@ease-digits": {"cmd": "zeroflow stage-train ease digits"},
                                        "book": {"cmd": "zeroflow book", "outs": [{"path": "site", "md5": "1.dir"}]}}}
    (root / "dvc.lock").write_text(yaml.safe_dump(lock))
    first = build_book(params, "params.yaml", now=dt.datetime(2025, 1, 1, 12, tzinfo=dt.timezone.utc), **kwargs)
    # the same content a day later, dvc.lock holding that build's site/: the version is reused, not copied
    lock["stages"]["book"]["outs"][0]["md5"] = "2.dir"
    (root / "dvc.lock").write_text(yaml.safe_dump(lock))
    again = build_book(params, "params.yaml", now=dt.datetime(2025, 1, 2, 12, tzinfo=dt.timezone.utc), **kwargs)
    assert again == first and len(list_versions(site)) == 1
    original = (root / "params.yaml").read_text()
    (root / "params.yaml").write_text(original + "# an edit\n")
    try:
        second = build_book(params, "params.yaml", now=dt.datetime(2025, 1, 3, 12, tzinfo=dt.timezone.utc), **kwargs)
        phash = params_hash(root / "params.yaml")
    finally:
        (root / "params.yaml").write_text(original)
    assert first.is_file() and second.is_file() and first != second
    assert first.parent.parent == second.parent.parent == site / "versions"

    versions = list_versions(site)
    assert [v["version_id"] for v in versions] == [second.parent.name, first.parent.name]  # newest first
    index = (site / "index.html").read_text()
    assert index.count('href="versions/') == 2
    assert index.index(second.parent.name) < index.index(first.parent.name)

    for page in ("intro.html", "table_1.html", "figure_2.html", "figure_4.html", "reproducibility.html",
                 "official-vs-paper.html"):
        text = (second.parent / page).read_text()
        assert 'class="zeroflow-stamp"' in text and phash in text and second.parent.name in text, page
    table_page = (second.parent / "table_1.html").read_text()
    assert "65.00 ± 7.07" in table_page and "SMOKE profile" in table_page
    assert list((second.parent / "_images").glob("*.png")), "figures are in the book"
    # Table 1: one tab per dataset; under every table and figure, its provenance line, whose downloads are shipped
    assert table_page.count('class="sd-tab-content') == 5 and 'class="zeroflow-provenance"' in table_page
    for download in ("data/table_1/table_1.csv", "data/table_1/table_1.ipynb", "data/figure_2/figure_2.png",
                     "data/reference/table1_accuracy.csv"):
        assert (second.parent / download).is_file() and f'href="{download}"' in "".join(
            (second.parent / page).read_text() for page in ("table_1.html", "figure_2.html")), download
    # the guide: a part of the book, its params.yaml reference written from the declarations
    guide = (second.parent / "guide-params.html").read_text()
    assert "params_reference" not in guide and "grid.optimizers" in guide and "ablations.sweeps.&lt;name&gt;" in guide
    assert 'href="guide-cli.html"' in (second.parent / "guide.html").read_text()
    assert "ease-digits/ease-fo-sgd-digits-0/metrics.json" in (second.parent / "reproducibility.html").read_text()
    reproducibility = (second.parent / "reproducibility.html").read_text()
    # (the HTML splits a command's words into spans: the headings are what can be matched whole)
    assert "What a rebuild should expect" in reproducibility and "Check a rebuild against this book" in reproducibility
    # a version holds the tables and statements it shows, and its params.yaml: `zeroflow compare` reads them
    from zeroflow_core.book.compare import book_files, compare_results

    assert book_files(second.parent / "results") == {name: second.parent / "results" / name
                                                     for name in book_files(root / "results")}
    assert "statements.md" in " ".join(book_files(second.parent / "results"))
    assert (second.parent / "params.yaml").read_text() == original + "# an edit\n"
    assert compare_results(root / "results", second.parent / "results").same
    # latest is a copy of the newest, its stamp link one folder shallower
    latest = (site / "latest" / "table_1.html").read_text()
    assert second.parent.name in latest and 'href="../index.html"' in latest
    assert not list(site.glob(".latest*")) and not list((site / "versions").glob(".*"))
    def row(index: str, version: str) -> str:
        return next(line for line in index.split("<tr>") if version in line)

    assert '<span class="latest">' in row(index, second.parent.name)

    # the first content again: its version is shown again and marked latest; pruning keeps the newest and that one
    from zeroflow_core.book.build import prune_versions

    assert build_book(params, "params.yaml", now=dt.datetime(2025, 1, 4, 12, tzinfo=dt.timezone.utc), **kwargs) == first
    assert first.parent.name in (site / "latest" / "table_1.html").read_text()
    index = (site / "index.html").read_text()
    assert '<span class="latest">' in row(index, first.parent.name)
    assert '<span class="latest">' not in row(index, second.parent.name)
    assert prune_versions(site, 1) == [] and len(list_versions(site)) == 2
    (root / "params.yaml").write_text(original + "# an edit\n")
    try:
        assert build_book(params, "params.yaml", **kwargs) == second  # the edited content again
    finally:
        (root / "params.yaml").write_text(original)
    assert prune_versions(site, 1) == [first.parent.name]
    assert [v["version_id"] for v in list_versions(site)] == [second.parent.name] and not first.parent.exists()
    assert (site / "index.html").read_text().count('href="versions/') == 1


def test_points_read_off_the_papers_figures_say_so_and_live_in_reference():
    read_off = report.load_read_off(REPO / "reference", figure=5)
    assert len(read_off) >= 1
    assert all(source == "read off Figure 5, approximate" for source in read_off.source)
    notebook = (REPO / "notebooks" / "figure_5.ipynb").read_text()
    for value in read_off.avg:
        assert f"{value:g}" not in notebook  # drawn from the file, not typed into the page


def test_book_prune_keeps_the_newest_and_the_one_latest_shows(tmp_path, capsys):
    import json

    from zeroflow_core import cli
    from zeroflow_core.book.build import STAMP_FILE, list_versions

    site = tmp_path / "site"
    for day in (1, 2, 3):
        version = site / "versions" / f"v-{day}"
        version.mkdir(parents=True)
        (version / STAMP_FILE).write_text(json.dumps({"version_id": f"v-{day}", "built": f"2025-01-0{day}T00:00:00Z"}))
    shutil.copytree(site / "versions" / "v-1", site / "latest")  # the last build reused the oldest version
    assert cli.main(["book", "--prune", "1", "--site", str(site)]) == 0
    assert "removed 1 version\n  v-2" in capsys.readouterr().out
    assert [v["version_id"] for v in list_versions(site)] == ["v-3", "v-1"]
    assert (site / "index.html").read_text().count('href="versions/') == 2
    assert cli.main(["book", "--prune", "0", "--site", str(site)]) == 2  # at least one is kept
