"""Every optimizer hyper-parameter, declared once: what it means, which values it takes, and whether it may
differ between param groups.

The optimizers keep all of them in `defaults` (as torch.optim does), so every param group holds every
hyper-parameter of its optimizer and `state_dict()` saves them; `check_group` checks a group when it is added
(the constructor's groups included). The registry (registry.py) takes its optimizers' settings from here,
with each optimizer's own defaults.

Per group, read by the step from each parameter's group: the numbers that shape one parameter's update —
lr, momentum, betas, weight_decay, eps, history (its mixing recurrence runs per parameter) and sparsity (its
mask is drawn per parameter); of the later optimizers, LOZO-M's low_rank_momentum, HiZOO's hessian_smooth and
Sparse MeZO's magnitude_sparsity, each a per-parameter recurrence or mask.

Step-wide (STEP_WIDE), one value in every group: a zeroth-order step evaluates the loss once per query with
every parameter perturbed together, so the perturbation (zo_eps, q, seed, direction; LOZO's rank and
lazy_interval), the evaluations
(one_sided, conserve_mode), the schedule (fo_every) and forward-grad's forward passes (q, seed, direction,
mode) cannot differ between groups. The remaining switches between variants (sign_mode, history_rule,
sparsity_mode, base) could, but a mix is an estimator that neither the paper nor the official code has.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Mapping

from zeroflow_core.optim.directions import DIRECTIONS
from zeroflow_core.optim.rules import RULES
from zeroflow_core.settings import Setting, check_values, declared, is_number

SIGN_MODES = ("projected", "elementwise")
CONSERVE_MODES = ("exact", "reference")
HISTORY_RULES = ("official", "ema_mix")
SPARSITY_MODES = ("exact", "official")
FORWARD_MODES = ("train", "eval")


def _positive(value) -> bool:
    return value > 0


def _non_negative(value) -> bool:
    return value >= 0


def _fraction(value) -> bool:
    return 0 <= value < 1


def _two_fractions(value) -> bool:
    return len(value) == 2 and all(is_number(b) and 0 <= b < 1 for b in value)


def _at_least_one(value) -> bool:
    return value >= 1


# The descent rule's (rules.py); every optimizer's groups hold all of them, whichever rule reads them.
DESCENT = declared(
    Setting("lr", 1e-3, "step size (0 switches the step off: the run then equals its zero-step control)",
            check=_non_negative, requirement="must be >= 0"),
    Setting("momentum", 0.0, "SGD momentum (dampening 0, no Nesterov, as torch.optim.SGD)",
            check=_fraction, requirement="must be in [0, 1)"),
    Setting("betas", (0.9, 0.999), "Adam's decay rates of the first and second moment estimates",
            check=_two_fractions, requirement="must be two numbers in [0, 1)"),
    Setting("weight_decay", 0.0, "L2 penalty added to the gradient or estimate (not decoupled)",
            check=_non_negative, requirement="must be >= 0"),
    Setting("eps", 1e-8, "Adam's ε, added to the denominator", check=_positive, requirement="must be > 0"),
)

# The random directions, shared by the zeroth-order estimate and forward-grad.
DIRECTION_STREAM = declared(
    Setting("batched", False,
            "evaluate a step's queries in one forward (zeroth-order: its 2q, or q + 1, perturbed losses; forward-grad: "
            "its q tangents): the trainable tensors are stacked per query and the frozen layers see the copies of the "
            "batch as one batch (models/parameter_sets.py). The same directions and, up to float rounding, the same "
            "estimate as one forward per query, to which a closure that cannot evaluate parameter sets falls back"),
    Setting("q", 1, "queries per step: random directions whose estimates are averaged",
            check=_at_least_one, requirement="must be an integer >= 1"),
    Setting("seed", 0, "seed of the direction stream (a run derives one per task from its seed)"),
    Setting("direction", "gaussian", "distribution of the directions' entries", choices=DIRECTIONS),
)

ZEROTH_ORDER_ONLY = declared(
    Setting("zo_eps", 1e-3, "perturbation scale ε of the finite differences", check=_positive,
            requirement="must be > 0"),
    Setting("one_sided", False, "(L(θ+εz) − L(θ))/ε with L(θ) shared by the queries, instead of "
                                "(L(θ+εz) − L(θ−εz))/2ε"),
    Setting("history", 0.0, "historical mixing weight p of the directions (0: none)", check=_fraction,
            requirement="must be in [0, 1)"),
    Setting("history_rule", "official",
            "official: h ← p·h + (1 − p)·z per query from h = z, and the step follows h (INFTY's "
            "set_estimated_grad with alpha = p, the paper's equation); ema_mix: this companion's earlier rule "
            "(1 − p)·z + p·EMA₀.₉(z), kept only to measure what the correction changed", choices=HISTORY_RULES),
    Setting("sparsity", 0.0, "ratio r of the fixed sparse mask on the directions, redrawn at task boundaries "
                             "(0: dense)", check=_fraction, requirement="must be in [0, 1)"),
    Setting("sparsity_mode", "exact",
            "exact: the mask zeroes r of each direction; official: Φ(r) of it, as INFTY's mask, which compares "
            "a standard normal draw with r (so r = 0.1 already zeroes 54%)", choices=SPARSITY_MODES),
    Setting("fo_every", 0, "take an exact (backprop) step every k-th step (0: never)", check=_non_negative,
            requirement="must be an integer >= 0"),
    Setting("max_sets_per_forward", 0,
            "with batched: at most this many perturbations per forward, which bounds the activation memory to that "
            "many copies of the batch (0: all of a step's perturbations in one forward)", check=_non_negative,
            requirement="must be an integer >= 0"),
    Setting("sign_mode", "projected",
            "Sign variants: projected steps along sign(d_j)·z_j (the official code), elementwise along "
            "sign(ĝ) (the paper's equation)", choices=SIGN_MODES),
    Setting("conserve_mode", "exact",
            "Conserve variants: exact keeps the best of θ, θ − Δ, θ + Δ and commits the rule's state once; "
            "reference replays the official sequence of three rule steps (q = 1, no history)",
            choices=CONSERVE_MODES),
)

FORWARD_GRAD_ONLY = declared(
    Setting("base", "sgd", "descent rule fed with the estimate", choices=RULES),
    Setting("mode", "train",
            "train: the model's mode as the training loop set it (dropout on), as INFTY's forward_grad_step, "
            "which unlike its ZO steps never calls model.eval(); eval: dropout off, as the ZO steps",
            choices=FORWARD_MODES),
)

# Beyond the paper: what the later zeroth-order optimizers add to the estimate (each in its own file of optim/).
LOZO_ONLY = declared(
    Setting("rank", 4, "LOZO: rank r of each matrix's perturbation U Vᵀ (LOZO's RoBERTa script: 4)",
            check=_at_least_one, requirement="must be an integer >= 1"),
    Setting("lazy_interval", 50, "LOZO: steps between redraws of V, which U Vᵀ keeps meanwhile (ν; LOZO's RoBERTa "
            "script: 50)", check=_at_least_one, requirement="must be an integer >= 1"),
    Setting("low_rank_momentum", 0.0, "LOZO-M's β: an EMA of the estimate kept as the r-column factor N of N Vᵀ "
            "(projected onto the new V when V is redrawn); 0: plain LOZO", check=_fraction,
            requirement="must be in [0, 1)"),
)
HIZOO_ONLY = declared(
    Setting("hessian_smooth", 1e-8, "HiZOO's α: the weight of each step's diagonal-Hessian estimate in the "
            "preconditioner's EMA, D ← (1 − α)·D + α·D̂ (HiZOO's README example: 1e-8; 0 keeps D at its start, 1, "
            "and HiZOO is MeZO with one more forward)", check=lambda value: 0 <= value <= 1,
            requirement="must be in [0, 1]"),
)
SPARSE_MEZO_ONLY = declared(
    Setting("magnitude_sparsity", 0.8, "Sparse MeZO: the share s of each tensor's entries that is never perturbed, "
            "the largest in magnitude: the threshold is the (1 − s) quantile of |θ| when the optimizer takes its "
            "first step, the mask |θ| ≤ threshold is recomputed every step (the paper's best s: 0.8)",
            check=_fraction, requirement="must be in [0, 1)"),
)

# What each optimizer class holds in its param groups.
FIRST_ORDER = DESCENT
ZEROTH_ORDER = {**DESCENT, **DIRECTION_STREAM, **ZEROTH_ORDER_ONLY}
FORWARD_GRAD = {**DESCENT, **DIRECTION_STREAM, **FORWARD_GRAD_ONLY}
LOZO = {**ZEROTH_ORDER, **LOZO_ONLY}
HIZOO = {**ZEROTH_ORDER, **HIZOO_ONLY}
SPARSE_MEZO = {**ZEROTH_ORDER, **SPARSE_MEZO_ONLY}
SETTINGS = {**ZEROTH_ORDER, **FORWARD_GRAD, **LOZO_ONLY, **HIZOO_ONLY, **SPARSE_MEZO_ONLY}

STEP_WIDE = frozenset({"zo_eps", "q", "seed", "direction", "one_sided", "fo_every", "sign_mode", "conserve_mode",
                       "history_rule", "sparsity_mode", "base", "mode", "batched", "max_sets_per_forward", "rank",
                       "lazy_interval"})


def taking(names, **defaults) -> dict[str, Setting]:
    """The declared settings `names`, in that order, with an optimizer's own `defaults` where it has them."""
    stray = sorted(set(defaults) - set(names))
    if stray:
        raise ValueError(f"defaults for settings not taken: {', '.join(stray)}")
    return {name: replace(SETTINGS[name], default=defaults[name]) if name in defaults else SETTINGS[name]
            for name in names}


def check_group(group: Mapping, settings: Mapping[str, Setting], where: str, first: Mapping | None = None) -> dict:
    """The values of `settings` in a param group, checked and normalised (settings.check_values); with
    `first`, the optimizer's first group, a step-wide setting that differs from it is refused."""
    values = check_values({name: group[name] for name in settings}, settings, where, error=ValueError)
    differing = [name for name in settings if first is not None and name in STEP_WIDE and values[name] != first[name]]
    if differing:
        name = differing[0]
        raise ValueError(f"{where}: {name!r} is {values[name]!r} but {first[name]!r} in the first param group; it is "
                         f"step-wide, one value for every group (only "
                         f"{', '.join(n for n in settings if n not in STEP_WIDE)} may differ per group)")
    return values
