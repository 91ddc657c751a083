"""Zeroth-order optimizers: SPSA gradient estimates fed to the SGD or Adam rule (design notes §1).

One class covers ZO-SGD, ZO-Adam and their Sign and Conserve variants, with the query budget q,
one- or two-sided differences, historical mixing, sparse directions and an optional periodic
exact step. Each step evaluates the closure under `torch.no_grad()`, perturbs the parameters in
place and regenerates every direction from its seed, so the only parameter-sized memory beyond
inference is one backup of the trainable parameters (which makes the restore bit-exact) and the
direction of the tensor being processed.
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn

from zeroflow_core.optim.base import ZeroFlowOptimizer, check, eval_mode
from zeroflow_core.optim.directions import DIRECTIONS, DirectionStream, derive_seed, sparse_masks

ESTIMATORS = ("plain", "sign", "conserve")
SIGN_MODES = ("projected", "elementwise")
CONSERVE_MODES = ("exact", "reference")
# official: h ← p·h + (1 − p)·z per query, starting at h = z, and the step follows h (INFTY's ZeroFlow
# set_estimated_grad with alpha = p, the paper's equation); ema_mix: this companion's earlier rule,
# (1 − p)·z + p·EMA₀.₉(z), which matches neither and is kept only to measure what the correction changed.
HISTORY_RULES = ("official", "ema_mix")
EMA_MIX_DECAY = 0.9
# exact: a mask zeroes exactly r of each direction; official: Φ(r) of it, as INFTY's mask, which compares a
# standard normal draw with r (so r = 0.1 already zeroes 54%).
SPARSITY_MODES = ("exact", "official")


def official_zeroed_fraction(sparsity: float) -> float:
    """The share of each direction INFTY's mask zeroes for ratio r: P(N(0, 1) < r) = Φ(r); none for r = 0."""
    import math

    return 0.0 if sparsity == 0 else 0.5 * (1 + math.erf(sparsity / math.sqrt(2)))


class ZerothOrderOptimizer(ZeroFlowOptimizer):
    """SPSA estimate ĝ = (1/q) Σ_j d_j z_j, then one step of the descent rule.

    d_j = (L(θ+εz_j) − L(θ−εz_j)) / 2ε, or (L(θ+εz_j) − L(θ)) / ε when one-sided (L(θ) shared).
    estimator "sign": projected mode uses sign(d_j) z_j (the official code), elementwise mode
    sign(ĝ) (the paper's equation). estimator "conserve": keep the best of θ, θ − Δ, θ + Δ
    (Δ the rule's step), see `_conserve_step`.
    """

    def __init__(self, params: Iterable, rule: str, *, model: nn.Module | None = None,
                 lr: float, momentum: float = 0.0, betas=(0.9, 0.999), weight_decay: float = 0.0,
                 zo_eps: float = 1e-3, q: int = 1, seed: int = 0, direction: str = "gaussian",
                 one_sided: bool = False, estimator: str = "plain", sign_mode: str = "projected",
                 conserve_mode: str = "exact", history: float = 0.0, history_rule: str = "official",
                 sparsity: float = 0.0, sparsity_mode: str = "exact", fo_every: int = 0):
        super().__init__(params, rule, lr=lr, momentum=momentum, betas=betas, weight_decay=weight_decay)
        check(zo_eps > 0, "zo_eps", zo_eps, "must be > 0")
        check(isinstance(q, int) and not isinstance(q, bool) and q >= 1, "q", q, "must be an integer >= 1")
        check(isinstance(seed, int) and not isinstance(seed, bool), "seed", seed, "must be an integer")
        check(direction in DIRECTIONS, "direction", direction, f"must be one of {', '.join(DIRECTIONS)}")
        check(isinstance(one_sided, bool), "one_sided", one_sided, "must be true or false")
        check(estimator in ESTIMATORS, "estimator", estimator, f"must be one of {', '.join(ESTIMATORS)}")
        check(sign_mode in SIGN_MODES, "sign_mode", sign_mode, f"must be one of {', '.join(SIGN_MODES)}")
        check(conserve_mode in CONSERVE_MODES, "conserve_mode", conserve_mode,
              f"must be one of {', '.join(CONSERVE_MODES)}")
        check(0 <= history < 1, "history", history, "must be in [0, 1)")
        check(history_rule in HISTORY_RULES, "history_rule", history_rule, f"must be one of {', '.join(HISTORY_RULES)}")
        check(0 <= sparsity < 1, "sparsity", sparsity, "must be in [0, 1)")
        check(sparsity_mode in SPARSITY_MODES, "sparsity_mode", sparsity_mode,
              f"must be one of {', '.join(SPARSITY_MODES)}")
        check(isinstance(fo_every, int) and fo_every >= 0, "fo_every", fo_every,
              "must be an integer >= 0 (0 = never take an exact step)")
        if estimator == "conserve" and conserve_mode == "reference":
            check(q == 1 and history == 0, "conserve_mode", conserve_mode,
                  "the official conserve sequence exists only for q = 1 without historical mixing")
        self.model = model
        self.zo_eps = float(zo_eps)
        self.q = q
        self.seed = seed
        self.direction = direction
        self.one_sided = one_sided
        self.estimator = estimator
        self.sign_mode = sign_mode
        self.conserve_mode = conserve_mode
        self.history = float(history)
        self.history_rule = history_rule
        self.sparsity = float(sparsity)
        self.sparsity_mode = sparsity_mode
        self.fo_every = fo_every
        self.mask_epoch = 0
        self._masks: tuple[int, list] | None = None

    @property
    def forwards_per_step(self) -> int:
        base = self.q + 1 if self.one_sided else 2 * self.q
        if self.estimator == "conserve":
            return base + 2 + (0 if self.one_sided else 1)
        return base

    # -- sparse directions ----------------------------------------------------------------------
    def redraw_sparse_mask(self) -> None:
        """Draw a new sparse mask (call at a task boundary); the mask is fixed in between."""
        self.mask_epoch += 1
        self._masks = None

    def _current_masks(self, params: list[torch.Tensor]):
        if self.sparsity == 0:
            return None
        if self._masks is None or self._masks[0] != self.mask_epoch:
            seed = derive_seed(self.seed, "mask", self.mask_epoch)
            zeroed = self.sparsity if self.sparsity_mode == "exact" else official_zeroed_fraction(self.sparsity)
            self._masks = (self.mask_epoch, sparse_masks(params, zeroed, seed))
        return self._masks[1]

    def sparse_masks(self) -> list[torch.Tensor] | None:
        return self._current_masks([p for _, p in self.trainable()])

    def _stream(self, params: list[torch.Tensor], query: int) -> DirectionStream:
        seed = derive_seed(self.seed, "direction", self.steps_taken, query)
        return DirectionStream(seed, self.direction, self._current_masks(params))

    # -- the step -----------------------------------------------------------------------------
    def step(self, closure: Callable | None = None) -> torch.Tensor:
        if closure is None:
            raise ValueError(
                f"{type(self).__name__}.step needs a closure that returns the mini-batch loss: "
                "a zeroth-order optimizer evaluates the loss at perturbed parameters"
            )
        if self.fo_every and (self.steps_taken + 1) % self.fo_every == 0:
            loss = self.first_order_step(closure)
        else:
            with torch.no_grad(), eval_mode(self.model):
                loss = torch.tensor(self._zo_step(closure))
        self.steps_taken += 1
        return loss

    def _zo_step(self, closure: Callable) -> float:
        pairs = self.trainable()
        params = [p for _, p in pairs]
        backup = [p.detach().clone() for p in params]
        try:
            base_loss = None
            if self.one_sided or self.estimator == "conserve":
                base_loss = self.evaluate(closure, "loss at the current parameters")
            scalars, mean_loss = self._directional_derivatives(closure, params, backup, base_loss)
            _restore(params, backup)
            if self.estimator == "conserve" and self.conserve_mode == "reference":
                return self._reference_conserve_step(closure, pairs, scalars, base_loss)
            estimates = self._estimates(params, scalars)
            if self.estimator == "conserve":
                return self._conserve_step(closure, pairs, backup, list(estimates), base_loss)
            for (group, param), estimate in zip(pairs, estimates):
                self.apply(group, param, estimate)
            return base_loss if base_loss is not None else mean_loss
        except BaseException:
            _restore(params, backup)
            raise

    def _directional_derivatives(self, closure, params, backup, base_loss):
        """d_j for every query, and the mean of the perturbed losses (≈ L(θ), for logging)."""
        scalars, losses = [], []
        for query in range(self.q):
            stream = self._stream(params, query)
            _perturb(params, backup, stream, self.zo_eps)
            plus = self.evaluate(closure, f"query {query}, θ + εz")
            if self.one_sided:
                scalars.append((plus - base_loss) / self.zo_eps)
                losses.append(plus)
                continue
            _perturb(params, backup, stream, -self.zo_eps)
            minus = self.evaluate(closure, f"query {query}, θ − εz")
            scalars.append((plus - minus) / (2 * self.zo_eps))
            losses += [plus, minus]
        return scalars, sum(losses) / len(losses)

    def _estimates(self, params: list[torch.Tensor], scalars: list[float]):
        """Yield ĝ parameter by parameter, replaying every query's direction stream in step."""
        if self.estimator == "sign" and self.sign_mode == "projected":
            scalars = [float((s > 0) - (s < 0)) for s in scalars]
        streams = [self._stream(params, query).draw_all(params) for query in range(self.q)]
        for param in params:
            estimate = torch.zeros(param.shape, dtype=torch.float32, device=param.device)
            history = self.state[param].get("history") if self.history else None
            for stream, scalar in zip(streams, scalars):
                z = next(stream)
                if self.history and self.history_rule == "official":
                    history = z.clone() if history is None else history.mul_(self.history).add_(z, alpha=1 - self.history)
                    z = history
                elif self.history:
                    history = z.clone() if history is None else history.mul_(EMA_MIX_DECAY).add_(z, alpha=1 - EMA_MIX_DECAY)
                    z = z.mul_(1 - self.history).add_(history, alpha=self.history)
                estimate.add_(z, alpha=scalar / self.q)
            if self.history:
                self.state[param]["history"] = history
            if self.estimator == "sign" and self.sign_mode == "elementwise":
                estimate.sign_()
            yield estimate

    def _conserve_step(self, closure, pairs, backup, estimates, base_loss) -> float:
        """Keep the best of θ, θ − Δ and θ + Δ, committing the rule's state only for the move made.

        Δ is proposed without touching the rule's state; θ + Δ keeps the state the rule would
        have after a step on −ĝ (the direction the evaluation found to descend). The official
        code instead steps the stock optimizer up to three times, see `_reference_conserve_step`.
        """
        params = [p for _, p in pairs]
        proposals = [self.propose(group, p, g) for (group, p), g in zip(pairs, estimates)]
        candidates = {}
        for sign in (-1, 1):
            for p, b, (delta, _) in zip(params, backup, proposals):
                torch.add(b, delta.to(p.dtype), alpha=sign, out=p)
            candidates[sign] = self.evaluate(closure, "conserve candidate θ " + ("−" if sign < 0 else "+") + " Δ")
        best = min([0, -1, 1], key=lambda s: base_loss if s == 0 else candidates[s])
        if best == 0:
            _restore(params, backup)
        elif best == -1:
            for p, b, (delta, new_state) in zip(params, backup, proposals):
                torch.sub(b, delta.to(p.dtype), out=p)
                self.state[p].update(new_state)
        else:  # θ + Δ is already in place
            for (group, p), b, g in zip(pairs, backup, estimates):
                self.state[p].update(self.propose(group, b, -g)[1])
        return base_loss

    def _reference_conserve_step(self, closure, pairs, scalars, base_loss) -> float:
        """The official sequence: step(ĝ), evaluate, step(−2ĝ), evaluate, then step(ĝ) or step(2ĝ).

        Each step commits the rule's state, so momentum/Adam state absorbs the trial steps and a
        "revert" is inexact; kept to measure that difference, not as the default.
        """
        params = [p for _, p in pairs]
        estimates = list(self._estimates(params, scalars))

        def rule_step(scale: float):
            for (group, p), g in zip(pairs, estimates):
                self.apply(group, p, g * scale)

        rule_step(1.0)
        loss_minus = self.evaluate(closure, "reference conserve θ − Δ")
        rule_step(-2.0)
        loss_plus = self.evaluate(closure, "reference conserve θ + Δ")
        if loss_minus > base_loss:
            if base_loss < loss_plus:
                rule_step(1.0)
        elif loss_minus < loss_plus:
            rule_step(2.0)
        return base_loss

    # -- resumable state ----------------------------------------------------------------------
    def counters(self) -> dict:
        return {**super().counters(), "mask_epoch": self.mask_epoch}


def _perturb(params, backup, stream: DirectionStream, scale: float) -> None:
    """θ ← θ0 + scale·z, computed from the backup so that no rounding error accumulates."""
    for p, b, z in zip(params, backup, stream.draw_all(params)):
        if p.dtype == torch.float32:
            torch.add(b, z, alpha=scale, out=p)
        else:  # reduced precision: do the perturbation math in fp32, round once
            p.copy_(b.float().add_(z, alpha=scale))


def _restore(params, backup) -> None:
    for p, b in zip(params, backup):
        p.copy_(b)
