"""The nine optimizers of the benchmark, one registry, one factory."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch
from torch import nn

from zeroflow_core.optim.first_order import FirstOrderOptimizer
from zeroflow_core.optim.forward_grad import ForwardGradient
from zeroflow_core.optim.zeroth_order import ZerothOrderOptimizer

SGD_HYPER = ("lr", "momentum", "weight_decay")
ADAM_HYPER = ("lr", "betas", "weight_decay")
ZO_HYPER = ("zo_eps", "q", "seed", "direction", "one_sided", "history", "history_rule", "sparsity", "sparsity_mode",
            "fo_every")


@dataclass(frozen=True)
class Display:
    """How the book shows an optimizer's rows: its label (the paper's name for it in Table 2 and the figures),
    its row of the paper's Table 1 (optimizer, strategy) and its colour in every figure."""

    label: str
    table1_row: tuple[str, str]
    colour: str


@dataclass(frozen=True)
class OptimizerSpec:
    name: str
    summary: str
    build: Callable
    display: Display
    defaults: dict = field(default_factory=dict)
    hyper: tuple[str, ...] = ()
    family: str = "zeroth-order"  # one of FAMILIES

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


# Reference defaults of the official code: weight decay 5e-4, ZO lr 1e-4 (SGD) / 1e-3 (Adam),
# ε = 1e-3, q = 1; Forward-Grad: plain SGD, lr 1e-3, no weight decay, in train mode (its step, unlike the ZO
# steps, never switches the model to eval, so adapter dropout stays on).
_SGD = dict(momentum=0.9, weight_decay=5e-4)
_ADAM = dict(betas=(0.9, 0.999), weight_decay=5e-4)
_ZO = dict(zo_eps=1e-3, q=1, seed=0, direction="gaussian", one_sided=False, history=0.0, history_rule="official",
           sparsity=0.0, sparsity_mode="exact", fo_every=0)

_SPECS = [
    OptimizerSpec("fo-sgd", "backprop SGD with momentum (the first-order reference)",
                  _fo("sgd"), Display("FO-SGD", ("SGD", "FO"), "#1f77b4"),
                  dict(lr=0.01, **_SGD), SGD_HYPER, family="backprop"),
    OptimizerSpec("fo-adam", "backprop Adam (the first-order reference)",
                  _fo("adam"), Display("FO-Adam", ("Adam", "FO"), "#9467bd"),
                  dict(lr=1e-3, **_ADAM), ADAM_HYPER, family="backprop"),
    OptimizerSpec("zo-sgd", "SPSA estimate with q queries, SGD with momentum",
                  _zo("sgd", "plain"), Display("ZO-SGD", ("SGD", "ZO"), "#ff7f0e"),
                  dict(lr=1e-4, **_SGD, **_ZO), SGD_HYPER + ZO_HYPER),
    OptimizerSpec("zo-sgd-sign", "ZO-SGD on the sign of the estimate (sign_mode projected | elementwise)",
                  _zo("sgd", "sign"), Display("ZO-SGD-Sign", ("SGD", "Sign"), "#2ca02c"),
                  dict(lr=1e-4, **_SGD, **_ZO, sign_mode="projected"),
                  SGD_HYPER + ZO_HYPER + ("sign_mode",)),
    OptimizerSpec("zo-sgd-conserve", "ZO-SGD keeping the best of θ, θ−Δ, θ+Δ (conserve_mode exact | reference)",
                  _zo("sgd", "conserve"), Display("ZO-SGD-Conserve", ("SGD", "Conserve"), "#d62728"),
                  dict(lr=1e-4, **_SGD, **_ZO, conserve_mode="exact"),
                  SGD_HYPER + ZO_HYPER + ("conserve_mode",)),
    OptimizerSpec("zo-adam", "SPSA estimate with q queries, Adam",
                  _zo("adam", "plain"), Display("ZO-Adam", ("Adam", "ZO"), "#8c564b"),
                  dict(lr=1e-3, **_ADAM, **_ZO), ADAM_HYPER + ZO_HYPER),
    OptimizerSpec("zo-adam-sign", "ZO-Adam on the sign of the estimate (sign_mode projected | elementwise)",
                  _zo("adam", "sign"), Display("ZO-Adam-Sign", ("Adam", "Sign"), "#e377c2"),
                  dict(lr=1e-3, **_ADAM, **_ZO, sign_mode="projected"),
                  ADAM_HYPER + ZO_HYPER + ("sign_mode",)),
    OptimizerSpec("zo-adam-conserve", "ZO-Adam keeping the best of θ, θ−Δ, θ+Δ (conserve_mode exact | reference)",
                  _zo("adam", "conserve"), Display("ZO-Adam-Conserve", ("Adam", "Conserve"), "#7f7f7f"),
                  dict(lr=1e-3, **_ADAM, **_ZO, conserve_mode="exact"),
                  ADAM_HYPER + ZO_HYPER + ("conserve_mode",)),
    OptimizerSpec("forward-grad", "forward-mode directional derivative (torch.func.jvp), SGD or Adam rule (base)",
                  _forward_grad, Display("Forward-Grad", ("-", "Forward"), "#17becf"),
                  dict(base="sgd", lr=1e-3, momentum=0.0, betas=(0.9, 0.999), weight_decay=0.0,
                                      q=1, seed=0, direction="gaussian", mode="train"),
                  ("base", "lr", "momentum", "betas", "weight_decay", "q", "seed", "direction", "mode"),
                  family="forward-grad"),
]
OPTIMIZERS: dict[str, OptimizerSpec] = {spec.name: spec for spec in _SPECS}


def optimizer_spec(name: str) -> OptimizerSpec:
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; known: {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name]


def resolve_hyper(name: str, **hyper) -> dict:
    """The optimizer's defaults overridden by `hyper`, refusing names the optimizer does not have."""
    spec = optimizer_spec(name)
    unknown = sorted(set(hyper) - set(spec.hyper))
    if unknown:
        raise ValueError(f"optimizer {name!r} has no hyper-parameter {', '.join(map(repr, unknown))}; "
                         f"it takes: {', '.join(spec.hyper)}")
    for key, value in hyper.items():
        default = spec.defaults[key]
        expected = (int, float) if isinstance(default, float) else (list, tuple) if isinstance(default, tuple) \
            else type(default)
        if not isinstance(value, expected) or isinstance(value, bool) != isinstance(default, bool):
            raise ValueError(f"optimizer {name!r}: hyper-parameter {key!r} must be {type(default).__name__} "
                             f"like its default {default!r}, got {value!r}")
    resolved = {**spec.defaults, **hyper}
    if "betas" in resolved:
        resolved["betas"] = tuple(resolved["betas"])
    # the constructors hold the range checks (ε > 0, q >= 1, r in [0, 1), ...): run them on a probe, so a
    # bad value in params.yaml is refused before any run starts, not when its optimizer is built
    probe = nn.Module()
    probe.weight = nn.Parameter(torch.zeros(1))  # no random init: the global RNG stays untouched
    spec.build([probe.weight], probe, **resolved)
    return resolved


def create_optimizer(name: str, params: Iterable, model: nn.Module | None = None, **hyper):
    """Build a registered optimizer; `model` is needed by forward-grad and used by ZO for eval mode."""
    return optimizer_spec(name).build(params, model, **resolve_hyper(name, **hyper))
