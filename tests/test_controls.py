"""The verdict guards on hand-made runs: whether a row trained, verdicts against the zero-step control, the claims,
the cost page and where training goes, each branch with numbers made to take it."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from zeroflow_core.book import claims, cost, trained, updates


def _runs(rows) -> pd.DataFrame:
    """Hand-made grid runs: (method, optimizer, [(avg, fgt, loss_drop) per seed])."""
    out = []
    for method, optimizer, seeds in rows:
        for seed, (avg, fgt, drop) in enumerate(seeds):
            out.append({"method": method, "optimizer": optimizer, "dataset": "hues", "seed": seed, "avg_acc": avg,
                        "last_acc": avg - 5, "forgetting": fgt, "loss_drop": drop})
    return pd.DataFrame(out)


GRID = [
    ("simplecil", "none", [(28.0, 10.0, None)] * 3),
    ("ease", "none", [(29.0, 12.0, None), (29.5, 12.5, None), (28.5, 11.5, None)]),
    ("ease", "fo-sgd", [(35.0, 15.0, 1.0), (36.0, 16.0, 0.9), (34.0, 14.0, 1.1)]),
    ("ease", "zo-sgd", [(29.2, 12.0, 0.25), (29.4, 11.0, 0.3), (29.0, 13.0, 0.2)]),
    # lowers its loss by less than its spread: did not train
    ("ease", "zo-adam", [(40.0, 5.0, 0.01), (40.0, 5.0, -0.02), (40.0, 5.0, 0.04)]),
    ("ease", "forward-grad", [(20.0, 20.0, 0.3), (21.0, 21.0, 0.35), (19.0, 19.0, 0.4)]),
]


@pytest.mark.parametrize("mean,std,expected", [(0.3, 0.05, True), (0.03, 0.05, False), (-0.3, 0.01, False),
                                                (0.1, float("nan"), True), (0.0, float("nan"), False),
                                                (None, 0.0, False)])
def test_a_row_trained_only_beyond_its_spread(mean, std, expected):
    assert trained.trained(mean, std) is expected


def test_each_row_gets_its_status_and_verdict_against_its_own_control():
    comparison = trained.versus_control(_runs(GRID), "simplecil").set_index(["optimizer", "metric"])
    assert comparison.loc[("fo-sgd", "avg_acc"), "verdict"] == "better"
    assert comparison.loc[("fo-sgd", "avg_acc"), "against"] == "zero-step"
    assert comparison.loc[("fo-sgd", "avg_acc"), "difference"] == pytest.approx(35.0 - 29.0)
    assert comparison.loc[("zo-sgd", "avg_acc"), "verdict"] == "within the spread"
    # the best accuracy of the grid, but its loss never fell: no verdict
    assert comparison.loc[("zo-adam", "avg_acc"), "verdict"] == "did not train"
    assert comparison.loc[("forward-grad", "avg_acc"), "verdict"] == "worse"
    assert comparison.loc[("forward-grad", "forgetting"), "verdict"] == "worse"
    control = comparison.loc[("none", "avg_acc")]
    assert control.against == "simplecil" and control.verdict == "better"  # the structure alone beats SimpleCIL


def test_the_control_statements_count_only_rows_that_trained():
    comparison = trained.versus_control(_runs(GRID), "simplecil")
    text = " ".join(trained.control_statements(comparison, "simplecil"))
    assert "3 of 4 optimizers lowered the training loss" in text
    assert "ZO-Adam: did not train" in text
    assert "1 beat the zero-step control beyond the spread, 1 are within it and 1 below it" in text
    table = trained.versus_control_table(comparison)
    assert "did not train" in table.loc[("EASE", "ZO-Adam")].iloc[0]


def test_a_missing_control_is_named():
    runs = _runs([row for row in GRID if not (row[0] == "ease" and row[1] == "none")])
    with pytest.raises(ValueError, match="no runs of ease \\(none\\)"):
        trained.versus_control(runs, "simplecil")


# -------------------------------------------------------------------------------------------------- claims
def test_zo_close_to_fo_each_branch():
    runs = _runs(GRID)
    assert claims.zo_close_to_fo(runs, "ease").verdict == claims.REFUTED  # ZO-SGD 29.2 against FO-SGD 35 ± 1
    close = _runs([*GRID[:2], ("ease", "fo-sgd", [(30.0, 15.0, 1.0), (29.0, 16.0, 0.9), (31.0, 14.0, 1.1)]),
                   *GRID[3:]])
    found = claims.zo_close_to_fo(close, "ease")
    assert found.verdict == claims.CONFIRMED and "the zero-step control 29.00 ± 0.50" in found.numbers
    untrained = _runs([*GRID[:3], ("ease", "zo-sgd", [(40.0, 1.0, 0.0)] * 3)])
    assert claims.zo_close_to_fo(untrained, "ease").verdict == trained.DID_NOT_TRAIN
    assert claims.zo_close_to_fo(_runs(GRID[:3]), "ease").verdict == claims.UNTESTABLE


def test_the_choice_of_forward_pass_optimizer():
    # ZO-SGD 29.2 and Forward-Grad 20: far apart, so the choice matters
    assert claims.choice_matters_little(_runs(GRID), "ease").verdict == claims.REFUTED
    alike = _runs([*GRID[:4], ("ease", "forward-grad", [(29.0, 12.0, 0.3), (29.5, 12.0, 0.3), (28.8, 12.0, 0.4)])])
    assert claims.choice_matters_little(alike, "ease").verdict == claims.CONFIRMED
    assert claims.choice_matters_little(_runs(GRID[:3]), "ease").verdict == trained.DID_NOT_TRAIN


def test_zo_forgets_less():
    assert claims.zo_forgets_less(_runs(GRID), "ease").verdict == claims.CONFIRMED  # 12 ± 1 against 15 ± 1
    untrained = _runs([*GRID[:3], ("ease", "zo-sgd", [(29.0, 2.0, 0.0)] * 3)])
    assert claims.zo_forgets_less(untrained, "ease").verdict == trained.DID_NOT_TRAIN


def _efficiency(fo_peak, zo_peak, fo_step=0.3, zo_step=0.1, model="vit-b16"):
    return pd.DataFrame([{"model": model, "optimizer": "fo-sgd", "q": None, "peak_memory_mb": fo_peak,
                          "step_seconds": fo_step, "batch_size": 48},
                         {"model": model, "optimizer": "zo-sgd", "q": 1, "peak_memory_mb": zo_peak,
                          "step_seconds": zo_step, "batch_size": 48}])


def test_the_memory_and_epoch_claims():
    assert claims.memory_claim(_efficiency(5000, 1000)).verdict == claims.CONFIRMED
    assert claims.memory_claim(_efficiency(3000, 1000)).verdict == claims.REFUTED
    assert claims.memory_claim(_efficiency(3000, 1000, model="vit-smoke")).verdict == claims.UNTESTABLE
    assert claims.epoch_time_claim(_efficiency(5000, 1000)).verdict == claims.CONFIRMED
    assert claims.epoch_time_claim(_efficiency(5000, 1000, zo_step=0.5)).verdict == claims.REFUTED
    assert claims.epoch_time_claim(_efficiency(5000, 1000, model="vit-smoke")).verdict == claims.UNTESTABLE


def _sweep(values, rows):
    """A sweep summary (ablations.ablation_summary's columns): rows of (avg mean, avg std, drop mean, trained)."""
    return pd.DataFrame([{"optimizer": "zo-sgd", "value": v, "avg_acc_mean": a, "avg_acc_std": s,
                          "loss_drop_mean": d, "trained": t} for v, (a, s, d, t) in zip(values, rows)])


def test_more_queries_help_each_branch():
    rising = _sweep([1, 8], [(28.0, 0.5, 0.1, True), (31.0, 0.5, 0.4, True)])
    assert claims.more_queries_help(rising).verdict == claims.CONFIRMED
    flat = _sweep([1, 8], [(28.0, 1.5, 0.1, True), (29.0, 1.5, 0.4, True)])
    assert claims.more_queries_help(flat).verdict == claims.WITHIN
    falling = _sweep([1, 8], [(31.0, 0.5, 0.1, True), (28.0, 0.5, 0.4, True)])
    assert claims.more_queries_help(falling).verdict == claims.REFUTED
    untrained = _sweep([1, 8], [(28.0, 0.5, 0.0, False), (31.0, 0.5, 0.4, True)])
    assert claims.more_queries_help(untrained).verdict == trained.DID_NOT_TRAIN


def test_an_enhancement_helps_only_beyond_its_step_matched_control():
    summary = _sweep([0.0, 0.4], [(28.0, 0.5, 0.2, True), (31.0, 0.5, 0.2, True)])
    smaller_step = pd.DataFrame([{"value": 0.4, "avg_acc_mean": 30.8, "avg_acc_std": 0.5}])
    direction = pd.DataFrame([{"value": 0.4, "avg_acc_mean": 28.2, "avg_acc_std": 0.5}])
    args = ("historical mixing", "table_3", "Table 3", "history")
    # beats plain ZO-SGD, but so does plain ZO-SGD taking steps of its size: a smaller step, not the direction
    assert claims.enhancement_helps(summary, smaller_step, *args).verdict == claims.WITHIN
    assert claims.enhancement_helps(summary, direction, *args).verdict == claims.CONFIRMED
    worse = _sweep([0.0, 0.4], [(31.0, 0.5, 0.2, True), (28.0, 0.5, 0.2, True)])
    assert claims.enhancement_helps(worse, direction, *args).verdict == claims.REFUTED
    plain_untrained = _sweep([0.0, 0.4], [(28.0, 0.5, 0.0, False), (31.0, 0.5, 0.2, True)])
    assert claims.enhancement_helps(plain_untrained, direction, *args).verdict == trained.DID_NOT_TRAIN


def _moves(zo_change, fo_change):
    rows = [("zo-sgd", zo_change), ("fo-sgd", fo_change)]
    return pd.DataFrame([{"optimizer": o, "which": "new", "change_mean": c, "change_std": 0.01} for o, c in rows])


def _vol(zo, fo):
    return pd.DataFrame([{"optimizer": o, "which": "new", "relative_volatility_mean": v,
                          "relative_volatility_std": 0.05} for o, v in (("zo-sgd", zo), ("fo-sgd", fo))])


def test_the_volatility_claim_needs_curves_that_fall():
    assert claims.smoother_claim(_vol(0.9, 0.3), _moves(-0.3, -1.0)).verdict == claims.CONFIRMED
    assert claims.smoother_claim(_vol(0.3, 0.9), _moves(-0.3, -1.0)).verdict == claims.REFUTED
    # ZO's held-out loss does not fall beyond its spread: its smoothness says nothing
    assert claims.smoother_claim(_vol(0.1, 0.9), _moves(-0.005, -1.0)).verdict == trained.DID_NOT_TRAIN


def test_the_claims_table_links_each_page():
    found = [claims.Claim("c", "Table 1", claims.CONFIRMED, "n", "table_1")]
    table = claims.claims_table(found)
    assert table.page.iloc[0] == '<a href="table_1.html">Table 1</a>' and claims.verdict_counts(found) == "1 confirmed"


# ---------------------------------------------------------------------------------------------------- cost
def _budget():
    rows = []
    for optimizer, passes, forwards, seconds, gains in (
            ("fo-sgd", 1, 800, 2.0, [1.0, 1.2]), ("fo-sgd", 3, 2400, 6.0, [3.0, 3.4]),
            ("fo-sgd", 15, 12000, 30.0, [4.0, 4.4]),
            ("zo-sgd", 3, 19200, 7.0, [0.1, -0.1]), ("zo-sgd", 15, 96000, 45.0, [0.2, 0.4])):
        for seed, gain in enumerate(gains):
            rows.append({"optimizer": optimizer, "value": passes, "seed": seed, "avg_acc": 28.0 + gain,
                         "last_acc": 20.0, "forgetting": 10.0, "loss_drop": 0.5 if optimizer == "fo-sgd" else 0.2 + 0.01 * seed,
                         "step": 0.1, "seconds": seconds, "train_image_forwards": forwards, "peak_memory_mb": 300.0})
    return pd.DataFrame(rows)


def test_the_cost_page_compares_at_equal_spend_and_at_the_paper_s_ratio():
    control = pd.Series({"avg_acc_mean": 28.0, "avg_acc_std": 0.0})
    summary = cost.cost_summary(_budget(), control)
    assert summary.set_index(["optimizer", "value"]).loc[("fo-sgd", 15), "gain"] == pytest.approx(4.2)
    text = " ".join(cost.cost_statements(summary, grid_passes={"backprop": 3, "zeroth-order": 15}))
    # equal forwards: ZO-SGD at 3 passes (19,200) meets FO-SGD at 15 (12,000), the nearest pair
    assert "At equal forwards (3 passes, 1.92e+04, against FO-SGD at 15, 1.2e+04)" in text
    assert "at equal time (3 passes, 7, against FO-SGD at 3, 6)" in text
    assert "at the paper's ratio (15 passes against 3) it gains +0.30 against +3.20: **worse**" in text
    assert len(cost.cost_table(summary)) == 5


# ------------------------------------------------------------------------------------- where training goes
def _update_run(folder: Path, optimizer, seed, adapters_cos, heads_cos, diagonal):
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({
        "acc_matrix": [[diagonal, None], [diagonal - 5, diagonal]],
        "updates": [{"task": t, "adapters": {"moved": 1.0, "relative": 0.1, "cosine": adapters_cos + 0.01 * seed,
                                             "loss_drop": adapters_cos + 0.01 * seed},
                     "heads": {"moved": 2.0, "relative": 0.5, "cosine": heads_cos + 0.01 * seed,
                               "loss_drop": heads_cos + 0.01 * seed}} for t in (0, 1)]}))
    return {"method": "ease", "optimizer": optimizer, "dataset": "hues", "seed": seed, "path": str(folder / "metrics.json"),
            "loss_drop": 0.5}


def test_where_training_goes_tells_signal_from_noise(tmp_path):
    runs = pd.DataFrame([_update_run(tmp_path / f"{o}-{s}", o, s, a, h, d)
                         for o, a, h, d in (("fo-sgd", 0.3, 0.4, 60.0), ("zo-sgd", 0.0, 0.2, 50.0),
                                            ("none", np.nan, np.nan, 50.0))
                         for s in range(3)])
    summary = updates.updates_summary(updates.run_updates(runs)).set_index("optimizer")
    assert summary.loc["fo-sgd", "own_task_gain"] == pytest.approx(10.0)
    assert summary.loc["fo-sgd", "own_task_verdict"] == "better"
    text = " ".join(updates.updates_statements(summary.reset_index()))
    assert "FO-SGD: its adapters' move alone lowers the held-out loss" in text
    assert "ZO-SGD: its adapters' move alone leaves within its spread the held-out loss" in text
    assert "its heads' move alone lowers the held-out loss" in text
    # FO-SGD's 60 on the task just learned against the control's 50; ZO-SGD's 50 against 50
    assert "Training raises the accuracy on the task just learned against the zero-step control (+10.00" in text
    assert "Training leaves within the spread the accuracy on the task just learned" in text
    gist = updates.where_training_goes(summary.reset_index(), "ease")
    assert "lowers the held-out loss beyond its spread for 0 of 1, the heads' for 1 of 1" in gist
    assert "trains the heads" in gist


def test_the_memory_and_epoch_claims_read_each_optimizers_own_step_not_its_hybrid_head_row():
    """Table 2 measures ZO-SGD again with the head by backprop (efficiency.backprop_head): a second zo-sgd row, whose
    memory and time are not ZO-SGD's own."""
    rows = _efficiency(5000, 1000).assign(head_optimizer="same")
    hybrid = rows[rows.optimizer == "zo-sgd"].assign(head_optimizer="backprop", peak_memory_mb=4000.0,
                                                     step_seconds=0.9)
    both = pd.concat([rows, hybrid], ignore_index=True)
    memory = claims.memory_claim(both)
    assert memory.verdict == claims.CONFIRMED and "against ZO-SGD 1000 MB" in memory.numbers
    assert claims.epoch_time_claim(both).verdict == claims.CONFIRMED
