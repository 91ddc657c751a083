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

ESTIMATORS = ("plain", "sign", "conserve", "fzoo")
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
    (Δ the rule's step), see `_conserve_step`. estimator "fzoo" (Dang et al., arXiv 2506.09034): one-sided
    queries whose differences are divided by σ, the standard deviation of the q perturbed losses, instead of ε:
    ĝ = (1/q) Σ_j ((L(θ+εu_j) − L(θ)) / σ) u_j, a step whose size adapts to how much the losses spread (FZOO's
    code, whose lr is the paper's η·ε: `fzoo_scalars`). The hyper-parameters are those of hyper.ZEROTH_ORDER.
    """

    settings = ZEROTH_ORDER
    #: whether the estimate needs L(θ) even with two-sided queries (HiZOO's curvature: one more forward per step)
    needs_base_loss = False

    def __init__(self, params: Iterable, rule: str, *, model: nn.Module | None = None, estimator: str = "plain",
                 **hyper):
        if estimator not in ESTIMATORS:
            raise ValueError(f"unknown estimator {estimator!r}; known: {', '.join(ESTIMATORS)}")
        self.rule = rules.checked(rule)
        self.estimator = estimator  # set before the groups are added: checked_group reads it
        self.model = model
        self.mask_epoch = 0
        self._drawn: dict[int, list[torch.Tensor]] = {}  # a batched step's directions, by stream seed
        self._masks: tuple[tuple, list] | None = None
        super().__init__(params, hyper)

    def checked_group(self, group: dict) -> dict:
        group = super().checked_group(group)
        if self.estimator == "fzoo" and (not group["one_sided"] or group["q"] < 2):
            raise ValueError(f"{type(self).__name__}: fzoo needs one_sided = true and q >= 2 (got one_sided = "
                             f"{group['one_sided']}, q = {group['q']}): its step divides by the spread of the q "
                             "perturbed losses around L(θ)")
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
        if (self.estimator == "conserve" or self.needs_base_loss) and not one_sided:
            base += 1  # L(θ), which one-sided queries share anyway
        return base + (2 if self.estimator == "conserve" else 0)

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
                loss = torch.tensor(self.with_backprop_head(closure, self._zo_step))
        self.steps_taken += 1
        return loss

    def _zo_step(self, closure: Callable) -> float:
        pairs = self.trainable()
        params = [p for _, p in pairs]
        reference = self.estimator == "conserve" and self.shared("conserve_mode") == "reference"
        # batched evaluation leaves the parameters alone until the update: no backup to take or restore
        in_place = not self.batches(closure, params) or reference
        backup = [p.detach().clone() if in_place else p.detach() for p in params]
        self._drawn = {}
        try:
            scalars, base_loss, mean_loss = self._directional_derivatives(closure, pairs, backup)
            if in_place:
                _restore(params, backup)
            if reference:
                return self._reference_conserve_step(closure, pairs, scalars, base_loss)
            estimates = self._estimates(pairs, scalars)
            if self.estimator == "conserve":
                return self._conserve_step(closure, pairs, backup, list(estimates), base_loss)
            for (group, param), estimate in zip(pairs, estimates):
                self.apply(group, param, estimate)
            return base_loss if base_loss is not None else mean_loss
        except BaseException:
            if in_place:
                _restore(params, backup)
            raise
        finally:
            self._drawn = {}

    def _directional_derivatives(self, closure, pairs, backup):
        """d_j for every query, L(θ) where the step needs it (one-sided, Conserve) or None, and the mean of the
        perturbed losses (≈ L(θ), for logging)."""
        params = [p for _, p in pairs]
        eps, one_sided = self.shared("zo_eps"), self.shared("one_sided")
        with_base = one_sided or self.estimator == "conserve" or self.needs_base_loss
        points = [Point("loss at the current parameters")] if with_base else []
        for query in range(self.shared("q")):
            stream = self._stream(pairs, query)
            points.append(Point(f"query {query}, θ + εz", stream, eps))
            if not one_sided:
                points.append(Point(f"query {query}, θ − εz", stream, -eps))
        losses = self._losses(closure, params, backup, points)
        base_loss = losses.pop(0) if with_base else None
        return self._scalars(base_loss, losses), base_loss, sum(losses) / len(losses)

    def _scalars(self, base_loss: float | None, losses: list[float]) -> list[float]:
        """d_j of each query from the perturbed losses (θ + εz_j, θ − εz_j in turn when two-sided) and L(θ)."""
        eps = self.shared("zo_eps")
        if self.estimator == "fzoo":
            return fzoo_scalars(base_loss, losses)
        if self.shared("one_sided"):
            return [(plus - base_loss) / eps for plus in losses]
        return [(plus - minus) / (2 * eps) for plus, minus in zip(losses[::2], losses[1::2])]

    # -- evaluating the loss at points θ0 + scale·v ----------------------------------------------------------
    def _losses(self, closure, params, backup, points: list[Point]) -> list[float]:
        """The loss at each point: one forward per point, or with `batched` (and a closure that evaluates parameter
        sets, models/parameter_sets.py) the points stacked into forwards of up to max_sets_per_forward each."""
        if not self.batches(closure, params):
            losses = []
            for point in points:
                point.place(params, backup)
                losses.append(self.evaluate(closure, point.what))
            return losses
        per_forward = self.shared("max_sets_per_forward") or len(points)
        losses = []
        for start in range(0, len(points), per_forward):
            chunk = points[start:start + per_forward]
            stacked = [torch.empty((len(chunk), *p.shape), dtype=p.dtype, device=p.device) for p in params]
            for index, point in enumerate(chunk):
                vectors = point.vectors
                if isinstance(vectors, DirectionStream):
                    # a query's θ + εz and θ − εz, and then its estimate, share one draw of z: stacking holds the
                    # perturbed copies already, so keeping the q directions of the step costs no more in kind
                    if vectors.seed not in self._drawn:
                        self._drawn[vectors.seed] = list(vectors.draw_all(params))
                    vectors = self._drawn[vectors.seed]
                Point(point.what, vectors, point.scale).place([s[index] for s in stacked], backup)
            values = closure.losses_at(params, stacked)
            self.forward_passes += len(chunk)
            losses += [self.refuse_non_finite(float(value), point.what) for value, point in zip(values, chunk)]
        return losses

    def _estimates(self, pairs: list[tuple[dict, torch.Tensor]], scalars: list[float]):
        """Yield ĝ parameter by parameter, replaying every query's direction stream in step."""
        sign_mode = self.shared("sign_mode") if self.estimator == "sign" else None
        if sign_mode == "projected":
            scalars = [float((s > 0) - (s < 0)) for s in scalars]
        q, official = self.shared("q"), self.shared("history_rule") == "official"
        streams = self._directions(pairs)
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

    def _directions(self, pairs: list[tuple[dict, torch.Tensor]]) -> list:
        """Per query, an iterator over its directions parameter by parameter: the ones a batched step drew for its
        forward, or the stream replayed from its seed."""
        params = [p for _, p in pairs]
        streams = [self._stream(pairs, query) for query in range(self.shared("q"))]
        return [iter(self._drawn[s.seed]) if s.seed in self._drawn else s.draw_all(params) for s in streams]

    def _conserve_step(self, closure, pairs, backup, estimates, base_loss) -> float:
        """Keep the best of θ, θ − Δ and θ + Δ, committing the rule's state only for the move made.

        Δ is proposed without touching the rule's state; θ + Δ keeps the state the rule would
        have after a step on −ĝ (the direction the evaluation found to descend). The official
        code instead steps the stock optimizer up to three times, see `_reference_conserve_step`.
        """
        params = [p for _, p in pairs]
        proposals = [self.propose(group, p, g) for (group, p), g in zip(pairs, estimates)]
        deltas = [delta for delta, _ in proposals]
        minus, plus = self._losses(closure, params, backup, [Point("conserve candidate θ − Δ", deltas, -1.0),
                                                             Point("conserve candidate θ + Δ", deltas, 1.0)])
        best = min([(base_loss, 0), (minus, -1), (plus, 1)], key=lambda pair: pair[0])[1]
        if best == 0:
            _restore(params, backup)
        elif best == -1:
            Point("", deltas, -1.0).place(params, backup)
            for p, (_, new_state) in zip(params, proposals):
                self.state[p].update(new_state)
        else:  # the rule's state is p's, its weight decay reads θ (the backup)
            Point("", deltas, 1.0).place(params, backup)
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


def fzoo_scalars(base_loss: float, losses: list[float]) -> list[float]:
    """FZOO's per-query coefficients (l_j − l_0) / σ, σ the population std of the q perturbed losses l_j (FZOO's
    code: torch.std(unbiased=False), l_0 left out). All q losses equal (σ = 0) carry no direction: no step."""
    mean = sum(losses) / len(losses)
    sigma = (sum((loss - mean) ** 2 for loss in losses) / len(losses)) ** 0.5
    return [(loss - base_loss) / sigma if sigma > 0 else 0.0 for loss in losses]


class Point:
    """θ0 + scale·v, a point where a step evaluates the loss: v is a direction stream's z (regenerated, never
    stored), the list of a step's Δ (Conserve's candidates), or nothing (θ0 itself)."""

    def __init__(self, what: str, vectors: DirectionStream | list | None = None, scale: float = 0.0):
        self.what = what
        self.vectors = vectors
        self.scale = scale

    def place(self, out, backup, params=None) -> None:
        """Write the point into `out` (the parameters, or one set of stacked tensors; `params` gives the directions'
        shapes when `out` is not the parameters), computed from the backup so that no rounding accumulates."""
        if self.vectors is None:
            _restore(out, backup)
            return
        vectors = self.vectors.draw_all(params or out) if isinstance(self.vectors, DirectionStream) else self.vectors
        for p, b, v in zip(out, backup, vectors):
            if p.dtype == torch.float32:
                torch.add(b, v.to(p.dtype), alpha=self.scale, out=p)
            else:  # reduced precision: do the perturbation math in fp32, round once
                p.copy_(b.float().add_(v.float(), alpha=self.scale))


def _restore(params, backup) -> None:
    for p, b in zip(params, backup):
        p.copy_(b)
