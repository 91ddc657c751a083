"""Table 5 of the ICML version: the enhancements sweep (a sweep of variants, each value several settings), its page's
table and verdicts, and its Claims rows, on hand-made summaries whose answers are worked out by hand."""
import copy
from pathlib import Path

import pandas as pd
import pytest


from zeroflow_core.book import claims, table_5
from zeroflow_core.book.trained import DID_NOT_TRAIN
from zeroflow_core.pipeline.cells import sweep_cells
from zeroflow_core.pipeline.params import check_params, load_params
from zeroflow_core.run.config import ConfigError

ROOT = Path(__file__).parents[1]
VARIANTS = {"backprop": {}, "plain": {"q": 1}, "hybrid": {"q": 1, "fo_epochs": 3},
            "history": {"q": 1, "history": 0.4}, "all": {"q": 1, "fo_epochs": 3, "history": 0.4, "sparsity": 0.5}}


# ---------------------------------------------------------------------------------------- the sweep
def test_each_variant_sets_its_settings_together_and_shares_one_zero_step_control():
    cells = {cell.name: cell.config for cell in sweep_cells(load_params(ROOT / "params.yaml"), "enhancements")}
    every = load_params(ROOT / "params.yaml")["ablations"]["sweeps"]["enhancements"]["variants"]
    assert set(every) == {"backprop", "plain", "hybrid", "history", "sparsity", "all"}
    combined = cells["ease-zo-sgd-hues-variantall-0"]
    assert combined["fo_epochs"] == 3 and combined["optimizer_hyper"]["history"] == 0.4
    assert combined["optimizer_hyper"]["sparsity"] == 0.5 and combined["optimizer_hyper"]["q"] == 1
    assert combined["fo_hyper"]["lr"] == cells["ease-fo-sgd-hues-variantbackprop-0"]["optimizer_hyper"]["lr"]
    plain = cells["ease-zo-sgd-hues-variantplain-0"]
    assert plain["fo_epochs"] == 0 and plain["optimizer_hyper"]["history"] == 0.0 and plain["fo_hyper"] == {}
    # none of the variants' settings applies to a run without steps: one control per seed
    assert [name for name in cells if "-none-" in name or name.startswith("ease-hues-")] == ["ease-hues-0",
                                                                                             "ease-hues-1"]


@pytest.mark.parametrize("edit,message", [
    (lambda sweep: sweep.pop("variants"), "`variants` and hyper `variant` go together"),
    (lambda sweep: sweep.update(hyper="q"), "`variants` and hyper `variant` go together"),
    (lambda sweep: sweep["values"]["zo-sgd"].append("warm"), "names 'warm', which is none of its variants"),
    (lambda sweep: sweep["variants"].update(plain={"fo_epochs": 99}), "fo_epochs"),
])
def test_a_sweep_of_variants_that_does_not_add_up_is_refused(edit, message):
    params = copy.deepcopy(load_params(ROOT / "params.yaml"))
    edit(params["ablations"]["sweeps"]["enhancements"])
    with pytest.raises(ConfigError, match=message):
        check_params(params)


# ------------------------------------------------------------------------------------------ the page
def _summary(avg, trained=None):
    """One row per (optimizer, variant) with mean ± 1 std average and last accuracy, forgetting ± 0.5."""
    names = [("fo-sgd", "backprop"), ("zo-sgd", "plain"), ("zo-sgd", "hybrid"), ("zo-sgd", "history"),
             ("zo-sgd", "all")]
    trained = trained or [True] * len(names)
    return pd.DataFrame({"optimizer": [o for o, _ in names], "value": [v for _, v in names], "n_seeds": 2,
                         "avg_acc_mean": avg, "avg_acc_std": 1.0, "last_acc_mean": avg, "last_acc_std": 1.0,
                         "forgetting_mean": 10.0, "forgetting_std": 0.5, "loss_drop_mean": 0.2,
                         "loss_drop_std": 0.01, "trained": trained})


ANCHOR = pd.Series({"method": "ease", "avg_acc_mean": 40.0, "avg_acc_std": 1.0, "last_acc_mean": 40.0,
                    "last_acc_std": 1.0, "forgetting_mean": 0.0, "forgetting_std": 0.0})


def test_the_rows_are_named_by_the_enhancements_their_settings_switch_on():
    assert table_5.variant_label("zo-sgd", VARIANTS["plain"]) == "ZO-SGD"
    assert table_5.variant_label("zo-sgd", VARIANTS["hybrid"]) == "+ hybrid"
    assert table_5.variant_label("zo-sgd", VARIANTS["all"]) == "all three"
    assert table_5.variant_label("zo-sgd", {"history": 0.4, "sparsity": 0.5}) == "+ history + sparsity"
    assert table_5.variant_label("fo-sgd", {}) == "FO-SGD"


def test_the_table_reads_each_enhanced_row_against_plain_zo_backprop_and_the_zero_step_control():
    # FO 60, plain 50, hybrid 63 (beats both), history 51 (within plain's spread, below FO), all 45
    table = table_5.enhancement_table(_summary([60.0, 50.0, 63.0, 51.0, 45.0]), ANCHOR, VARIANTS)
    assert table.row.tolist() == ["EASE without a step (zero-step control)", "FO-SGD", "ZO-SGD", "+ hybrid",
                                  "+ history", "all three"]
    rows = table.set_index("row")
    assert rows.loc["+ hybrid", ["Avg against plain ZO", "Avg against backprop", "Avg against zero-step"]].tolist() \
        == ["better", "better", "better"]
    assert rows.loc["+ history", ["Avg against plain ZO", "Avg against backprop"]].tolist() == [
        "within the spread", "worse"]
    assert rows.loc["all three", "Avg against plain ZO"] == "worse"
    assert rows.loc["ZO-SGD", "Avg against plain ZO"] == ""  # the reference rows take no verdict of their own
    assert "`fo_epochs: 3`" in rows.loc["+ hybrid", "settings"]


def test_a_row_that_did_not_train_gets_no_verdict():
    summary = _summary([60.0, 50.0, 63.0, 51.0, 45.0], trained=[True, True, False, True, True])
    table = table_5.enhancement_table(summary, ANCHOR, VARIANTS).set_index("row")
    assert set(table.loc["+ hybrid", ["Avg against plain ZO", "Avg against backprop", "Avg against zero-step"]]) \
        == {"did not train"}
    assert "(did not train)" in table.loc["+ hybrid", "training-loss drop"]
    lines = table_5.enhancement_statements(summary, ANCHOR, VARIANTS)
    assert any(line.startswith("+ hybrid: **did not train**") for line in lines)
    untrained_plain = _summary([60.0, 50.0, 63.0, 51.0, 45.0], trained=[True, False, True, True, True])
    hybrid = table_5.enhancement_table(untrained_plain, ANCHOR, VARIANTS).set_index("row").loc["+ hybrid"]
    assert hybrid["Avg against plain ZO"] == "did not train" and hybrid["Avg against backprop"] == "better"


def test_the_papers_table_5_and_its_claim_name_the_rows_above_fo_sgd():
    paper = table_5.paper_table_5(ROOT / "reference")
    assert paper.loc["all three"].tolist() == [62.07, 51.94]
    assert "+ hybrid, all three" in table_5.table_5_claim(paper)


# ---------------------------------------------------------------------------------------- the claims
def test_the_hybrid_and_the_combination_beat_fo_only_beyond_the_spread():
    found = claims.enhancements_beat_fo(_summary([60.0, 50.0, 63.0, 51.0, 61.0]), VARIANTS)
    assert [c.claim for c in found] == ["the hybrid schedule beats FO", "the enhancements combined beats FO"]
    assert [c.verdict for c in found] == [claims.CONFIRMED, claims.WITHIN]
    assert all(c.page == "table_5" and "Table 5" in c.paper for c in found)
    assert claims.enhancements_beat_fo(_summary([60.0, 50.0, 55.0, 51.0, 61.0]), VARIANTS)[0].verdict == claims.REFUTED
    untrained = claims.enhancements_beat_fo(
        _summary([60.0, 50.0, 63.0, 51.0, 61.0], trained=[False, True, True, True, True]), VARIANTS)
    assert {c.verdict for c in untrained} == {DID_NOT_TRAIN} and "FO-SGD did not train" in untrained[0].numbers
    # a sweep without the combination cannot test it
    partial = {name: settings for name, settings in VARIANTS.items() if name != "all"}
    summary = _summary([60.0, 50.0, 63.0, 51.0, 61.0])
    assert claims.enhancements_beat_fo(summary[summary.value != "all"], partial)[1].verdict == claims.UNTESTABLE
