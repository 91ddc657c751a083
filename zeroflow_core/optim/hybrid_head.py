"""The hybrid head (after ZO-FC, arXiv 2510.21019): a forward-pass optimizer trains the adapters, backprop the
classifier head, within one step and its forwards.

A param group flagged `backprop_head` (BACKPROP_HEAD) holds the head. The forward-pass step neither perturbs nor
estimates it; instead each forward the step takes (one per query, or all of them in one batched forward) is also a
forward of the head with autograd on: the estimated parameters are read as plain tensors, so no graph is recorded
through the backbone and its activations are freed as at inference, and one backward through the head alone gives
the head's gradient at that point. The head then steps along the mean of those gradients, with the optimizer's
rule and its group's hyper-parameters (ZO-FC's code gives the adapters and the head one rate too).

What the mean is: with two-sided queries, (1/2q) Σ_j ∇_h L(a ± εz_j, h), the head's exact gradient of the loss
smoothed over the adapters' perturbations (the zeroth-order estimate's own target), ∇_h L(a, h) up to O(ε²); with
one-sided queries it also counts L(θ); with Forward-Grad, whose forwards are at θ, ∇_h L(θ) itself; Conserve's
candidate forwards count too. The cost: no forward beyond the step's own, one backward through the head per
forward call (counted as head_backward_passes), and the head's inputs kept for it (B × features per point).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.autograd.forward_ad as fwAD

BACKPROP_HEAD = "backprop_head"
# where the division of labour comes from, as the book cites it
ZO_FC = "ZO-FC, arXiv 2510.21019"


class HeadGradients:
    """A step's closure that also accumulates the head's gradient at every point where the step evaluates the loss;
    `mean()` is their mean. Called, it is the closure at the current parameters; `losses_at` and `unsupported`
    pass a batched step's parameter sets through (models/parameter_sets.SetClosure)."""

    def __init__(self, closure: Callable, estimated: Sequence[torch.Tensor], head: Sequence[torch.Tensor]):
        self.closure = closure
        self.estimated = list(estimated)
        self.head = list(head)
        self.total = [torch.zeros(p.shape, dtype=torch.float32, device=p.device) for p in self.head]
        self.points = 0
        self.backwards = 0

    def __call__(self) -> torch.Tensor:
        # the estimated parameters are leaves that require grad: switched off, the forward records no graph through
        # them (the step perturbs them in place, or has swapped them for its own tensors)
        flags = [p.requires_grad for p in self.estimated]
        try:
            for p in self.estimated:
                p.requires_grad_(False)
            with torch.enable_grad():
                loss = self.closure()
        finally:
            for p, flag in zip(self.estimated, flags):
                p.requires_grad_(flag)
        return self._accumulate(loss)

    def unsupported(self, params) -> str | None:
        unsupported = getattr(self.closure, "unsupported", None)
        return unsupported(params) if unsupported else "the closure is a plain function (no losses_at)"

    def losses_at(self, params, stacked) -> torch.Tensor:
        with torch.enable_grad():  # the stacked sets stand in for the estimated parameters: no graph through them
            losses = self.closure.losses_at(params, stacked)
        return self._accumulate(losses)

    def _accumulate(self, losses: torch.Tensor) -> torch.Tensor:
        self.points += losses.numel()
        if losses.requires_grad:
            with torch.enable_grad():  # the step runs under no_grad: the sum must join the graph
                grads = torch.autograd.grad(losses.sum(), self.head, allow_unused=True)
            self.backwards += 1
            for total, grad in zip(self.total, grads):
                if grad is not None:
                    total.add_(grad)
        return _without_graph(losses)

    def mean(self) -> list[torch.Tensor]:
        return [total / max(self.points, 1) for total in self.total]


def _without_graph(losses: torch.Tensor) -> torch.Tensor:
    """The losses without their (spent) graph, keeping a forward-mode tangent (Forward-Grad's L'·v) if they carry
    one: detach() would drop it."""
    primal, tangent = fwAD.unpack_dual(losses)[:2]
    if tangent is None:
        return losses.detach()
    return fwAD.make_dual(primal.detach(), tangent.detach())
