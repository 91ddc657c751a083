"""The Claims page: one row per claim of the paper, with this build's verdict, the numbers behind it and its page.

Every verdict is computed from the runs by the rules of `trained.trained` and `report.verdict`:
- "confirmed" / "refuted": the comparison the claim makes holds, or is reversed, beyond the two spreads together;
- "within the spread": the rows differ by less than that (for a claim of closeness, "confirmed");
- "did not train": a row the claim needs did not lower its training loss beyond its spread over seeds, so its
  numbers say nothing about its optimizer;
- "not testable here": what the claim needs was not measured at this scale (said why).
Each function takes the tables the pages already compute and returns one `Claim`; `claims_table` lists them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from zeroflow_core.book.report import verdict
from zeroflow_core.book.report import aggregate, format_mean_std, method_label, optimizer_label
from zeroflow_core.book.trained import DID_NOT_TRAIN, trained
from zeroflow_core.optim.registry import OPTIMIZERS, row_spec
from zeroflow_core.run.config import NO_OPTIMIZER

CONFIRMED, REFUTED, WITHIN, UNTESTABLE = "confirmed", "refuted", "within the spread", "not testable here"
VERDICTS = (CONFIRMED, REFUTED, WITHIN, DID_NOT_TRAIN, UNTESTABLE)


@dataclass(frozen=True)
class Claim:
    claim: str     # the paper's claim, in a few words
    paper: str     # where the paper makes it
    verdict: str   # one of VERDICTS
    numbers: str   # what the verdict rests on
    page: str      # the page of the book that shows it (a document name of the book)


def _family(optimizer: str) -> str | None:
    spec = row_spec(optimizer)
    return spec.family if spec else None


def _mean_std(row, metric: str = "avg_acc") -> str:
    return format_mean_std(row[f"{metric}_mean"], row[f"{metric}_std"])


def _rows(runs: pd.DataFrame, method: str) -> pd.DataFrame:
    """One method's rows, aggregated over seeds, with their training status."""
    from zeroflow_core.book.trained import training

    summary = aggregate(runs[runs.method == method]).merge(
        training(runs[runs.method == method])[["method", "optimizer", "dataset", "loss_drop_mean", "status"]],
        on=["method", "optimizer", "dataset"])
    summary["family"] = summary.optimizer.map(_family)
    return summary


# the paper's first-order rows and the zeroth-order rows on the same descent rule
FO_ZO_PAIRS = (("fo-sgd", "zo-sgd"), ("fo-adam", "zo-adam"))


def zo_close_to_fo(runs: pd.DataFrame, method: str) -> Claim:
    """Each zeroth-order row against the first-order row on its descent rule (ZO-SGD against FO-SGD, ZO-Adam against
    FO-Adam), on average accuracy: confirmed when no pair is below beyond the spread, refuted when one is."""
    rows = _rows(runs, method).set_index("optimizer")
    claim, paper = f"ZO comes close to FO on {method_label(method)}", "Table 1, section 5"
    pairs = [(fo, zo) for fo, zo in FO_ZO_PAIRS if fo in rows.index and zo in rows.index]
    if not pairs:
        return Claim(claim, paper, UNTESTABLE, "the grid has no FO and ZO rows on one descent rule", "table_1")
    untrained = [name for pair in pairs for name in pair if rows.loc[name, "status"] == DID_NOT_TRAIN]
    if untrained:
        return Claim(claim, paper, DID_NOT_TRAIN, f"{', '.join(map(optimizer_label, untrained))} did not train",
                     "table_1")
    calls, parts = [], []
    for fo, zo in pairs:
        a, b = rows.loc[zo], rows.loc[fo]
        call = verdict(a.avg_acc_mean, a.avg_acc_std, b.avg_acc_mean, b.avg_acc_std)
        calls.append(call)
        parts.append(f"{optimizer_label(zo)} {_mean_std(a)} against {optimizer_label(fo)} {_mean_std(b)} ({call})")
    control = rows.loc[NO_OPTIMIZER] if NO_OPTIMIZER in rows.index else None
    numbers = "; ".join(parts) + (f"; the zero-step control {_mean_std(control)}" if control is not None else "")
    return Claim(claim, paper, REFUTED if "worse" in calls else CONFIRMED, numbers, "table_1")


def choice_matters_little(runs: pd.DataFrame, method: str) -> Claim:
    """The best and the worst trained forward-pass row of `method`: within the spread, the choice matters little."""
    rows = _rows(runs, method)
    claim, paper = f"the choice of forward-pass optimizer matters little ({method_label(method)})", "section 5"
    forward = rows[rows.family.isin(["zeroth-order", "forward-grad"])]
    done = forward[forward.status == "trained"]
    if len(done) < 2:
        return Claim(claim, paper, DID_NOT_TRAIN, f"{len(done)} of {len(forward)} forward-pass rows trained: "
                     "nothing to compare", "table_1")
    best, worst = done.loc[done.avg_acc_mean.idxmax()], done.loc[done.avg_acc_mean.idxmin()]
    call = verdict(best.avg_acc_mean, best.avg_acc_std, worst.avg_acc_mean, worst.avg_acc_std)
    numbers = (f"among the {len(done)} trained forward-pass rows, {optimizer_label(best.optimizer)} {_mean_std(best)} "
               f"and {optimizer_label(worst.optimizer)} {_mean_std(worst)}")
    return Claim(claim, paper, CONFIRMED if call == "within the spread" else REFUTED, numbers, "table_1")


def zo_forgets_less(runs: pd.DataFrame, method: str) -> Claim:
    """ZO-SGD's forgetting against FO-SGD's, each trained."""
    rows = _rows(runs, method).set_index("optimizer")
    claim, paper = f"ZO forgets less than FO ({method_label(method)})", "sections 1 and 5, Table 1"
    if not {"zo-sgd", "fo-sgd"} <= set(rows.index):
        return Claim(claim, paper, UNTESTABLE, "the grid lacks ZO-SGD or FO-SGD", "table_1")
    zo, fo = rows.loc["zo-sgd"], rows.loc["fo-sgd"]
    if DID_NOT_TRAIN in (zo.status, fo.status):
        return Claim(claim, paper, DID_NOT_TRAIN, "ZO-SGD or FO-SGD did not train", "table_1")
    call = verdict(zo.forgetting_mean, zo.forgetting_std, fo.forgetting_mean, fo.forgetting_std, lower_is_better=True)
    numbers = (f"forgetting ZO-SGD {_mean_std(zo, 'forgetting')} against FO-SGD {_mean_std(fo, 'forgetting')}; "
               f"average accuracy {_mean_std(zo)} against {_mean_std(fo)}")
    return Claim(claim, paper, {"better": CONFIRMED, "worse": REFUTED}.get(call, WITHIN), numbers, "table_1")


def _own_steps(efficiency: pd.DataFrame) -> pd.DataFrame:
    """Table 2's rows of each optimizer's own step: without the hybrid-head rows (head by backprop), which measure
    the same optimizer again."""
    if "head_optimizer" not in efficiency:
        return efficiency
    return efficiency[efficiency.head_optimizer.fillna("same") == "same"]


def memory_claim(efficiency: pd.DataFrame) -> Claim:
    """FO-SGD's peak memory over ZO-SGD's (q = 1) on the largest model measured; the claim is about ViT-B/16."""
    claim, paper = "ZO needs about 5× less memory than FO", "Table 2 (ViT-B/16, batch 48, GPU)"
    efficiency = _own_steps(efficiency)
    rows = efficiency[(efficiency.optimizer.isin(["fo-sgd", "zo-sgd"])) & (efficiency.q.fillna(1) == 1)]
    models = [m for m in ("vit-b16", "vit-b16-in21k-ft-in1k") if m in set(rows.model)]
    if not models:
        return Claim(claim, paper, UNTESTABLE, "ViT-B/16 was not measured (`efficiency.models`): the smoke model's "
                     "activations are too small a share of its memory to test a claim about ViT-B/16", "table_2")
    part = rows[rows.model == models[0]].set_index("optimizer")
    ratio = part.loc["fo-sgd", "peak_memory_mb"] / part.loc["zo-sgd", "peak_memory_mb"]
    numbers = (f"{models[0]}, batch {int(part.loc['zo-sgd', 'batch_size'])}: FO-SGD {part.loc['fo-sgd', 'peak_memory_mb']:.0f} MB "
               f"against ZO-SGD {part.loc['zo-sgd', 'peak_memory_mb']:.0f} MB, {ratio:.2f}× (paper 5.0×)")
    return Claim(claim, paper, CONFIRMED if ratio >= 4.5 else REFUTED, numbers, "table_2")


def epoch_time_claim(efficiency: pd.DataFrame) -> Claim:
    """ZO-SGD at q = 1 against FO-SGD per step (an epoch has as many steps for both), on the largest model measured:
    the claim is about ViT-B/16, where a forward is most of the cost; the smaller models are quoted beside."""
    claim, paper = "a ZO epoch at q = 1 is shorter than FO's", "Table 2"
    efficiency = _own_steps(efficiency)
    rows = efficiency[(efficiency.optimizer.isin(["fo-sgd", "zo-sgd"])) & (efficiency.q.fillna(1) == 1)]
    ratios = {}
    for model, part in rows.groupby("model", sort=False):
        part = part.set_index("optimizer")
        if {"fo-sgd", "zo-sgd"} <= set(part.index):
            ratios[model] = part.loc["zo-sgd", "step_seconds"] / part.loc["fo-sgd", "step_seconds"]
    if not ratios:
        return Claim(claim, paper, UNTESTABLE, "FO-SGD and ZO-SGD were not measured on one model", "table_2")
    largest = next((m for m in ("vit-b16", "vit-b16-in21k-ft-in1k") if m in ratios), None)
    numbers = "; ".join(f"{model}: a ZO-SGD step takes {ratio:.2f}× FO-SGD's" for model, ratio in ratios.items())
    if largest is None:
        return Claim(claim, paper, UNTESTABLE, numbers + " (ViT-B/16 not measured: on a small model a ZO step's "
                     "bookkeeping weighs against its two forwards)", "table_2")
    return Claim(claim, paper, CONFIRMED if ratios[largest] < 1 else REFUTED, numbers, "table_2")


def more_queries_help(summary: pd.DataFrame, optimizer: str = "zo-sgd") -> Claim:
    """Figure 5: the largest q against the smallest for `optimizer`, both trained (ablations.ablation_summary)."""
    claim, paper = f"more queries help ({optimizer_label(optimizer)})", "Figure 5"
    part = summary[summary.optimizer == optimizer].sort_values("value")
    if part.empty:
        return Claim(claim, paper, UNTESTABLE, "the q sweep has no such optimizer", "figure_5")
    low, high = part.iloc[0], part.iloc[-1]
    untrained = [f"q = {row.value:g}" for row in (low, high) if not row.trained]
    if untrained:
        return Claim(claim, paper, DID_NOT_TRAIN, f"{', '.join(untrained)} did not train", "figure_5")
    call = verdict(high.avg_acc_mean, high.avg_acc_std, low.avg_acc_mean, low.avg_acc_std)
    numbers = (f"q = {high.value:g} {_mean_std(high)} against q = {low.value:g} {_mean_std(low)} average accuracy; "
               f"training-loss drop {high.loss_drop_mean:+.3f} against {low.loss_drop_mean:+.3f}")
    return Claim(claim, paper, {"better": CONFIRMED, "worse": REFUTED}.get(call, WITHIN), numbers, "figure_5")


def enhancement_helps(summary: pd.DataFrame, matched: pd.DataFrame, name: str, page: str, paper: str,
                      hyper: str) -> Claim:
    """Tables 3–4: the best trained value other than the first (plain ZO-SGD) against the first, and against its
    step-matched control (plain ZO-SGD at the rate whose mean step equals that value's, ablations.load_matched):
    confirmed only when it beats both beyond the spread."""
    claim = f"{name} helps"
    part = summary.sort_values("value")
    plain, others = part.iloc[0], part.iloc[1:]
    if not plain.trained:
        return Claim(claim, paper, DID_NOT_TRAIN, f"plain ZO-SGD ({hyper} = {plain.value:g}) did not train", page)
    others = others[others.trained]
    if others.empty:
        return Claim(claim, paper, DID_NOT_TRAIN, f"no {hyper} > {plain.value:g} trained", page)
    best = others.loc[others.avg_acc_mean.idxmax()]
    against_plain = verdict(best.avg_acc_mean, best.avg_acc_std, plain.avg_acc_mean, plain.avg_acc_std)
    numbers = f"best {hyper} = {best.value:g}: {_mean_std(best)} against plain {_mean_std(plain)} ({against_plain})"
    control = matched[matched.value == best.value] if len(matched) else matched
    against_step = None
    if len(control):
        c = control.iloc[0]
        against_step = verdict(best.avg_acc_mean, best.avg_acc_std, c.avg_acc_mean, c.avg_acc_std)
        numbers += f"; against its step-matched control {_mean_std(c)} ({against_step})"
    if against_plain == "worse":
        return Claim(claim, paper, REFUTED, numbers, page)
    if against_plain == "better" and against_step == "better":
        return Claim(claim, paper, CONFIRMED, numbers, page)
    return Claim(claim, paper, WITHIN, numbers, page)


def enhancements_beat_fo(summary: pd.DataFrame, variants: dict) -> list[Claim]:
    """The ICML version's Table 5: the hybrid schedule alone, and the enhancements combined, against backprop
    (ablations.ablation_summary of the enhancements sweep; a row is the hybrid or the combination by the enhancements
    its settings switch on, table_5.enhancements_of): confirmed when it beats FO beyond the spread on average
    accuracy, refuted when FO beats it."""
    from zeroflow_core.book.table_5 import ENHANCEMENTS, enhancements_of, variant_label

    paper, page = "ICML version (arXiv 2501.01045v4), Table 5", "table_5"
    backprop = summary[~summary.optimizer.map(lambda o: OPTIMIZERS[o].forward_pass_only)]
    wanted = {"the hybrid schedule": ["hybrid"], "the enhancements combined": list(ENHANCEMENTS.values())}
    found = []
    for what, on in wanted.items():
        claim = f"{what} beats FO"
        rows = summary[[enhancements_of(variants[v]) == on for v in summary.value]]
        if rows.empty or backprop.empty:
            found.append(Claim(claim, paper, UNTESTABLE, "the enhancements sweep has no such row or no backprop row",
                               page))
            continue
        row, fo = rows.iloc[0], backprop.iloc[0]
        label = variant_label(row.optimizer, variants[row.value])
        untrained = [name for name, r in ((label, row), (optimizer_label(fo.optimizer), fo)) if not r.trained]
        if untrained:
            found.append(Claim(claim, paper, DID_NOT_TRAIN, f"{', '.join(untrained)} did not train", page))
            continue
        call = verdict(row.avg_acc_mean, row.avg_acc_std, fo.avg_acc_mean, fo.avg_acc_std)
        numbers = (f"{label} {_mean_std(row)} against {optimizer_label(fo.optimizer)} {_mean_std(fo)} average "
                   f"accuracy; last {_mean_std(row, 'last_acc')} against {_mean_std(fo, 'last_acc')}")
        found.append(Claim(claim, paper, {"better": CONFIRMED, "worse": REFUTED}.get(call, WITHIN), numbers, page))
    return found


def beyond_paper_claims(runs: pd.DataFrame, method: str) -> list[Claim]:
    """The grid's rows beyond the paper, each on its own paper's claim read on this protocol: a later optimizer
    against ZO-SGD (the MeZO-style estimate each improves on), `<optimizer>+head` against its optimizer alone (ZO-FC:
    the head by backprop restores what ZO costs in plasticity); on average accuracy, only between rows that trained."""
    from zeroflow_core.optim.hybrid_head import ZO_FC
    from zeroflow_core.optim.registry import grid_row

    rows = _rows(runs, method).set_index("optimizer")
    found = []
    for row in rows.index:
        spec = row_spec(row)
        if spec is None or not spec.beyond_paper:
            continue
        base, settings = grid_row(row)
        against = base.name if settings else "zo-sgd"
        cited = re.search(r"arXiv \d{4}\.\d{4,5}", base.summary)
        paper = ZO_FC if settings else f"{spec.display.label}, {cited.group(0) if cited else 'its paper'}"
        claim = f"{optimizer_label(row)} beats {optimizer_label(against)} ({method_label(method)})"
        if against not in rows.index:
            found.append(Claim(claim, paper, UNTESTABLE, f"the grid has no {optimizer_label(against)} row", "table_1"))
            continue
        mine, other = rows.loc[row], rows.loc[against]
        untrained = [optimizer_label(name) for name, r in ((row, mine), (against, other)) if r.status == DID_NOT_TRAIN]
        if untrained:
            found.append(Claim(claim, paper, DID_NOT_TRAIN, f"{', '.join(untrained)} did not train", "table_1"))
            continue
        call = verdict(mine.avg_acc_mean, mine.avg_acc_std, other.avg_acc_mean, other.avg_acc_std)
        numbers = (f"{optimizer_label(row)} {_mean_std(mine)} against {optimizer_label(against)} {_mean_std(other)} "
                   f"average accuracy; forgetting {_mean_std(mine, 'forgetting')} against "
                   f"{_mean_std(other, 'forgetting')}")
        found.append(Claim(claim, paper, {"better": CONFIRMED, "worse": REFUTED}.get(call, WITHIN), numbers, "table_1"))
    return found


def smoother_claim(volatility: pd.DataFrame, moves: pd.DataFrame) -> Claim:
    """Figure 7: ZO-SGD's new-task held-out loss more volatile than FO-SGD's, per unit of how far it moved."""
    claim, paper = "ZO's path is more volatile than FO's", "Figure 7"
    need = {"zo-sgd", "fo-sgd"}
    moved = moves[(moves.which == "new") & moves.optimizer.isin(need)].set_index("optimizer")
    if not need <= set(moved.index):
        return Claim(claim, paper, UNTESTABLE, "Figure 7 has no FO-SGD and ZO-SGD runs", "figure_7")
    still = [o for o in sorted(need) if not trained(-moved.loc[o, "change_mean"], moved.loc[o, "change_std"])]
    if still:
        return Claim(claim, paper, DID_NOT_TRAIN, f"the held-out loss of {', '.join(map(optimizer_label, still))} does "
                     "not fall beyond its spread within a task", "figure_7")
    rows = volatility[(volatility.which == "new") & volatility.optimizer.isin(need)].set_index("optimizer")
    zo, fo = rows.loc["zo-sgd"], rows.loc["fo-sgd"]
    call = verdict(zo.relative_volatility_mean, zo.relative_volatility_std, fo.relative_volatility_mean,
                   fo.relative_volatility_std)
    numbers = (f"change between records per unit of the loss's fall within a task: ZO-SGD "
               f"{format_mean_std(zo.relative_volatility_mean, zo.relative_volatility_std)} against FO-SGD "
               f"{format_mean_std(fo.relative_volatility_mean, fo.relative_volatility_std)}")
    return Claim(claim, paper, {"better": CONFIRMED, "worse": REFUTED}.get(call, WITHIN), numbers, "figure_7")


def claims_table(claims: list[Claim]) -> pd.DataFrame:
    """The Claims page's table (HTML cells): claim, where the paper makes it, the verdict, its numbers, and a link to
    the page of the book that shows them (the built pages sit side by side: <page>.html)."""
    def link(page: str) -> str:
        return f'<a href="{page}.html">{page.replace("_", " ").capitalize()}</a>'

    return pd.DataFrame({"claim": [c.claim for c in claims], "the paper": [c.paper for c in claims],
                         "verdict here": [f"<b>{c.verdict}</b>" for c in claims], "numbers": [c.numbers for c in claims],
                         "page": [link(c.page) for c in claims]})


def verdict_counts(claims: list[Claim]) -> str:
    counts = pd.Series([c.verdict for c in claims]).value_counts()
    return ", ".join(f"{n} {v}" for v, n in counts.items())
