"""Zeroth-order optimizers: SPSA gradient estimates fed to the SGD or Adam rule, as the official code does.

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

import zeroflow_core.optim.rules as rules
from zeroflow_core.optim.base import ZeroFlowOptimizer, eval_mode
from zeroflow_core.optim.directions import DirectionStream, derive_seed, sparse_masks
from zeroflow_core.optim.hyper import ZEROTH_ORDER

ESTIMATORS = ("plain", "sign", "conserve")
# the decay of history_rule ema_mix's EMA (hyper.py)
EMA_MIX_DECAY = 0.9


def official_zeroed_fraction(sparsity: float) -> float:
    """The share of each direction INFTY's mask zeroes for ratio r: P(N(0, 1) < r) = Φ(r); none for r = 0."""
    import math

    return 0.0 if sparsity == 0 else 0.5 * (1 + math.erf(sparsity / math.sqrt(2)))


class ZerothOrderOptimizer(ZeroFlowOptimizer):
    """SPSA estimate ĝ = (1/q) Σ_j d_j z_j, then one step of the descent rule.

    d_j = (L(θ+εz_j) − L(θ−εz_j)) / 2ε, or (L(θ+εz_j) − L(θ)) / ε when one-sided (L(θ) shared).
    estimator "sign": projected mode uses sign(d_j) z_j (the official code), elementwise mode
    sign(ĝ) (the paper's equation). estimator "conserve": keep the best of θ, θ − Δ, θ + Δ
    (Δ the rule's step), see `_conserve_step`. The hyper-parameters are those of hyper.ZEROTH_ORDER.
    """

    settings = ZEROTH_ORDER

    def __init__(self, params: Iterable, rule: str, *, model: nn.Module | None = None, estimator: str = "plain",
                 **hyper):
        if estimator not in ESTIMATORS:
            raise ValueError(f"unknown estimator {estimator!r}; known: {', '.join(ESTIMATORS)}")
        self.rule = rules.checked(rule)
        self.estimator = estimator  # set before the groups are added: checked_group reads it
        self.model = model
        self.mask_epoch = 0
        self._masks: tuple[tuple, list] | None = None
        super().__init__(params, hyper)

    def checked_group(self, group: dict) -> dict:
        group = super().checked_group(group)
        if (self.estimator == "conserve" and group["conserve_mode"] == "reference"
                and (group["q"] != 1 or group["history"] != 0)):
            raise ValueError(f"{type(self).__name__}: conserve_mode 'reference' needs q = 1 and history = 0 (got q = "
                             f"{group['q']}, history = {group['history']}): the official conserve sequence exists "
                             "only for one query without historical mixing")
        return group

    @property
    def forwards_per_step(self) -> int:
        q, one_sided = self.shared("q"), self.shared("one_sided")
        base = q + 1 if one_sided else 2 * q
        if self.estimator == "conserve":
            return base + 2 + (0 if one_sided else 1)
        return base

    # -- sparse directions ----------------------------------------------------------------------
    def redraw_sparse_mask(self) -> None:
        """Draw a new sparse mask (call at a task boundary); the mask is fixed in between."""
        self.mask_epoch += 1

    def _current_masks(self, pairs: list[tuple[dict, torch.Tensor]]):
        official = self.shared("sparsity_mode") == "official"
        zeroed = [official_zeroed_fraction(group["sparsity"]) if official else group["sparsity"] for group, _ in pairs]
        if not any(zeroed):
            return None
        # a group added or a sparsity changed since the last draw needs masks for what the step now updates
        key = (self.mask_epoch, tuple(id(p) for _, p in pairs), tuple(zeroed))
        if self._masks is None or self._masks[0] != key:
            seed = derive_seed(self.shared("seed"), "mask", self.mask_epoch)
            self._masks = (key, sparse_masks([p for _, p in pairs], zeroed, seed))
        return self._masks[1]

    def sparse_masks(self) -> list[torch.Tensor | None] | None:
        return self._current_masks(self.trainable())

    def _stream(self, pairs: list[tuple[dict, torch.Tensor]], query: int) -> DirectionStream:
        seed = derive_seed(self.shared("seed"), "direction", self.steps_taken, query)
        return DirectionStream(seed, self.shared("direction"), self._current_masks(pairs))

    # -- the step -----------------------------------------------------------------------------
    def step(self, closure: Callable | None = None) -> torch.Tensor:
        if closure is None:
            raise ValueError(
                f"{type(self).__name__}.step needs a closure that returns the mini-batch loss: "
                "a zeroth-order optimizer evaluates the loss at perturbed parameters"
            )
        fo_every = self.shared("fo_every")
        if fo_every and (self.steps_taken + 1) % fo_every == 0:
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
            if self.shared("one_sided") or self.estimator == "conserve":
                base_loss = self.evaluate(closure, "loss at the current parameters")
            scalars, mean_loss = self._directional_derivatives(closure, pairs, backup, base_loss)
            _restore(params, backup)
            if self.estimator == "conserve" and self.shared("conserve_mode") == "reference":
                return self._reference_conserve_step(closure, pairs, scalars, base_loss)
            estimates = self._estimates(pairs, scalars)
            if self.estimator == "conserve":
                return self._conserve_step(closure, pairs, backup, list(estimates), base_loss)
            for (group, param), estimate in zip(pairs, estimates):
                self.apply(group, param, estimate)
            return base_loss if base_loss is not None else mean_loss
        except BaseException:
            _restore(params, backup)
            raise

    def _directional_derivatives(self, closure, pairs, backup, base_loss):
        """d_j for every query, and the mean of the perturbed losses (≈ L(θ), for logging)."""
        params = [p for _, p in pairs]
        eps = self.shared("zo_eps")
        scalars, losses = [], []
        for query in range(self.shared("q")):
            stream = self._stream(pairs, query)
            _perturb(params, backup, stream, eps)
            plus = self.evaluate(closure, f"query {query}, θ + εz")
            if self.shared("one_sided"):
                scalars.append((plus - base_loss) / eps)
                losses.append(plus)
                continue
            _perturb(params, backup, stream, -eps)
            minus = self.evaluate(closure, f"query {query}, θ − εz")
            scalars.append((plus - minus) / (2 * eps))
            losses += [plus, minus]
        return scalars, sum(losses) / len(losses)

    def _estimates(self, pairs: list[tuple[dict, torch.Tensor]], scalars: list[float]):
        """Yield ĝ parameter by parameter, replaying every query's direction stream in step."""
        sign_mode = self.shared("sign_mode") if self.estimator == "sign" else None
        if sign_mode == "projected":
            scalars = [float((s > 0) - (s < 0)) for s in scalars]
        q, official = self.shared("q"), self.shared("history_rule") == "official"
        params = [p for _, p in pairs]
        streams = [self._stream(pairs, query).draw_all(params) for query in range(q)]
        for group, param in pairs:
            mix = group["history"]
            estimate = torch.zeros(param.shape, dtype=torch.float32, device=param.device)
            history = self.state[param].get("history") if mix else None
            for stream, scalar in zip(streams, scalars):
                z = next(stream)
                if mix and official:
                    history = z.clone() if history is None else history.mul_(mix).add_(z, alpha=1 - mix)
                    z = history
                elif mix:
                    decay = EMA_MIX_DECAY
                    history = z.clone() if history is None else history.mul_(decay).add_(z, alpha=1 - decay)
                    z = z.mul_(1 - mix).add_(history, alpha=mix)
                estimate.add_(z, alpha=scalar / q)
            if mix:
                self.state[param]["history"] = history
            if sign_mode == "elementwise":
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
        else:  # θ + Δ is already in place; the rule's state is p's, its weight decay reads θ (the backup)
            for (group, p), b, g in zip(pairs, backup, estimates):
                self.state[p].update(self.propose(group, b, -g, state=self.state[p])[1])
        return base_loss

    def _reference_conserve_step(self, closure, pairs, scalars, base_loss) -> float:
        """The official sequence: step(ĝ), evaluate, step(−2ĝ), evaluate, then step(ĝ) or step(2ĝ).

        Each step commits the rule's state, so momentum/Adam state absorbs the trial steps and a
        "revert" is inexact; kept to measure that difference, not as the default.
        """
        estimates = list(self._estimates(pairs, scalars))

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
