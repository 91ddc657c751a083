"""The optimizers of the benchmark, one registry, one factory: the paper's nine, then the later papers' (FZOO, LOZO,
HiZOO, Sparse MeZO), flagged `beyond_paper`."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Iterable

import torch
from torch import nn

from zeroflow_core.optim.first_order import FirstOrderOptimizer
from zeroflow_core.optim.forward_grad import ForwardGradient
from zeroflow_core.optim.hizoo import HessianZerothOrder
from zeroflow_core.optim.hyper import taking
from zeroflow_core.optim.lozo import LowRankZerothOrder
from zeroflow_core.optim.sparse_mezo import SparseZerothOrder
from zeroflow_core.optim.zeroth_order import ZerothOrderOptimizer
from zeroflow_core.settings import Setting, check_values, defaults_of

SGD = ("lr", "momentum", "weight_decay")
ADAM = ("lr", "betas", "weight_decay")
ZO = ("zo_eps", "q", "seed", "direction", "one_sided", "history", "history_rule", "sparsity", "sparsity_mode",
      "fo_every", "batched", "max_sets_per_forward")
# what the later zeroth-order optimizers share with ours: two-sided Gaussian queries, no SGD momentum, history or
# random sparsity of their own
LATER_ZO = ("lr", "weight_decay", "zo_eps", "q", "seed", "fo_every", "batched", "max_sets_per_forward")


@dataclass(frozen=True)
class Display:
    """How the book shows an optimizer's rows: its label (the paper's name for it in Table 2 and the figures),
    its row of the paper's Table 1 (optimizer, strategy) and its colour in every figure."""

    label: str
    table1_row: tuple[str, str]
    colour: str


@dataclass(frozen=True)
class OptimizerSpec:
    """One optimizer of the benchmark: `build(params, model, **hyper)` makes it, and `settings` are the
    hyper-parameters it takes (declared in hyper.py) with its defaults."""

    name: str
    summary: str
    build: Callable
    display: Display
    settings: dict[str, Setting]
    family: str = "zeroth-order"  # one of FAMILIES
    beyond_paper: bool = False  # a later paper's optimizer, not one of the ZeroFlow paper's nine

    @property
    def defaults(self) -> dict:
        return defaults_of(self.settings)

    @property
    def hyper(self) -> tuple[str, ...]:
        return tuple(self.settings)

    @property
    def forward_pass_only(self) -> bool:
        return self.family != "backprop"


FAMILIES = ("backprop", "zeroth-order", "forward-grad")
# How the book's sentences name each family.
FAMILY_LABELS = {"backprop": "first-order", "zeroth-order": "zeroth-order", "forward-grad": "forward-gradient"}
# The row of a method that trains nothing (its runs take the optimizer `none`, config.NO_OPTIMIZER).
NO_TRAINING = Display("No training", ("—", "No training"), "black")


def _zo(rule: str, estimator: str):
    def build(params, model, **hyper):
        return ZerothOrderOptimizer(params, rule, model=model, estimator=estimator, **hyper)

    return build


def _fo(rule: str):
    def build(params, model, **hyper):
        return FirstOrderOptimizer(params, rule, model=model, **hyper)

    return build


def _forward_grad(params, model, **hyper):
    return ForwardGradient(params, model=model, **hyper)


def _later(cls):
    def build(params, model, **hyper):
        return cls(params, model=model, **hyper)

    return build


# Reference defaults of the official code: weight decay 5e-4, SGD momentum 0.9, ZO lr 1e-4 (SGD) / 1e-3 (Adam);
# the declared defaults (hyper.py) otherwise: Adam's betas (0.9, 0.999), ε = 1e-3, q = 1, no history, dense
# directions; Forward-Grad: plain SGD, lr 1e-3, no momentum, no weight decay, in train mode (its step, unlike
# the ZO steps, never switches the model to eval, so adapter dropout stays on).
_SGD = dict(momentum=0.9, weight_decay=5e-4)
_ADAM = dict(weight_decay=5e-4)

_SPECS = [
    OptimizerSpec("fo-sgd", "backprop SGD with momentum (the first-order reference)",
                  _fo("sgd"), Display("FO-SGD", ("SGD", "FO"), "#1f77b4"),
                  taking(SGD, lr=0.01, **_SGD), family="backprop"),
    OptimizerSpec("fo-adam", "backprop Adam (the first-order reference)",
                  _fo("adam"), Display("FO-Adam", ("Adam", "FO"), "#9467bd"),
                  taking(ADAM, lr=1e-3, **_ADAM), family="backprop"),
    OptimizerSpec("zo-sgd", "SPSA estimate with q queries, SGD with momentum",
                  _zo("sgd", "plain"), Display("ZO-SGD", ("SGD", "ZO"), "#ff7f0e"),
                  taking(SGD + ZO, lr=1e-4, **_SGD)),
    OptimizerSpec("zo-sgd-sign", "ZO-SGD on the sign of the estimate (sign_mode projected | elementwise)",
                  _zo("sgd", "sign"), Display("ZO-SGD-Sign", ("SGD", "Sign"), "#2ca02c"),
                  taking(SGD + ZO + ("sign_mode",), lr=1e-4, **_SGD)),
    OptimizerSpec("zo-sgd-conserve", "ZO-SGD keeping the best of θ, θ−Δ, θ+Δ (conserve_mode exact | reference)",
                  _zo("sgd", "conserve"), Display("ZO-SGD-Conserve", ("SGD", "Conserve"), "#d62728"),
                  taking(SGD + ZO + ("conserve_mode",), lr=1e-4, **_SGD)),
    OptimizerSpec("zo-adam", "SPSA estimate with q queries, Adam",
                  _zo("adam", "plain"), Display("ZO-Adam", ("Adam", "ZO"), "#8c564b"),
                  taking(ADAM + ZO, lr=1e-3, **_ADAM)),
    OptimizerSpec("zo-adam-sign", "ZO-Adam on the sign of the estimate (sign_mode projected | elementwise)",
                  _zo("adam", "sign"), Display("ZO-Adam-Sign", ("Adam", "Sign"), "#e377c2"),
                  taking(ADAM + ZO + ("sign_mode",), lr=1e-3, **_ADAM)),
    OptimizerSpec("zo-adam-conserve", "ZO-Adam keeping the best of θ, θ−Δ, θ+Δ (conserve_mode exact | reference)",
                  _zo("adam", "conserve"), Display("ZO-Adam-Conserve", ("Adam", "Conserve"), "#7f7f7f"),
                  taking(ADAM + ZO + ("conserve_mode",), lr=1e-3, **_ADAM)),
    OptimizerSpec("forward-grad", "forward-mode directional derivative (torch.func.jvp), SGD or Adam rule (base)",
                  _forward_grad, Display("Forward-Grad", ("-", "Forward"), "#17becf"),
                  taking(("base", "lr", "momentum", "betas", "weight_decay", "q", "seed", "direction", "mode",
                          "batched")),
                  family="forward-grad"),
    # beyond the paper: optimizers of later papers, run on the same protocol (Table 1's "beyond the paper" block)
    OptimizerSpec("fzoo", "FZOO (arXiv 2506.09034): q Rademacher one-sided queries in one batched forward, the step "
                  "divided by the std of the q losses; plain SGD, lr as FZOO's code (the paper's η·ε)",
                  _zo("sgd", "fzoo"), Display("FZOO", ("—", "FZOO, beyond the paper"), "#bcbd22"),
                  taking(SGD + ZO, lr=1e-5, momentum=0.0, weight_decay=0.0, q=8, direction="rademacher",
                         one_sided=True, batched=True), beyond_paper=True),
    OptimizerSpec("lozo", "LOZO (arXiv 2410.07698): two-sided queries along a low-rank U Vᵀ per matrix, V redrawn "
                  "every lazy_interval steps; the estimate c·UVᵀ/r (the paper's 1/r: LOZO's code omits it, so its lr is "
                  "ours / r; its RoBERTa script's rate 1e-6); low_rank_momentum > 0 is LOZO-M",
                  _later(LowRankZerothOrder), Display("LOZO", ("—", "LOZO, beyond the paper"), "#393b79"),
                  taking(LATER_ZO + ("rank", "lazy_interval", "low_rank_momentum"), lr=1e-6, weight_decay=0.0),
                  beyond_paper=True),
    OptimizerSpec("hizoo", "HiZOO (arXiv 2402.15173): two-sided queries scaled by a diagonal-Hessian preconditioner "
                  "D^{-1/2}, D an EMA (hessian_smooth) of |l+ + l− − 2·l0|/2ε²·D⊙z² from the same forwards plus L(θ); "
                  "plain SGD, lr of HiZOO's script (1e-5)",
                  _later(HessianZerothOrder), Display("HiZOO", ("—", "HiZOO, beyond the paper"), "#637939"),
                  taking(LATER_ZO + ("hessian_smooth",), lr=1e-5, weight_decay=0.0), beyond_paper=True),
    OptimizerSpec("sparse-mezo", "Sparse MeZO (arXiv 2402.15751): two-sided queries on the entries whose |θ| is below "
                  "a per-tensor threshold fixed at the first step (magnitude_sparsity of each tensor never perturbed), "
                  "the mask recomputed every step; plain SGD, lr of MeZO (S-MeZO's own is not in the text read)",
                  _later(SparseZerothOrder), Display("Sparse MeZO", ("—", "Sparse MeZO, beyond the paper"), "#ad494a"),
                  taking(LATER_ZO + ("magnitude_sparsity",), lr=1e-6, weight_decay=0.0), beyond_paper=True),
]
OPTIMIZERS: dict[str, OptimizerSpec] = {spec.name: spec for spec in _SPECS}


def optimizer_spec(name: str) -> OptimizerSpec:
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; known: {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name]


# A grid row beyond the optimizers: `<forward-pass optimizer>+head`, that optimizer with the classifier head trained
# by backprop (the run key head_optimizer: backprop, hybrid_head.py), a row of its own beside the optimizer's.
HEAD_ROW = "+head"


def grid_row(row: str) -> tuple[OptimizerSpec, dict]:
    """A grid row's optimizer and the run settings the row adds: a registry optimizer alone, or `<optimizer>+head`."""
    if not row.endswith(HEAD_ROW):
        return optimizer_spec(row), {}
    spec = optimizer_spec(row[: -len(HEAD_ROW)])
    if not spec.forward_pass_only:
        raise ValueError(f"grid row {row!r}: the head by backprop is a variant of a forward-pass optimizer, and "
                         f"{spec.name!r} trains by backprop")
    return spec, {"head_optimizer": "backprop"}


def row_spec(row: str) -> OptimizerSpec | None:
    """What a grid row is shown and grouped as: its optimizer's spec, or for `<optimizer>+head` that spec under the
    row's name and a display of its own, beyond the paper; None for a name that is neither (`none`, the control)."""
    try:
        spec, settings = grid_row(row)
    except ValueError:
        return None
    if not settings:
        return spec
    family, strategy = spec.display.table1_row
    display = Display(f"{spec.display.label} + BP head", (family, f"{strategy}, head by backprop (beyond the paper)"),
                      _lighter(spec.display.colour))
    return replace(spec, name=row, display=display, beyond_paper=True)


def _lighter(colour: str) -> str:
    """Halfway to white: the head-by-backprop row beside its optimizer's, in the same hue."""
    channels = [int(colour[i:i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{(c + 255) // 2:02x}" for c in channels)


def resolve_hyper(name: str, **hyper) -> dict:
    """The optimizer's defaults overridden by `hyper`, refusing a name the optimizer does not have and a value
    of the wrong type or range (settings.check_values), or that the optimizer cannot combine."""
    spec = optimizer_spec(name)
    resolved = {**spec.defaults, **check_values(hyper, spec.settings, f"optimizer {name!r}", error=ValueError)}
    # combinations (conserve_mode reference needs q = 1, ...) are checked by the constructor: build a probe, so a
    # bad one in params.yaml is refused before any run starts, not when its optimizer is built
    probe = nn.Module()
    probe.weight = nn.Parameter(torch.zeros(1))  # no random init: the global RNG stays untouched
    spec.build([probe.weight], probe, **resolved)
    return resolved


def backprop_counterpart(name: str, **hyper) -> str:
    """The first-order optimizer on the descent rule of `name` with `hyper` (fo-sgd for an SGD rule, fo-adam for
    Adam): the hybrid schedule's backprop phase."""
    probe = nn.Module()
    probe.weight = nn.Parameter(torch.zeros(1))
    rule = optimizer_spec(name).build([probe.weight], probe, **resolve_hyper(name, **hyper)).rule
    return f"fo-{rule}"


def create_optimizer(name: str, params: Iterable, model: nn.Module | None = None, **hyper):
    """Build a registered optimizer; `model` is needed by forward-grad and used by ZO for eval mode."""
    return optimizer_spec(name).build(params, model, **resolve_hyper(name, **hyper))
