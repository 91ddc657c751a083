"""Forward-Grad (Baydin et al. 2022): the directional derivative L'(θ)·v from one forward-mode pass.

(L, L'·v) come from `torch.func.jvp` over `torch.func.functional_call`, and (L'·v) v is an
unbiased estimate of ∇L for v ~ N(0, I), fed to the SGD or Adam rule. The closure is run inside
`functional_call`, so it must reach the parameters through the model's modules (as every
`model(x)` call does), not through references to Parameter objects captured beforehand.
"""
from __future__ import annotations

import contextlib
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, jvp
from torch.overrides import TorchFunctionMode

from zeroflow_core.models.vit import disable_fused_attention
from zeroflow_core.optim.base import NonFiniteLossError, ZeroFlowOptimizer, eval_mode
from zeroflow_core.optim.directions import DirectionStream, derive_seed
from zeroflow_core.optim.hyper import FORWARD_GRAD


class _ClosureModule(nn.Module):
    """Lets functional_call swap the model's parameters for the duration of one closure call."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.closure: Callable | None = None

    def forward(self):
        return self.closure()


class _FrozenWeightLinear(torch.autograd.Function):
    """x Wᵀ + b with W and b frozen: the tangent is ẋ Wᵀ and nothing else.

    Under torch.func.jvp the stock rule of linear also multiplies x by the frozen weight's
    (zero) tangent, a full matmul that CPU kernels do not skip; in a ViT with adapters that is
    one wasted matmul per frozen linear, most of the model's compute.
    """

    @staticmethod
    def forward(x, weight, bias):
        return F.linear(x, weight, bias)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_forward(inputs[1])

    @staticmethod
    def jvp(ctx, x_tangent, weight_tangent, bias_tangent):
        (weight,) = ctx.saved_tensors
        return F.linear(x_tangent, weight)

    @staticmethod
    def backward(ctx, grad_output):
        raise RuntimeError("forward-grad's frozen-weight linear supports forward-mode AD only")


class _FrozenLinears(TorchFunctionMode):
    """Sends F.linear calls whose weight (and bias) are frozen parameters to the rule above."""

    def __init__(self, frozen: set[int]):
        super().__init__()
        self.frozen = frozen

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.linear and id(args[1]) in self.frozen:
            bias = args[2] if len(args) > 2 else kwargs.get("bias")
            if bias is None or id(bias) in self.frozen:
                return _FrozenWeightLinear.apply(args[0], args[1], bias)
        return func(*args, **kwargs)


class ForwardGradient(ZeroFlowOptimizer):
    """(L'(θ)·v) v averaged over q directions, then one step of the descent rule `base`; the
    hyper-parameters are those of hyper.FORWARD_GRAD."""

    settings = FORWARD_GRAD

    def __init__(self, params, *, model: nn.Module | None = None, **hyper):
        if model is None:
            raise ValueError("forward-grad needs model=: the module whose parameters it differentiates through")
        super().__init__(params, hyper)
        self.model = model
        self._wrapper = _ClosureModule(model)
        disable_fused_attention(model)
        names = {id(p): name for name, p in model.named_parameters()}
        missing = [p for _, p in self.trainable() if id(p) not in names]
        if missing:
            raise ValueError("forward-grad: every optimized parameter must belong to the given model")
        self._names = names

    rule = property(lambda self: self.shared("base"))
    forwards_per_step = property(lambda self: self.shared("q"))

    def step(self, closure: Callable | None = None) -> torch.Tensor:
        if closure is None:
            raise ValueError(f"{type(self).__name__}.step needs a closure that returns the mini-batch loss")
        pairs = self.trainable()
        params = [p for _, p in pairs]
        names = ["model." + self._names[id(p)] for p in params]
        primals = tuple(p.detach() for p in params)
        estimates = [torch.zeros_like(p, dtype=torch.float32) for p in params]
        self._wrapper.closure = closure

        def loss_of(*values):
            return functional_call(self._wrapper, dict(zip(names, values)), (), strict=False)

        optimized = {id(p) for p in params}
        frozen = {id(t) for t in self.model.parameters() if id(t) not in optimized}
        losses = []
        q, seed, direction = self.shared("q"), self.shared("seed"), self.shared("direction")
        mode = eval_mode(self.model) if self.shared("mode") == "eval" else contextlib.nullcontext()
        with torch.no_grad(), mode, _FrozenLinears(frozen):
            for query in range(q):
                stream = DirectionStream(derive_seed(seed, "forward-grad", self.steps_taken, query), direction)
                tangents = tuple(z.to(p.dtype) for p, z in zip(params, stream.draw_all(params)))
                loss, derivative = jvp(loss_of, primals, tangents)
                self.forward_passes += 1
                if not (torch.isfinite(loss) and torch.isfinite(derivative)):
                    raise NonFiniteLossError(
                        f"ForwardGradient: non-finite loss or derivative at step {self.steps_taken}, query {query}; "
                        "the parameters are left as they were before this step"
                    )
                for estimate, tangent in zip(estimates, tangents):
                    estimate.add_(tangent, alpha=float(derivative) / q)
                losses.append(float(loss))
            for (group, p), estimate in zip(pairs, estimates):
                self.apply(group, p, estimate)
        self._wrapper.closure = None
        self.steps_taken += 1
        return torch.tensor(sum(losses) / len(losses))
