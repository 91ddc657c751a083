"""The official code against our defaults, measured: each switch of the switches sweep (runs/ablation/switches/)
with both choices, and the two forgetting formulas (PILOT's and the paper's) on the grid's runs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from zeroflow_core.book.ablations import ablation_summary, load_ablation, settings_text
from zeroflow_core.book.report import (LOWER_IS_BETTER, TABLE_METRICS, aggregate, dataset_label, format_mean_std,
                                       method_label, optimizer_label, verdict)

def switch_summary(ablation_dir, method: str, dataset: str, seeds, switches: dict) -> pd.DataFrame:
    """One row per switch × optimizer × choice: accuracy and forgetting (mean, std over seeds) and, for the
    choice that is not the official code's, the verdict against it."""
    rows = []
    for name, sweep in switches.items():
        cells = load_ablation(Path(ablation_dir) / name, method, dataset, sweep["optimizers"], sweep["values"], seeds,
                              sweep["hyper"])
        for optimizer, part in ablation_summary(cells).groupby("optimizer", sort=False):
            official = part[part.value == sweep["official"]].iloc[0]
            for row in part.itertuples():
                is_official = row.value == sweep["official"]
                untrained = not (row.trained and official.trained)
                rows.append({
                    "switch": name, "optimizer": optimizer, "value": row.value, "official": is_official,
                    "trained": row.trained, "loss_drop_mean": row.loss_drop_mean, "loss_drop_std": row.loss_drop_std,
                    **{f"{m}_{s}": getattr(row, f"{m}_{s}") for m in TABLE_METRICS for s in ("mean", "std")},
                    **{f"{m}_verdict": "official" if is_official else "did not train" if untrained else verdict(
                        getattr(row, f"{m}_mean"), getattr(row, f"{m}_std"), official[f"{m}_mean"],
                        official[f"{m}_std"], lower_is_better=m in LOWER_IS_BETTER) for m in TABLE_METRICS},
                })
    return pd.DataFrame(rows)


def switch_notes(run_settings: dict, sweep_optimizers: dict) -> list[str]:
    """What the switches' page says first (Markdown): the settings its runs take over the grid's."""
    if not (run_settings or sweep_optimizers):
        return []
    return ["The switches run with the sweeps' settings over the grid's: " + settings_text(run_settings)
            + "".join(f"; {optimizer_label(o)} " + settings_text(hyper) for o, hyper in sweep_optimizers.items())
            + " (`ablations.train`, `ablations.optimizers`)."]


def switch_table(summary: pd.DataFrame, switches: dict, anchor: pd.Series) -> pd.DataFrame:
    """`switch_summary` as shown, each side's verdict against the official code's, and the no-training row
    (`anchor`) last: what every side of every switch is worth against."""
    def choice(row):
        fixed = "".join(f", {k} = {v}" for k, v in switches[row.switch].get("with", {}).items())
        return official_side(row.value, row.official) + (f" [{fixed[2:]}]" if fixed else "")

    table = pd.DataFrame({
        "switch": summary.switch,
        "optimizer": [optimizer_label(o) for o in summary.optimizer],
        "choice": [choice(row) for row in summary.itertuples()],
        **{label: [format_mean_std(m, s) for m, s in zip(summary[f"{key}_mean"], summary[f"{key}_std"])]
           for key, label in TABLE_METRICS.items()},
        "loss drop": [format_mean_std(m, s, 3) + ("" if t else " (did not train)")
                      for m, s, t in zip(summary.loss_drop_mean, summary.loss_drop_std, summary.trained)],
        "Avg vs official": summary.avg_acc_verdict,
        "Fgt vs official": summary.forgetting_verdict,
    })
    table.loc[len(table)] = {"switch": "zero-step control", "optimizer": "none", "choice": method_label(anchor.method),
                             **{label: format_mean_std(anchor[f"{key}_mean"], anchor[f"{key}_std"])
                                for key, label in TABLE_METRICS.items()},
                             "loss drop": "", "Avg vs official": "", "Fgt vs official": ""}
    return table


def official_side(value, official: bool) -> str:
    """A switch's value as the page names it: the official code's marked so, once (a value named `official` is
    already marked)."""
    return f"{value}" + (" (official)" if official and str(value) != "official" else "")


def switch_statements(summary: pd.DataFrame, anchor: pd.Series) -> list[str]:
    """Per switch and optimizer: each side against the official code's, and the official side against no
    training (`anchor`)."""
    lines = []
    for name, part in summary.groupby("switch", sort=False):
        for optimizer, rows in part.groupby("optimizer", sort=False):
            official = rows[rows.official].iloc[0]
            against_none = "did not train" if not official.trained else verdict(
                official.avg_acc_mean, official.avg_acc_std, anchor.avg_acc_mean, anchor.avg_acc_std)
            for row in rows[~rows.official].itertuples():
                if row.avg_acc_verdict == "did not train":
                    side = "this side" if not row.trained else "the official side"
                    lines.append(f"`{name}`, {optimizer_label(optimizer)}: {row.value} against "
                                 f"{_official_value(official.value)}: {side} **did not train** (its training loss does "
                                 "not fall beyond its spread): no verdict.")
                    continue
                lines.append(
                    f"`{name}`, {optimizer_label(optimizer)}: {row.value} against {_official_value(official.value)}: "
                    f"{row.avg_acc_mean - official.avg_acc_mean:+.2f} points of average accuracy "
                    f"({row.avg_acc_verdict}), {row.forgetting_mean - official.forgetting_mean:+.2f} points of "
                    f"forgetting ({row.forgetting_verdict}); "
                    f"the official side is {official.avg_acc_mean - anchor.avg_acc_mean:+.2f} points from the zero-step "
                    f"control ({against_none}).")
    return lines


def _official_value(value) -> str:
    return "the official side" if str(value) == "official" else f"the official {value}"


def zo_scope_statement(summary: pd.DataFrame) -> str:
    """Whether the official ZO scope (every tensor, EASE's stored prototypes too) raises forgetting."""
    scope = summary[summary.switch == "zo_scope"]
    official, ours = scope[scope.official].iloc[0], scope[~scope.official].iloc[0]
    if not (official.trained and ours.trained):
        return ("**Does the official ZO scope raise EASE's forgetting?** Not answered here: a side did not train, and "
                "low forgetting from learning nothing says nothing about the scope.")
    raised = verdict(official.forgetting_mean, official.forgetting_std, ours.forgetting_mean, ours.forgetting_std,
                     lower_is_better=True)
    return (f"**Does the official ZO scope raise EASE's forgetting?** Perturbing the stored prototypes gives "
            f"{format_mean_std(official.forgetting_mean, official.forgetting_std)} forgetting against "
            f"{format_mean_std(ours.forgetting_mean, ours.forgetting_std)} with the trainable scope: "
            + ("more forgetting, beyond the spread." if raised == "worse" else "less forgetting, beyond the spread."
               if raised == "better" else "within the spread, so not resolved at this scale.")
            + " The paper reports 15.64 for ZO-SGD against 7.32 for FO on CIFAR-100 (Table 1).")


def forgetting_formulas(runs: pd.DataFrame) -> pd.DataFrame:
    """Per method × optimizer × dataset: forgetting by PILOT's formula and by the best-before-the-end one,
    mean and std over seeds, from the same accuracy matrices."""
    from zeroflow_core.run.metrics import FORGETTING_FORMULAS, forgetting

    def matrix(m):
        return np.array([[np.nan if v is None else v for v in row] for row in m], dtype=float)

    tidy = runs.assign(**{f"forgetting_{f}": [forgetting(matrix(m), f) for m in runs.acc_matrix]
                          for f in FORGETTING_FORMULAS})
    return aggregate(tidy, metrics=[f"forgetting_{f}" for f in FORGETTING_FORMULAS])


def forgetting_formulas_table(formulas: pd.DataFrame) -> pd.DataFrame:
    """`forgetting_formulas` as shown: both formulas' mean ± std and the difference of their means."""
    return pd.DataFrame({
        "method": [method_label(m) for m in formulas.method],
        "optimizer": [optimizer_label(o) for o in formulas.optimizer],
        "dataset": [dataset_label(d) for d in formulas.dataset],
        "PILOT (ours now)": [format_mean_std(m, s) for m, s in zip(formulas.forgetting_pilot_mean,
                                                                   formulas.forgetting_pilot_std)],
        "best before the end": [format_mean_std(m, s) for m, s in zip(formulas.forgetting_before_final_mean,
                                                                      formulas.forgetting_before_final_std)],
        "difference": (formulas.forgetting_pilot_mean - formulas.forgetting_before_final_mean).round(2),
    })


def forgetting_formulas_statement(table: pd.DataFrame) -> str:
    """How often PILOT's formula gives the higher forgetting, from `forgetting_formulas_table`."""
    moved = table[table.difference > 0]
    return (f"PILOT's formula gives a higher forgetting in {len(moved)} of {len(table)} method × optimizer rows "
            + (f"(by up to {table.difference.max():.2f} points)" if len(moved) else
               "(no old task ended above its earlier best, so the two formulas agree here)")
            + "; it cannot give a lower one, since its maximum runs over more stages.")
