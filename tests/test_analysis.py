"""Sections 4–6 helpers (efficiency, ablations, held-out losses, verdicts) and the ablation runner, on
hand-made inputs whose right answers are worked out by hand."""
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml


from zeroflow_core.book import ablations, figure_7, landscape, official_vs_ours, report, table_2

from zeroflow_core.io import load_yaml
from zeroflow_core.pipeline import stages
from zeroflow_core.pipeline.cells import sweep_cell_name, sweep_cells
from zeroflow_core.pipeline.params import check_params
from zeroflow_core.run.config import ConfigError

ROOT = Path(__file__).parents[1]


# ------------------------------------------------------------------------------------------ verdicts
@pytest.mark.parametrize("a,b,lower,expected", [
    ((10.0, 1.0), (7.0, 1.0), False, "better"),             # 3 > 1 + 1
    ((10.0, 1.0), (8.5, 1.0), False, "within the spread"),  # 1.5 <= 2
    ((7.0, 1.0), (10.0, 1.0), False, "worse"),
    ((7.0, 1.0), (10.0, 1.0), True, "better"),              # forgetting: lower wins
    ((10.0, float("nan")), (1.0, 0.0), False, "within the spread"),  # one seed: nothing is called
])
def test_verdict_calls_a_difference_only_beyond_both_spreads(a, b, lower, expected):
    assert report.verdict(*a, *b, lower_is_better=lower) == expected


def _summary(trained=(True, True, True)):
    # zo-sgd: value 0 → 50 ± 1; 0.5 → 54 ± 1 (better); 0.9 → 51 ± 1 (within); each cell's training-loss drop
    return pd.DataFrame({"optimizer": ["zo-sgd"] * 3, "value": [0.0, 0.5, 0.9], "n_seeds": [3] * 3,
                         "avg_acc_mean": [50.0, 54.0, 51.0], "avg_acc_std": [1.0, 1.0, 1.0],
                         "forgetting_mean": [10.0, 13.0, 10.5], "forgetting_std": [0.5, 0.5, 0.5],
                         "loss_drop_mean": [0.2, 0.15, 0.1], "loss_drop_std": [0.01] * 3, "trained": list(trained)})


def test_against_baseline_differences_and_verdicts():
    calls = ablations.against_baseline(_summary(), 0.0, "avg_acc").set_index("value")
    assert calls.loc[0.5, "difference"] == pytest.approx(4.0) and calls.loc[0.5, "verdict"] == "better"
    assert calls.loc[0.9, "verdict"] == "within the spread" and calls.loc[0.0, "verdict"] == "baseline"
    forgetting = ablations.against_baseline(_summary(), 0.0, "forgetting").set_index("value")
    assert forgetting.loc[0.5, "verdict"] == "worse"  # 3 points more forgetting, spreads 0.5 + 0.5
    with pytest.raises(ValueError, match="no cell with value 0.2"):
        ablations.against_baseline(_summary(), 0.2)
    # a value that did not train, or a baseline that did not, gets no verdict
    untrained = ablations.against_baseline(_summary(trained=(True, False, True)), 0.0).set_index("value")
    assert untrained.loc[0.5, "verdict"] == "did not train" and untrained.loc[0.9, "verdict"] == "within the spread"
    plain = ablations.against_baseline(_summary(trained=(False, True, True)), 0.0).set_index("value")
    assert set(plain.verdict) == {"baseline", "did not train"}


def test_trend_is_the_slope_per_doubling_and_calls_last_against_first():
    q = [1, 2, 4, 8]
    summary = pd.DataFrame({"optimizer": ["zo-sgd"] * 4, "value": q, "avg_acc_mean": [50.0, 51.5, 53.0, 54.5],
                            "avg_acc_std": [0.5] * 4})
    slope, call = ablations.trend(summary, "zo-sgd")
    assert slope == pytest.approx(1.5) and call == "better"


def _anchor(avg=45.0):
    """A sweep's zero-step control as ablations.load_control gives it."""
    return pd.Series({"method": "ease", "optimizer": "none", "avg_acc_mean": avg, "avg_acc_std": 1.0,
                      "last_acc_mean": 35.0, "last_acc_std": 1.0, "forgetting_mean": 8.0, "forgetting_std": 0.5})


def test_a_sweep_page_s_tables_and_text():
    # last: 0.5 → +0.5 (within), 0.9 → +5 (better); forgetting: 0.5 → +3 (worse), 0.9 → +0.5 (within)
    summary = _summary().assign(last_acc_mean=[40.0, 40.5, 45.0], last_acc_std=[1.0] * 3)
    caption, table = ablations.sweep_tables(summary, "ease", "digits", [0, 1, 2])["zo-sgd"]
    assert caption == "**Ours**: EASE + ZO-SGD on Digits, mean ± std over 3 seeds"
    assert list(table.columns) == ["0%", "50%", "90%"]
    assert list(table.index) == ["Avg", "Last", "Fgt", "training-loss drop"]
    assert table.loc["Fgt", "50%"] == "13.00 ± 0.50" and table.loc["training-loss drop", "0%"] == "0.200 ± 0.010"
    text = ablations.sweep_text("every level helps.", summary, _anchor(), "sparsity")
    assert text.startswith("**The paper's claim**: every level helps.\n\n**Ours** (a difference is called only "
                           "where it exceeds the two standard deviations together, and only between rows that "
                           "trained):\n\n- ZO-SGD, sparsity = 0: training-loss drop 0.200 ± 0.010 per task: trained.")
    assert "- ZO-SGD, Avg: better than 0% at 50%; worse at no value; within the spread at 90%." in text
    assert "- ZO-SGD, Last: better than 0% at 90%; worse at no value; within the spread at 50%." in text
    assert "- ZO-SGD, Fgt: better than 0% at no value; worse at 50%; within the spread at 90%." in text
    # against the zero-step control (45 ± 1): the best trained value 0.5 (54) and the worst 0 (50) are both above
    assert ("- ZO-SGD, best trained sparsity = 0.5: +9.00 points of average accuracy against its zero-step control "
            "(EASE without a step, 45.00): better.") in text
    assert "- ZO-SGD, worst trained sparsity = 0: +5.00 points" in text
    untrained = ablations.sweep_text("c", summary.assign(trained=[True, False, True]), _anchor(), "sparsity")
    assert "sparsity = 0.5: training-loss drop 0.150 ± 0.010 per task: **did not train**." in untrained
    assert "ZO-SGD: sparsity = 0.5: **did not train**" in untrained and "best trained sparsity = 0.9" in untrained


def test_step_matched_controls_tell_a_direction_from_a_smaller_step():
    summary = _summary().assign(step_mean=[0.10, 0.05, 0.02])
    matched = pd.DataFrame({"optimizer": ["zo-sgd"] * 2, "value": [0.5, 0.9], "lr": [0.0005, 0.0002],
                            "step_mean": [0.051, 0.021], "avg_acc_mean": [50.5, 51.2], "avg_acc_std": [1.0, 1.0]})
    table = ablations.step_matched_table(summary, matched, "sparsity").set_index("sparsity")
    # 0.5: 54 ± 1 against its control 50.5 ± 1: better; 0.9: 51 against 51.2: what it gives, a smaller step gives
    assert table.loc["50%", "verdict"] == "better" and table.loc["90%", "verdict"] == "within the spread"
    assert table.loc["50%", "control's mean step"] == "0.0510" and table.loc["50%", "control's lr"] == "0.0005"
    lines = ablations.step_matched_lines(summary, matched, "sparsity")
    assert "it helps beyond its smaller step" in lines[0] and "a smaller step gives too" in lines[1]


def test_the_papers_table_3_and_its_claim():
    paper = ablations.paper_table_3(ROOT / "reference")
    assert list(paper.columns) == ["0%", "20%", "40%", "60%", "80%"] and paper.loc["Avg", "20%"] == 58.90
    # Avg 58.90, 58.76, 58.34 above 0%'s 57.87; 80%'s 57.83 below it
    assert "(its table: higher Avg at 20%, 40%, 60%, forgetting" in ablations.table_3_claim(paper)


def test_the_papers_table_4_its_claim_and_what_its_numbers_add():
    """The ICML 2025 version's Table 4: Avg and Last above 0 % at every ratio, and forgetting too (11.08 at 0 %,
    12.17 to 12.76 elsewhere), which its text does not say; the sentence follows the numbers it is given."""
    paper = ablations.paper_table_4(ROOT / "reference")
    assert list(paper.columns) == [f"{10 * i}%" for i in range(10)] and paper.loc["Fgt", "30%"] == 12.76
    claim = ablations.table_4_claim(paper)
    assert "(its table, the ICML 2025 version's: higher Avg and Last at every ratio)" in claim
    assert "forgetting rises at every ratio, from 11.08 at 0% to between 12.17 and 12.76." in claim
    lower = paper.copy()
    lower.loc["Fgt", "50%"] = 10.0
    assert "forgetting does not rise at every ratio" in ablations.table_4_claim(lower)
    with pytest.raises(FileNotFoundError, match="Table 4 is missing"):
        ablations.paper_table_4(ROOT / "nowhere")


def test_query_budget_statements_and_table():
    summary = pd.DataFrame({"optimizer": ["zo-sgd"] * 4, "value": [1, 2, 4, 8], "n_seeds": [3] * 4,
                            "avg_acc_mean": [50.0, 51.5, 53.0, 54.5], "avg_acc_std": [0.5] * 4,
                            "last_acc_mean": [40.0] * 4, "last_acc_std": [0.5] * 4,
                            "forgetting_mean": [9.0] * 4, "forgetting_std": [0.5] * 4,
                            "loss_drop_mean": [0.1, 0.15, 0.2, 0.25], "loss_drop_std": [0.01] * 4,
                            "trained": [True] * 4})
    lines = ablations.query_budget_statements(summary, _anchor(53.5), "q")
    assert lines[0] == "ZO-SGD, q = 1: training-loss drop 0.100 ± 0.010 per task: trained."
    assert lines[4] == ("**ZO-SGD**: slope +1.50 points of average accuracy per doubling of q (+0.050 of "
                        "training-loss drop); average accuracy at q = 8 is above q = 1 beyond the spread: **agrees** "
                        "with the paper.")
    # against the zero-step control, 53.5 ± 1: q = 8 +1.00 within the spread of 1.5, q = 1 -3.50 beyond it
    assert lines[5].startswith("ZO-SGD, best trained q = 8: +1.00 points") and lines[5].endswith("within the spread.")
    assert lines[6].startswith("ZO-SGD, worst trained q = 1: -3.50 points") and lines[6].endswith("worse.")
    untrained = ablations.query_budget_statements(summary.assign(trained=[False, True, True, True]), _anchor(), "q")
    assert "**ZO-SGD**: q = 1 or q = 8 did not train: no verdict on q." in untrained
    table = ablations.sweep_rows(summary, "q")
    assert list(table.columns) == ["optimizer", "q", "n_seeds", "Avg", "Last", "Fgt", "training-loss drop"]
    assert table.Avg.tolist()[0] == "50.00 ± 0.50"


def test_sweep_and_switch_notes_name_the_settings_over_the_grid_s():
    notes = ablations.sweep_notes({"epochs": 1}, {"zo-sgd": {"lr": 0.01}, "zo-adam": {"lr": 0.1}}, ["zo-sgd"])
    assert notes == ["The sweep's runs use their own settings over the grid's (`ablations.train`): `epochs: 1`, so "
                     "its plain-ZO cell need not equal Table 1's run.",
                     "Its optimizers' settings over the grid's (`ablations.optimizers`): ZO-SGD `lr: 0.01`."]
    assert ablations.sweep_notes({}, {}, ["zo-sgd"]) == [] and official_vs_ours.switch_notes({}, {}) == []
    assert official_vs_ours.switch_notes({"epochs": 1}, {"zo-sgd": {"lr": 0.01}}) == [
        "The switches run with the sweeps' settings over the grid's: `epochs: 1`; ZO-SGD `lr: 0.01` "
        "(`ablations.train`, `ablations.optimizers`)."]


# ------------------------------------------------------------------------------- official code vs ours
def _switches():
    """switch_summary's rows: ZO-SGD's trainable scope 5 points above the official one, 3 less forgetting."""
    def side(value, official, avg, fgt, calls):
        return {"switch": "zo_scope", "optimizer": "zo-sgd", "value": value, "official": official,
                "avg_acc_mean": avg, "avg_acc_std": 1.0, "last_acc_mean": avg - 10, "last_acc_std": 1.0,
                "forgetting_mean": fgt, "forgetting_std": 0.5, "avg_acc_verdict": calls[0],
                "last_acc_verdict": calls[0], "forgetting_verdict": calls[1],
                "loss_drop_mean": 0.2, "loss_drop_std": 0.01, "trained": True}

    return pd.DataFrame([side("trainable", False, 60.0, 9.0, ("better", "better")),
                         side("official", True, 55.0, 12.0, ("official", "official"))])


def test_the_switches_table_and_statements():
    summary, anchor = _switches(), _anchor(50.0)
    table = official_vs_ours.switch_table(summary, {"zo_scope": {"with": {"history": 0.6}}}, anchor)
    assert table.choice.tolist() == ["trainable [history = 0.6]", "official [history = 0.6]", "EASE"]
    assert table.iloc[-1].tolist() == [
        "zero-step control", "none", "EASE", "50.00 ± 1.00", "35.00 ± 1.00", "8.00 ± 0.50", "", "", ""]
    assert table["loss drop"].iloc[0] == "0.200 ± 0.010"
    assert official_vs_ours.switch_statements(summary, anchor) == [
        "`zo_scope`, ZO-SGD: trainable against the official side: +5.00 points of average accuracy (better), "
        "-3.00 points of forgetting (better); the official side is +5.00 points from the zero-step control (better)."]
    # a side that did not train gets no verdict
    untrained = summary.assign(trained=[False, True], avg_acc_verdict=["did not train", "official"])
    assert "this side **did not train**" in official_vs_ours.switch_statements(untrained, anchor)[0]
    assert ("gives 12.00 ± 0.50 forgetting against 9.00 ± 0.50 with the trainable scope: more forgetting, beyond the "
            "spread.") in official_vs_ours.zo_scope_statement(summary)


def test_the_forgetting_formulas_table_and_statement():
    formulas = pd.DataFrame({"method": ["ease", "aper"], "optimizer": ["zo-sgd", "fo-sgd"], "dataset": ["digits"] * 2,
                             "forgetting_pilot_mean": [12.0, 5.0], "forgetting_pilot_std": [1.0, 1.0],
                             "forgetting_before_final_mean": [10.0, 5.0], "forgetting_before_final_std": [1.0, 1.0]})
    table = official_vs_ours.forgetting_formulas_table(formulas)
    assert table.iloc[0].tolist() == ["EASE", "ZO-SGD", "Digits", "12.00 ± 1.00", "10.00 ± 1.00", 2.0]
    assert official_vs_ours.forgetting_formulas_statement(table).startswith(
        "PILOT's formula gives a higher forgetting in 1 of 2 method × optimizer rows (by up to 2.00 points)")


def _write_cell(folder: Path, name: str, avg: float, fgt: float, config: dict | None = None):
    cell = folder / name
    cell.mkdir(parents=True, exist_ok=True)
    (cell / "metrics.json").write_text(json.dumps({"avg_acc": avg, "last_acc": avg - 5, "forgetting": fgt,
                                                   "forward_passes": 10}))
    if config is not None:
        (cell / "config.yaml").write_text(yaml.safe_dump(config))


def test_load_ablation_reads_every_cell_and_names_a_missing_one(tmp_path):
    for value, avgs in ((1, (50.0, 52.0)), (4, (55.0, 57.0))):
        for seed, avg in enumerate(avgs):
            _write_cell(tmp_path, sweep_cell_name("ease", "zo-sgd", "digits", "q", value, seed), avg, 10.0)
    cells = ablations.load_ablation(tmp_path, "ease", "digits", ["zo-sgd"], [1, 4], [0, 1], "q")
    summary = ablations.ablation_summary(cells).set_index("value")
    assert summary.loc[4, "avg_acc_mean"] == pytest.approx(56.0)
    assert summary.loc[4, "avg_acc_std"] == pytest.approx(math.sqrt(2))
    with pytest.raises(FileNotFoundError, match="ablation@.*ease-zo-sgd-digits-q8-0|ease-zo-sgd-digits-q8-0"):
        ablations.load_ablation(tmp_path, "ease", "digits", ["zo-sgd"], [1, 8], [0, 1], "q")


def _params():
    return load_yaml((ROOT / "params.yaml").read_text())


def test_ablation_cells_set_only_their_hyper_parameter():
    params = _params()
    cells = {cell.name: cell.config for cell in sweep_cells(params, "history")}
    section = params["ablations"]
    # each value and seed, and the zero-step control per seed (no step to mix history into)
    assert len(cells) == (len(section["sweeps"]["history"]["values"]) + 1) * len(section["seeds"])
    assert cells["ease-hues-1"]["optimizer"] == "none"
    config = cells["ease-zo-sgd-hues-history0.4-1"]
    assert config["optimizer_hyper"]["history"] == 0.4 and config["seed"] == 1 and config["method"] == "ease"
    for key, value in section["train"].items():  # the sweeps' own run settings win over `train`
        assert config[key] == value
    q_cells = {cell.name: cell.config for cell in sweep_cells(params, "query_budget")}
    largest = max(section["sweeps"]["query_budget"]["values"]["zo-adam"])
    assert q_cells[f"ease-zo-adam-hues-q{largest}-0"]["optimizer_hyper"]["q"] == largest


@pytest.mark.parametrize("edit,message", [
    (lambda p: p["ablations"].update(methd="ease"), "'ablations.methd'"),
    (lambda p: p["ablations"]["sweeps"]["history"].update(values=[0.2, "lots"]), "'ablations.sweeps.history'.*history=lots"),
    (lambda p: p["ablations"]["sweeps"]["query_budget"].update(values=[1, 2.5]),
     "'ablations.sweeps.query_budget'.*q=2.5"),
    (lambda p: p["ablations"]["sweeps"]["sparsity"].update(values=[0.5, 1.0]), "sparsity"),  # r must be < 1
    (lambda p: p["ablations"]["sweeps"]["history"].update(hyper="histroy"), "'histroy' is no hyper-parameter of zo-sgd"),
    (lambda p: p["ablations"].update(dataset="synthetic"), "must be one of grid.datasets"),
    (lambda p: p["ablations"]["train"].update(optimizer="zo-adam"), "'ablations.train.optimizer'"),
    (lambda p: p["ablations"]["train"].update(max_steps_per_epoch="six"), "'ablations.train.max_steps_per_epoch' must be int"),
    (lambda p: p["efficiency"].update(optimizers=["zo-sdg"]), "'efficiency.optimizers'.*zo-sdg"),
    (lambda p: p["efficiency"]["models"].update({"vit-huge": {"batch_size": 2, "steps": 1, "warmup": 0}}),
     "'efficiency.models.vit-huge'"),
    (lambda p: p["efficiency"]["models"]["vit-smoke"].update(steps=0), "'efficiency.models.vit-smoke.steps'"),
    (lambda p: p["efficiency"].update(attention="flash"), "'efficiency.attention'"),
    (lambda p: p["landscape"].update(steps="many"), "'landscape.steps'"),
])
def test_a_wrong_section_4_to_6_setting_is_named(edit, message):
    params = _params()
    edit(params)
    with pytest.raises(ConfigError, match=message):
        check_params(params)


def test_run_ablation_keeps_finished_cells_and_drops_stale_ones(tmp_path, monkeypatch):
    """The stage reruns only cells whose configuration changed (train is replaced by a recorder)."""
    import zeroflow_core.run.train as train_module

    trained = []

    def fake_train(config, out, progress=None, set_by=None):
        out = Path(out)
        trained.append(out.name)
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(yaml.safe_dump(config))
        result = {"avg_acc": 50.0, "last_acc": 45.0, "forgetting": 5.0}
        (out / "metrics.json").write_text(json.dumps(result))
        return result

    monkeypatch.setattr(train_module, "train", fake_train)
    params = _params()
    params["ablations"].update(seeds=[0])
    params["execution"]["workers"] = 1  # in-process, where the recorder is
    params["ablations"]["sweeps"]["history"]["values"] = [0.0, 0.4]
    del params["ablations"]["sweeps"]["history"]["step_matched"]  # its rates come from measured steps (test_controls)
    stages.sweep(params, "history", root=tmp_path, log=lambda *_: None)
    assert sorted(trained) == ["ease-hues-0", "ease-zo-sgd-hues-history0-0", "ease-zo-sgd-hues-history0.4-0"]

    trained.clear()
    params["ablations"]["sweeps"]["history"]["values"] = [0.0, 0.6]
    stages.sweep(params, "history", root=tmp_path, log=lambda *_: None)
    assert trained == ["ease-zo-sgd-hues-history0.6-0"]  # 0.0 kept, 0.6 new
    assert sorted(p.name for p in (tmp_path / "history").iterdir()) == [
        "ease-hues-0", "ease-zo-sgd-hues-history0-0", "ease-zo-sgd-hues-history0.6-0", "summary.csv"]  # 0.4 removed

    trained.clear()
    params["execution"]["workers"] = 2  # where and how fast cells run is no part of what they compute
    params["train"]["threads"] = 1
    stages.sweep(params, "history", root=tmp_path, log=lambda *_: None)
    assert trained == []
    params["execution"]["workers"] = 1

    trained.clear()
    params["optimizers"]["zo-sgd"] = {"zo_eps": 0.002}  # every cell's configuration changes
    stages.sweep(params, "history", root=tmp_path, log=lambda *_: None)
    assert len(trained) == 2


# ------------------------------------------------------------------------------------------ Table 2
def _bench_row(optimizer, q, peak, step, forward=0.1, base=100.0, model="vit-b16"):
    return {"optimizer": optimizer, "q": q, "model": model, "batch_size": 48, "device": "cpu", "threads": 2,
            "steps": 1, "attention": "explicit", "peak_memory_mb": peak, "forward_peak_memory_mb": 400.0,
            "baseline_memory_mb": base, "forward_baseline_memory_mb": base, "step_seconds": step,
            "forward_seconds": forward, "forwards_per_step": 2.0 if optimizer.startswith("zo") else 1.0,
            "backwards_per_step": 1.0 if optimizer.startswith("fo") else 0.0}


def test_efficiency_table_ratios_to_fo_sgd(tmp_path):
    rows = [_bench_row("fo-sgd", None, 2100.0, 0.3), _bench_row("zo-sgd", 1, 500.0, 0.2),
            _bench_row("zo-sgd", 4, 520.0, 0.8)]
    (tmp_path / "vit-b16.json").write_text(json.dumps(rows))
    frame = table_2.load_efficiency(tmp_path, ["vit-b16"])
    assert list(frame.label) == ["FO-SGD", "ZO-SGD (q = 1)", "ZO-SGD (q = 4)"]
    table = table_2.efficiency_table(frame, "vit-b16", steps_per_epoch=105,
                                      seconds_per_epoch={"fo-sgd": 3.0, "zo-sgd": 1.5}).set_index("optimizer")
    assert table.loc["ZO-SGD (q = 1)", "memory ÷ FO-SGD"] == pytest.approx(0.24, abs=0.005)  # 500 / 2100
    assert table.loc["ZO-SGD (q = 1)", "net memory ÷ FO-SGD"] == pytest.approx(0.2)         # 400 / 2000
    assert table.loc["ZO-SGD (q = 4)", "step ÷ FO-SGD step"] == pytest.approx(2.67, abs=0.005)  # 8 / 3
    assert table.loc["ZO-SGD (q = 4)", "s / epoch (105 steps, projected)"] == pytest.approx(84.0)
    assert table.loc["ZO-SGD (q = 1)", "s / epoch (runs)"] == 1.5
    assert math.isnan(table.loc["ZO-SGD (q = 4)", "s / epoch (runs)"])  # the runs used q = 1
    with pytest.raises(FileNotFoundError, match="efficiency@vit-smoke"):
        table_2.load_efficiency(tmp_path, ["vit-smoke"])


def test_repeated_timings_show_their_spread_and_equal_forwards_are_compared_by_it(tmp_path):
    """Timed steps repeated: each timing is printed as median ± the spread between quartiles, the ratio's spread is
    the two relative spreads together, and two optimizers of 2 forwards per step are told apart only beyond their
    spreads (the 1.57× of raw times that once read as a difference)."""
    def repeated(optimizer, step, ratio, ratio_spread, forward=0.1):
        row = _bench_row(optimizer, 1 if optimizer != "fo-sgd" else None, 500.0, step, forward=forward, model="vit-smoke")
        return {**row, "steps": 9, "step_spread": step / 10, "step_over_forward": ratio,
                "step_over_forward_spread": ratio_spread}

    rows = [repeated("fo-sgd", 0.30, 3.0, 0.1), repeated("zo-sgd", 0.20, 2.0, 0.1),
            repeated("zo-sgd-sign", 0.314, 2.1, 0.15, forward=0.15)]
    (tmp_path / "vit-smoke.json").write_text(json.dumps(rows))
    frame = table_2.load_efficiency(tmp_path, ["vit-smoke"])
    table = table_2.efficiency_table(frame, "vit-smoke").set_index("optimizer")
    assert table.loc["ZO-SGD (q = 1)", "s / step spread"] == pytest.approx(0.02)
    # 0.2 / 0.3 = 0.67, its spread 0.67 × (0.02 / 0.2 + 0.03 / 0.3) = 0.13
    assert table.loc["ZO-SGD (q = 1)", "step ÷ FO-SGD step spread"] == pytest.approx(0.13)
    shown = table_2.efficiency_shown(table.reset_index()).set_index("optimizer")
    assert shown.loc["ZO-SGD (q = 1)", "s / step"] == "0.2000 ± 0.0200"
    assert shown.loc["ZO-SGD (q = 1)", "step ÷ forward"] == "2.00 ± 0.10"
    assert "s / step spread" not in shown
    lines = "\n".join(table_2._equal_forwards(table.reset_index()))
    # 2.0 ± 0.1 against 2.1 ± 0.15 in units of each process's forward: the same cost, whatever the raw 1.57×
    assert "2 optimizers take 2 forwards per step" in lines and "within the spreads between quartiles" in lines
    rows[2]["step_over_forward"] = 3.0
    (tmp_path / "vit-smoke.json").write_text(json.dumps(rows))
    table = table_2.efficiency_table(table_2.load_efficiency(tmp_path, ["vit-smoke"]), "vit-smoke")
    assert "beyond the spreads between quartiles" in "\n".join(table_2._equal_forwards(table))


def test_the_official_side_is_named_once():
    """A switch whose official value is itself called `official` reads "the official side", never "the official
    official" nor "official (official)"."""
    assert official_vs_ours.official_side("official", True) == "official"
    assert official_vs_ours.official_side("reference", True) == "reference (official)"
    assert official_vs_ours.official_side("exact", False) == "exact"
    assert official_vs_ours._official_value("official") == "the official side"
    assert official_vs_ours._official_value("reference") == "the official reference"


def test_the_table_2_text_quotes_the_ratios_its_tables_print(tmp_path):
    """Hand-made rows where the two clocks disagree (FO-SGD's process ran its forwards slower): the text
    quotes the quotient of the printed step times, and names the per-process ratios beside it."""
    rows = [_bench_row("fo-sgd", None, 4500.0, 44.97, forward=10.0), _bench_row("zo-sgd", 1, 1000.0, 37.30, forward=8.3),
            _bench_row("zo-sgd-conserve", 1, 1010.0, 93.25, forward=8.3)]
    (tmp_path / "vit-b16.json").write_text(json.dumps(rows))
    frame = table_2.load_efficiency(tmp_path, ["vit-b16"])
    assert list(frame.label) == ["FO-SGD", "ZO-SGD (q = 1)", "ZO-SGD-Conserve"]  # the paper's labels
    table = table_2.efficiency_table(frame, "vit-b16")
    printed = table.set_index("optimizer")
    assert printed.loc["ZO-SGD (q = 1)", "step ÷ FO-SGD step"] == pytest.approx(0.83)  # 37.30 / 44.97
    assert printed.loc["ZO-SGD (q = 1)", "step ÷ forward"] == pytest.approx(4.49)
    paper = table_2.paper_table_2(ROOT / "reference")
    text = "\n".join(table_2.efficiency_statements({"vit-b16": table}, paper))
    assert "FO-SGD's peak memory is **4.50×** ZO-SGD's" in text  # 4500 / 1000
    assert "the paper reports 5.01× on a GPU" in text          # 12.08 / 2.41
    assert "A ZO-SGD step takes 0.83× FO-SGD's time (37.3 s against 44.97 s" in text
    assert "4.49 against 4.5" in text
    assert "ZO-SGD-Conserve: 2.50× ZO-SGD's step time" in text   # 93.25 / 37.30
    assert "agrees with the paper's claim of about fivefold" in text


def test_paper_table_2_ratios():
    paper = table_2.paper_table_2(ROOT / "reference").set_index("optimizer")
    assert paper.loc["ZO-SGD (q = 1)", "memory ÷ FO-SGD"] == pytest.approx(0.2)  # 2.41 / 12.08
    assert paper.loc["ZO-SGD (q = 4)", "epoch ÷ FO-SGD"] == pytest.approx(1.88, abs=0.005)  # 111.7 / 59.3


def test_table_2_per_model_with_the_runs_epoch_times(tmp_path):
    rows = [_bench_row("fo-sgd", None, 2100.0, 0.3), _bench_row("zo-sgd", 1, 500.0, 0.2)]
    (tmp_path / "vit-b16.json").write_text(json.dumps(rows))
    frame = table_2.load_efficiency(tmp_path, ["vit-b16"])
    run = tmp_path / "runs" / "ease-fo-sgd-digits-0"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"backbone": "vit-b16"}))
    runs = pd.DataFrame({"method": "ease", "dataset": "digits", "optimizer": ["fo-sgd", "fo-sgd", "zo-sgd"],
                         "seconds_per_epoch": [3.0, 5.0, 1.5], "path": str(run / "metrics.json")})
    epochs = table_2.run_epochs(runs, "ease", "digits")
    assert epochs == ({"fo-sgd": 4.0, "zo-sgd": 1.5}, "vit-b16", 3)
    table = table_2.efficiency_tables(frame, ["vit-b16"], epochs)["vit-b16"].set_index("optimizer")
    assert table.loc["FO-SGD", "s / epoch (runs)"] == 4.0  # the runs trained this model
    assert table.loc["FO-SGD", "s / epoch (105 steps, projected)"] == pytest.approx(31.5)  # 5000 / 48 → 105 steps
    assert table_2.efficiency_caption(frame, "vit-b16") == (
        "### vit-b16: batch 48, explicit attention, device `cpu`, 2 threads, one timed step, so no spread (memory "
        "needs one step)")
    frame["steps"] = 9  # repeated timings: the median and the spread between their quartiles
    assert table_2.efficiency_caption(frame, "vit-b16").endswith(
        "median ± the spread between quartiles of 9 timed steps")


# ------------------------------------------------------------------------------------------ Figure 7
def test_heldout_curves_split_new_and_old_tasks_and_volatility(tmp_path):
    records = [{"step": 1, "task": 0, "losses": [2.0]}, {"step": 2, "task": 0, "losses": [1.0]},
               {"step": 3, "task": 1, "losses": [1.5, 3.0]}, {"step": 4, "task": 1, "losses": [1.7, 2.0]},
               {"step": 5, "task": 1, "losses": [1.6, 1.0]}]
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"heldout_losses": records}))
    runs = pd.DataFrame([{"method": "ease", "optimizer": "zo-sgd", "seed": s, "path": str(path)} for s in (0, 1)])
    curves = figure_7.heldout_curves(runs)
    one = curves[curves.seed == 0]
    assert list(one[one.which == "old"].loss) == [1.5, 1.7, 1.6]  # task 0's loss while task 1 is learned
    assert list(one[one.which == "new"].loss) == [2.0, 1.0, 3.0, 2.0, 1.0]
    vol = figure_7.volatility(curves).set_index("which")
    # new: changes 1.0 (task 0), 1.0 and 1.0 (task 1) → 1.0; old: 0.2, 0.1 → 0.15; same in both seeds
    assert vol.loc["new", "volatility_mean"] == pytest.approx(1.0)
    assert vol.loc["old", "volatility_mean"] == pytest.approx(0.15)
    assert vol.loc["old", "volatility_std"] == pytest.approx(0.0)


def test_figure_7_runs_are_fo_beside_zo():
    assert figure_7.fo_zo_pairs(["aper", "ease"], ["fo-sgd", "zo-sgd", "zo-adam"]) == (
        "ease", [("fo-sgd", "zo-sgd")], ["fo-sgd", "zo-sgd"])
    assert figure_7.fo_zo_pairs(["aper"], ["zo-sgd-sign", "forward-grad", "fo-adam"]) == (
        "aper", [], ["zo-sgd-sign", "forward-grad"])


def test_step_losses_average_the_seeds_up_to_the_shortest_run(tmp_path):
    paths = []
    for seed, curves in enumerate(([[1.0, 0.5], [1.2, 0.7]], [[3.0, 1.5], [1.2, 0.7, 9.9]])):
        paths.append(tmp_path / f"{seed}.json")
        paths[-1].write_text(json.dumps({"loss_curves": curves}))
    losses = figure_7.step_losses(pd.DataFrame({"optimizer": "zo-sgd", "path": [str(p) for p in paths]}))["zo-sgd"]
    assert losses.mean.tolist() == [2.0, 1.0, 1.2, 0.7]  # the second run's fifth step is cut
    assert losses.std.tolist() == pytest.approx([1.0, 0.5, 0.0, 0.0])
    assert losses.task_ends.tolist() == [2]


def _moves(new_change, old_change=0.0):
    return pd.DataFrame([{"optimizer": o, "which": w, "change_mean": c, "change_std": 0.1}
                         for o in ("fo-sgd", "zo-sgd") for w, c in (("new", new_change[o]), ("old", old_change))])


def test_volatility_is_compared_only_where_the_loss_moves():
    # relative volatility (per unit of fall within a task): ZO 0.6 against FO 0.2, beyond the spreads of 0.05
    vol = pd.DataFrame([{"optimizer": o, "which": w, "volatility_mean": m, "volatility_std": 0.05,
                         "relative_volatility_mean": 2 * m, "relative_volatility_std": 0.05, "n_seeds": 3}
                        for o, m in (("fo-sgd", 0.1), ("zo-sgd", 0.3)) for w in ("new", "old")])
    lines = figure_7.volatility_statements(vol, _moves({"fo-sgd": -0.5, "zo-sgd": -0.4}), [("fo-sgd", "zo-sgd")],
                                           "ease")
    assert lines[0] == ("New task: per unit of how far it falls within a task, ZO-SGD's held-out loss is **more "
                        "volatile than** FO-SGD's (paper: ZO more volatile).")
    assert lines[1].startswith("FO-SGD and ZO-SGD: old-task losses do not move within a task (EASE scores old")
    assert lines[-1].startswith("ZO-SGD: the new task's held-out loss falls within a task (-0.400 ± 0.100")
    smoother = vol.assign(relative_volatility_mean=[0.6, 0.6, 0.2, 0.2])
    assert "**smoother than**" in figure_7.volatility_statements(
        smoother, _moves({"fo-sgd": -0.5, "zo-sgd": -0.4}), [("fo-sgd", "zo-sgd")], "ease")[0]
    still = figure_7.volatility_statements(vol, _moves({"fo-sgd": -0.5, "zo-sgd": -0.05}, old_change=-0.5),
                                           [("fo-sgd", "zo-sgd")], "ease")
    assert still[0].startswith("New task, ZO-SGD against FO-SGD: **not compared**: the held-out loss of ZO-SGD does "
                               "not move")
    assert still[1] == ("FO-SGD: old-task losses **are within the spread of** the new task's (paper: old tasks "
                        "change less).")
    shown = figure_7.volatility_table(vol.assign(method="ease"), _moves({"fo-sgd": -0.5, "zo-sgd": -0.4}).assign(
        method="ease"))
    assert shown.volatility.tolist()[0] == "0.100 ± 0.050" and shown["change within a task"].tolist()[0] == "-0.500 ± 0.100"


# ------------------------------------------------------------------------------- Figures 3 and 6
def test_the_trajectory_pages_text():
    from types import SimpleNamespace


    text = landscape.toy_problem_text(landscape.TwoTaskProblem(), landscape.FIGURE_3_PANELS)
    assert text.splitlines()[1:] == ["(a) FO-SGD: fo-sgd, lr=0.02, weight_decay=0.0",
                                     "(b) ZO-SGD: zo-sgd, lr=0.02, weight_decay=0.0"]
    summary = pd.DataFrame({"panel": ["a", "b"], "title": ["FO-SGD", "ZO-SGD"], "optimizer": ["fo-sgd", "zo-sgd"],
                            "n_seeds": [2, 2], **{f"{s}_{k}": [0.1234, 0.01] if k == "mean" else [0.01, 0.002]
                                                  for s in ("final_distance", "final_loss", "path_length", "jitter",
                                                            "turning") for k in ("mean", "std")}})
    shown = landscape.trajectory_table(summary)
    assert shown["final distance to θ*"].tolist()[0] == "0.123 ± 0.010"
    assert shown["turning (°)"].tolist()[0] == "0.1 ± 0.0"  # one digit for degrees
    # start 5 from θ*: panel a ends within 0.5 in both seeds, panel b not in its second
    problem = SimpleNamespace(a=np.zeros(2), total_minimum=lambda: np.array([3.0, 4.0]))
    stats = pd.DataFrame({"panel": ["a", "a", "b", "b"], "final_distance": [0.1, 0.2, 0.1, 0.6]})
    verdicts = pd.DataFrame([{"claim": "FO is smoother than ZO (SGD)", "metric": m, "rougher": "ZO-SGD",
                              "rougher_mean": r, "rougher_std": rs, "smoother": "FO-SGD", "smoother_mean": s,
                              "smoother_std": ss, "outcome": o}
                             for m, r, rs, s, ss, o in (("jitter", 1.5, 0.1, 1.1, 0.05, "agrees"),
                                                        ("turning", 20.0, 5.0, 18.0, 5.0, "within the spread"))])
    claims = landscape.trajectory_claims("Both converge", problem, stats, summary, verdicts)
    assert claims == ("- Both converge — ours: **partly**: 1 of 2 panels end within 10% of the start distance from "
                      "θ\\* (5.00) in every seed; not ZO-SGD\n"
                      "- FO is smoother than ZO (SGD) — ours: jitter **agrees** (ZO-SGD 1.50 ± 0.10 vs FO-SGD 1.10 ± "
                      "0.05); turning **within the spread** (ZO-SGD 20.0 ± 5.0 vs FO-SGD 18.0 ± 5.0)\n\n"
                      "Over all 2 comparisons: 1 agrees, 1 within the spread")


# ------------------------------------------------------------------------------------ notebook plumbing
def test_efficiency_rows_take_the_models_own_optimizers_else_the_sections(tmp_path, monkeypatch):
    import zeroflow_core.run.bench as bench
    from zeroflow_core import cli

    asked = {}
    monkeypatch.setattr(bench, "run_benchmark", lambda model, pairs, *a, **k: asked.setdefault(model, (pairs, k)) and [])
    params = _params()
    section = params["efficiency"]
    # the line params.yaml ships commented out, as a user adds it
    section["models"]["vit-b16"] = {"batch_size": 48, "steps": 1, "warmup": 0, "optimizers": ["fo-sgd", "zo-sgd"],
                                    "extra_q": []}
    check_params(params)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    for model in ("vit-smoke", "vit-b16"):
        assert cli.main(["stage-efficiency", model, "--params", str(path)]) == 0
        assert json.loads((tmp_path / "runs" / "efficiency" / f"{model}.json").read_text()) == []
    assert asked["vit-smoke"][0] == [(o, None) for o in section["optimizers"]] + [("zo-sgd", 4)]
    assert asked["vit-b16"][0] == [(o, None) for o in section["models"]["vit-b16"]["optimizers"]]
    assert asked["vit-b16"][1]["attention"] == section["attention"]
    params["efficiency"]["models"]["vit-b16"]["optimizers"] = "fo-sgd"
    with pytest.raises(ConfigError, match="'efficiency.models.vit-b16.optimizers' must be list"):
        check_params(params)


def test_cells_run_side_by_side_give_the_same_results_as_one_by_one(tmp_path):
    """Two real (tiny) runs in two spawned workers end exactly as the same runs in this process."""
    params = _params()
    params["train"].update(threads=1)
    params["ablations"]["train"] = {"max_steps_per_epoch": 3, "heldout_every": 0}
    params["datasets"]["synthetic"] = {"n_tasks": 2, "dataset_options": {"n_classes": 4, "n_train": 48, "n_test": 4}}
    params["grid"]["datasets"] = ["hues", "synthetic"]
    params["ablations"].update(dataset="synthetic", seeds=[0])
    params["execution"]["workers"] = 2
    params["ablations"]["sweeps"]["history"]["values"] = [0.0, 0.5]
    params["profile"] = "smoke"
    params["train"]["backbone_weights"] = ""  # random init: no pretrained file needed
    stages.sweep(params, "history", root=tmp_path / "side", log=lambda *_: None)
    params["execution"]["workers"] = 1
    stages.sweep(params, "history", root=tmp_path / "one", log=lambda *_: None)
    for cell in ("ease-zo-sgd-synthetic-history0-0", "ease-zo-sgd-synthetic-history0.5-0"):
        side = json.loads((tmp_path / "side" / "history" / cell / "metrics.json").read_text())
        one = json.loads((tmp_path / "one" / "history" / cell / "metrics.json").read_text())
        assert side["acc_matrix"] == one["acc_matrix"] and side["loss_curves"] == one["loss_curves"], cell
    assert side["loss_curves"] != json.loads((tmp_path / "one" / "history" / "ease-zo-sgd-synthetic-history0-0"
                                             / "metrics.json").read_text())["loss_curves"]  # h starts at the first z: p changes the third step on


def test_figure_7_says_once_why_old_task_losses_that_do_not_move_are_no_finding():
    """EASE scores old classes with what end_task stored: their losses do not move within a task for any optimizer,
    and the page says so once, naming them all (not once per optimizer)."""
    optimizers = ["fo-sgd", "zo-sgd", "fo-adam", "zo-adam"]
    vol = pd.DataFrame([{"optimizer": o, "which": w, "relative_volatility_mean": 0.1, "relative_volatility_std": 0.01,
                         "volatility_mean": 0.1, "volatility_std": 0.01} for o in optimizers for w in ("new", "old")])
    moves = pd.DataFrame([{"optimizer": o, "which": w, "change_mean": -0.5 if w == "new" else 0.0,
                           "change_std": 0.01} for o in optimizers for w in ("new", "old")])
    lines = figure_7.volatility_statements(vol, moves, [("fo-sgd", "zo-sgd"), ("fo-adam", "zo-adam")], "ease")
    caveats = [line for line in lines if "true by construction" in line]
    assert len(caveats) == 1 and caveats[0].startswith("FO-SGD, ZO-SGD, FO-Adam and ZO-Adam: old-task losses")


def test_the_table_2_text_reads_a_hybrid_head_row_as_ours_alone(tmp_path):
    """ZO-SGD again with the head by backprop (efficiency.backprop_head): compared with ZO-SGD's own row, never with a
    paper row it does not have (no "nan×"), and not counted among the rows of equal forwards."""
    rows = [_bench_row("fo-sgd", None, 4500.0, 44.97), _bench_row("zo-sgd", 1, 1000.0, 37.30),
            _bench_row("zo-sgd-sign", 1, 1000.0, 37.0),
            {**_bench_row("zo-sgd", 1, 1010.0, 40.0), "head_optimizer": "backprop", "head_backwards_per_step": 2.0}]
    (tmp_path / "vit-b16.json").write_text(json.dumps(rows))
    table = table_2.efficiency_table(table_2.load_efficiency(tmp_path, ["vit-b16"]), "vit-b16")
    text = "\n".join(table_2.efficiency_statements({"vit-b16": table}, table_2.paper_table_2(ROOT / "reference")))
    assert "nan" not in text
    assert "ZO-SGD (q = 1), head by backprop: memory 1.01× and step time 1.07× ZO-SGD (q = 1)'s (not in the paper" in text
    assert "2 optimizers take 2 forwards per step (ZO-SGD (q = 1), ZO-SGD-Sign)" in text


def test_table_2_as_shown_names_the_hybrid_heads_backwards_in_the_backwards_column(tmp_path):
    rows = [_bench_row("fo-sgd", None, 4500.0, 0.3), _bench_row("zo-sgd", 1, 1000.0, 0.2),
            {**_bench_row("zo-sgd", 1, 1010.0, 0.21), "head_optimizer": "backprop", "head_backwards_per_step": 2.0}]
    (tmp_path / "vit-b16.json").write_text(json.dumps(rows))
    table = table_2.efficiency_table(table_2.load_efficiency(tmp_path, ["vit-b16"]), "vit-b16")
    shown = table_2.efficiency_shown(table)
    assert "head backwards / step" not in shown
    assert shown["backwards / step"].tolist() == ["1", "0", "0 + 2 head"]
    assert shown["forwards / step"].tolist() == ["1", "2", "2"]
