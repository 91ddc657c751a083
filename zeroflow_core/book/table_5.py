"""Table 5 of the ICML version: each enhancement (history, sparsity, the hybrid schedule) alone and all three
together, against plain ZO-SGD, FO-SGD and the zero-step control, from the enhancements sweep."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from zeroflow_core.book.ablations import settings_text
from zeroflow_core.book.report import (LOWER_IS_BETTER, TABLE_METRICS, bullets, format_mean_std, method_label,
                                       optimizer_label, verdict)
from zeroflow_core.optim.registry import OPTIMIZERS

# The setting that switches each enhancement of the ICML version on, and how its Table 5 names it: a variant of the
# enhancements sweep is labelled by the enhancements its settings switch on, so a label cannot contradict a setting.
ENHANCEMENTS = {"fo_epochs": "hybrid", "history": "history", "sparsity": "sparsity"}


def enhancements_of(settings: dict) -> list[str]:
    """The enhancements a variant's settings switch on, in Table 5's order."""
    return [name for key, name in ENHANCEMENTS.items() if settings.get(key)]


def variant_label(optimizer: str, settings: dict) -> str:
    """Table 5's name for a row: the optimizer alone, "+ <enhancement>", or "all three"."""
    on = enhancements_of(settings)
    if not on:
        return optimizer_label(optimizer)
    return "all three" if len(on) == len(ENHANCEMENTS) else " ".join(f"+ {name}" for name in on)


def paper_table_5(reference_dir) -> pd.DataFrame:
    """The ICML version's Table 5 (EASE + ZO-SGD on ImageNet-A, reference/table5_enhancements.csv): avg and last per
    configuration. The seed text has no Table 5."""
    path = Path(reference_dir) / "table5_enhancements.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the ICML version's Table 5 is missing (it ships in reference/)")
    paper = pd.read_csv(path)
    return paper.set_index("label")[["avg", "last"]].rename(columns={"avg": "Avg", "last": "Last"})


def table_5_claim(paper: pd.DataFrame) -> str:
    """The ICML version's claim on Table 5, with the rows its own table puts above FO-SGD computed from it."""
    fo = paper.loc["FO-SGD"]
    above = [label for label, row in paper.iterrows() if label not in ("FO-SGD", "ZO-SGD")
             and row.Avg > fo.Avg and row.Last > fo.Last]
    return ("the enhancements are complementary: each improves plain ZO-SGD, and combined they overtake backprop "
            f"(its table: above FO-SGD's {fo.Avg:.2f} / {fo.Last:.2f} on both Avg and Last: "
            f"{', '.join(above) or 'no row'}).")


def _split_rows(summary: pd.DataFrame, variants: dict) -> tuple[pd.Series | None, pd.Series | None, pd.DataFrame]:
    """(the plain forward-pass row, the backprop row, the forward-pass rows with an enhancement) of the sweep."""
    forward = summary[summary.optimizer.map(lambda o: OPTIMIZERS[o].forward_pass_only)]
    backprop = summary[~summary.optimizer.map(lambda o: OPTIMIZERS[o].forward_pass_only)]
    plain = forward[[not enhancements_of(variants[v]) for v in forward.value]]
    enhanced = forward[[bool(enhancements_of(variants[v])) for v in forward.value]]
    return (plain.iloc[0] if len(plain) else None, backprop.iloc[0] if len(backprop) else None, enhanced)


def _call(row: pd.Series, other: pd.Series | None, metric: str) -> str:
    if other is None:
        return "—"
    if not (row.trained and other.trained):
        return "did not train"
    return verdict(row[f"{metric}_mean"], row[f"{metric}_std"], other[f"{metric}_mean"], other[f"{metric}_std"],
                   lower_is_better=metric in LOWER_IS_BETTER)


def enhancement_table(summary: pd.DataFrame, anchor: pd.Series, variants: dict) -> pd.DataFrame:
    """The enhancements sweep in Table 5's order: the zero-step control, backprop, plain ZO, each enhancement and the
    combination, with mean ± std over seeds, the training-loss drop (and whether it trained), and each enhanced
    row's verdicts on average accuracy against plain ZO, against backprop and against the zero-step control."""
    plain, backprop, enhanced = _split_rows(summary, variants)
    rows = [{"row": f"{method_label(anchor.method)} without a step (zero-step control)",
             **{name: format_mean_std(anchor[f"{m}_mean"], anchor[f"{m}_std"]) for m, name in TABLE_METRICS.items()},
             "training-loss drop": "—", "settings": "—"}]
    for row in [r for r in (backprop, plain) if r is not None] + [r for _, r in enhanced.iterrows()]:
        settings = variants[row.value]
        entry = {"row": variant_label(row.optimizer, settings),
                 **{name: format_mean_std(row[f"{m}_mean"], row[f"{m}_std"]) for m, name in TABLE_METRICS.items()},
                 "training-loss drop": format_mean_std(row.loss_drop_mean, row.loss_drop_std, 3)
                 + ("" if row.trained else " (did not train)"),
                 "settings": settings_text(settings) or "the grid's"}
        if enhancements_of(settings):
            entry |= {"Avg against plain ZO": _call(row, plain, "avg_acc"),
                      "Avg against backprop": _call(row, backprop, "avg_acc"),
                      "Avg against zero-step": verdict(row.avg_acc_mean, row.avg_acc_std, anchor.avg_acc_mean,
                                                       anchor.avg_acc_std) if row.trained else "did not train"}
        rows.append(entry)
    return pd.DataFrame(rows).fillna("")


def enhancement_statements(summary: pd.DataFrame, anchor: pd.Series, variants: dict) -> list[str]:
    """What the enhancements sweep says, per enhanced row: against plain ZO (avg, last, forgetting), against backprop
    (avg, last), each called only beyond the spread and only between rows that trained; and whether plain ZO and
    backprop themselves trained, and by how much they beat the zero-step control."""
    plain, backprop, enhanced = _split_rows(summary, variants)
    lines = []
    for row in [r for r in (backprop, plain) if r is not None]:
        call = verdict(row.avg_acc_mean, row.avg_acc_std, anchor.avg_acc_mean, anchor.avg_acc_std)
        lines.append(f"{variant_label(row.optimizer, variants[row.value])}: training-loss drop "
                     f"{format_mean_std(row.loss_drop_mean, row.loss_drop_std, 3)} per task, "
                     + (f"trained; average accuracy {row.avg_acc_mean - anchor.avg_acc_mean:+.2f} points against the "
                        f"zero-step control ({call})." if row.trained else "**did not train**: no verdict."))
    for _, row in enhanced.iterrows():
        label = variant_label(row.optimizer, variants[row.value])
        if not row.trained:
            lines.append(f"{label}: **did not train** (its training loss does not fall beyond its spread): no verdict.")
            continue
        parts = []
        for other, name, metrics in ((plain, "plain ZO", TABLE_METRICS), (backprop, "backprop",
                                                                          {"avg_acc": "Avg", "last_acc": "Last"})):
            if other is None:
                continue
            calls = {metric_name: _call(row, other, metric) for metric, metric_name in metrics.items()}
            parts.append(f"against {name}: " + ", ".join(f"{metric_name} {call}" for metric_name, call in calls.items()))
        lines.append(f"{label} ({settings_text(variants[row.value])}): Avg {format_mean_std(row.avg_acc_mean, row.avg_acc_std)}; "
                     + "; ".join(parts) + ".")
    return lines


def table_5_text(paper: pd.DataFrame, summary: pd.DataFrame, anchor: pd.Series, variants: dict) -> str:
    """The closing text of the enhancements page (Markdown): the ICML version's claim, then ours."""
    return (f"**The paper's claim** (ICML version, Table 5): {table_5_claim(paper)}\n\n**Ours** (a difference is "
            "called only where it exceeds the two standard deviations together, and only between rows that trained):"
            "\n\n" + bullets(enhancement_statements(summary, anchor, variants)))
