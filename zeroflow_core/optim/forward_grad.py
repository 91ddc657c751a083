"""Forward-Grad (Baydin et al. 2022): the directional derivative L'(θ)·v from one forward-mode pass.

Each trainable tensor is swapped, in the modules that hold it, for a dual tensor (θ, v) of PyTorch's forward-mode
AD (`torch.autograd.forward_ad`), and one call of the closure gives L and L'·v; (L'·v) v is an unbiased estimate of
∇L for v ~ N(0, I), fed to the SGD or Adam rule. Only the trainable tensors carry a tangent, so a frozen weight
costs nothing beyond its forward (torch.func.jvp over functional_call, the earlier implementation, ran about twice
as long on the smoke model: decompositions in Python, and a matmul with every frozen weight's zero tangent). The
closure must reach the parameters through the model's modules (as every `model(x)` call does), not through
references to Parameter objects captured beforehand.

With `batched`, the q tangents go through one forward: the trainable tensors become stacked dual tensors (q copies
of θ, the q tangents) and the loss returns q values and q derivatives (models/parameter_sets.py).
"""
from __future__ import annotations

import contextlib
from typing import Callable

import torch
import torch.autograd.forward_ad as fwAD
from torch import nn

from zeroflow_core.models.parameter_sets import holders, swapped
from zeroflow_core.models.vit import disable_fused_attention
from zeroflow_core.optim.base import NonFiniteLossError, ZeroFlowOptimizer, eval_mode
from zeroflow_core.optim.directions import DirectionStream, derive_seed
from zeroflow_core.optim.hyper import FORWARD_GRAD


class ForwardGradient(ZeroFlowOptimizer):
    """(L'(θ)·v) v averaged over q directions, then one step of the descent rule `base`; the
    hyper-parameters are those of hyper.FORWARD_GRAD."""

    settings = FORWARD_GRAD

    def __init__(self, params, *, model: nn.Module | None = None, **hyper):
        if model is None:
            raise ValueError("forward-grad needs model=: the module whose parameters it differentiates through")
        super().__init__(params, hyper)
        self.model = model
        # the fused scaled-dot-product kernels have no forward-mode rule on CPU
        disable_fused_attention(model)
        if any(not held for held in holders(model, [p for _, p in self.trainable()])):
            raise ValueError("forward-grad: every optimized parameter must belong to the given model")
        self._holders: tuple[tuple[int, ...], list] | None = None

    rule = property(lambda self: self.shared("base"))
    forwards_per_step = property(lambda self: self.shared("q"))

    def step(self, closure: Callable | None = None) -> torch.Tensor:
        if closure is None:
            raise ValueError(f"{type(self).__name__}.step needs a closure that returns the mini-batch loss")
        pairs = self.trainable()
        params = [p for _, p in pairs]
        q, seed, direction = self.shared("q"), self.shared("seed"), self.shared("direction")
        tangents = [list(DirectionStream(derive_seed(seed, "forward-grad", self.steps_taken, query),
                                         direction).draw_all(params)) for query in range(q)]
        mode = eval_mode(self.model) if self.shared("mode") == "eval" else contextlib.nullcontext()
        with torch.no_grad(), mode:
            losses = self.with_backprop_head(closure, lambda c: self._step(c, pairs, tangents))
        self.steps_taken += 1
        return losses.float().mean()

    def _step(self, closure, pairs, tangents) -> torch.Tensor:
        params, q = [p for _, p in pairs], len(tangents)
        losses, derivatives = self._derivatives(closure, params, tangents)
        for query, (loss, derivative) in enumerate(zip(losses, derivatives)):
            if not (torch.isfinite(loss) and torch.isfinite(derivative)):
                raise NonFiniteLossError(
                    f"ForwardGradient: non-finite loss or derivative at step {self.steps_taken}, query {query}; "
                    "the parameters are left as they were before this step"
                )
        self.forward_passes += q
        for index, (group, p) in enumerate(pairs):
            estimate = torch.zeros_like(p, dtype=torch.float32)
            for query in range(q):
                estimate.add_(tangents[query][index], alpha=float(derivatives[query]) / q)
            self.apply(group, p, estimate)
        return losses

    def _derivatives(self, closure, params, tangents) -> tuple[torch.Tensor, torch.Tensor]:
        """(L, L'·v) for each tangent set: q forward-mode calls of the closure, or one with `batched` when the
        closure evaluates parameter sets."""
        with fwAD.dual_level():
            if self.batches(closure, params):
                duals = [fwAD.make_dual(p.detach().expand(len(tangents), *p.shape).contiguous(),
                                        torch.stack([t[i] for t in tangents]).to(p.dtype))
                         for i, p in enumerate(params)]
                return fwAD.unpack_dual(closure.losses_at(params, duals))[:2]
            results = []
            for query_tangents in tangents:
                duals = [fwAD.make_dual(p.detach(), t.to(p.dtype)) for p, t in zip(params, query_tangents)]
                with swapped(self._places(params), duals):
                    results.append(fwAD.unpack_dual(closure())[:2])
        return torch.stack([r[0] for r in results]), torch.stack([r[1] for r in results])

    def _places(self, params) -> list:
        key = tuple(id(p) for p in params)
        if self._holders is None or self._holders[0] != key:
            self._holders = (key, holders(self.model, params))
        return self._holders[1]
