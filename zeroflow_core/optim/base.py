"""What every optimizer of the registry shares: a descent rule, pass counters, resumable state."""
from __future__ import annotations

import contextlib
import math
from typing import Callable, Iterable

import torch
from torch import nn

from zeroflow_core.optim import rules


class NonFiniteLossError(FloatingPointError):
    """A loss evaluated during a step was NaN or infinite; the parameters were left untouched."""


class ZeroFlowOptimizer(torch.optim.Optimizer):
    """A `torch.optim.Optimizer` whose `step(closure)` takes a closure returning the mini-batch loss.

    The closure only computes the loss: first-order optimizers call `backward()` themselves,
    forward-pass optimizers never do. `forward_passes` and `backward_passes` count what the
    optimizer has spent so far and survive `state_dict()` / `load_state_dict()`.
    """

    def __init__(self, params: Iterable, rule: str, *, lr: float, momentum: float = 0.0,
                 betas: tuple[float, float] = (0.9, 0.999), weight_decay: float = 0.0, adam_eps: float = 1e-8):
        if rule not in rules.RULES:
            raise ValueError(f"unknown descent rule {rule!r}; known: {', '.join(rules.RULES)}")
        check(lr > 0, "lr", lr, "must be > 0")
        check(0 <= momentum < 1, "momentum", momentum, "must be in [0, 1)")
        check(len(betas) == 2 and all(0 <= b < 1 for b in betas), "betas", betas, "must be two numbers in [0, 1)")
        check(weight_decay >= 0, "weight_decay", weight_decay, "must be >= 0")
        defaults = dict(lr=lr, momentum=momentum, betas=tuple(betas), weight_decay=weight_decay, eps=adam_eps)
        super().__init__(params, defaults)
        self.rule = rule
        self.steps_taken = 0
        self.forward_passes = 0
        self.backward_passes = 0

    # -- parameters and updates -------------------------------------------------------------
    def trainable(self) -> list[tuple[dict, torch.Tensor]]:
        """(group, parameter) pairs the optimizer updates: frozen parameters are skipped."""
        return [(group, p) for group in self.param_groups for p in group["params"] if p.requires_grad]

    def propose(self, group: dict, param: torch.Tensor, grad: torch.Tensor):
        return rules.propose(self.rule, group, param, grad, self.state[param])

    def apply(self, group: dict, param: torch.Tensor, grad: torch.Tensor) -> None:
        delta, new_state = self.propose(group, param, grad)
        param.sub_(delta.to(param.dtype))
        self.state[param].update(new_state)

    def evaluate(self, closure: Callable, what: str) -> float:
        """Call the closure once (a forward pass), refusing a non-finite loss."""
        loss = closure()
        self.forward_passes += 1
        return self.refuse_non_finite(float(loss), what)

    def refuse_non_finite(self, value: float, what: str) -> float:
        if not math.isfinite(value):
            raise NonFiniteLossError(
                f"{type(self).__name__}: non-finite loss {value} at step {self.steps_taken} ({what}); "
                "the parameters are left as they were before this step"
            )
        return value

    def first_order_step(self, closure: Callable) -> torch.Tensor:
        """One exact step: backprop through the closure's loss and apply the rule to the gradient.

        Both closure styles work: ours returns the loss, and a torch.optim-style closure calls
        `loss.backward()` itself; a gradient present after the closure (they are cleared before it)
        says which, so the graph is never walked twice."""
        with torch.enable_grad():
            for _, p in self.trainable():
                p.grad = None
            loss = closure()
            self.forward_passes += 1
            self.refuse_non_finite(float(loss.detach()), "exact step")
            if all(p.grad is None for _, p in self.trainable()):
                loss.backward()
            self.backward_passes += 1
        with torch.no_grad():
            for group, p in self.trainable():
                if p.grad is not None:
                    self.apply(group, p, p.grad)
        return loss.detach()

    # -- resumable state ----------------------------------------------------------------------
    def counters(self) -> dict:
        return {"steps_taken": self.steps_taken, "forward_passes": self.forward_passes,
                "backward_passes": self.backward_passes}

    def state_dict(self) -> dict:
        state = _without_dynamo(torch.optim.Optimizer.state_dict)(self)
        state["zeroflow"] = self.counters()
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        extra = state_dict.pop("zeroflow", {})
        _without_dynamo(torch.optim.Optimizer.load_state_dict)(self, state_dict)
        for key, value in extra.items():
            setattr(self, key, value)

    # torch.optim.Optimizer wraps these in torch._disable_dynamo, whose first call imports
    # torch._dynamo: 1.4 s and ~75 MB in every run that builds an optimizer. Our steps are never
    # compiled (the ZO step branches on loss values in Python), so the plain methods are called.
    def add_param_group(self, param_group: dict) -> None:
        _without_dynamo(torch.optim.Optimizer.add_param_group)(self, param_group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        _without_dynamo(torch.optim.Optimizer.zero_grad)(self, set_to_none)


def _without_dynamo(method: Callable) -> Callable:
    return getattr(method, "__wrapped__", method)


def check(ok: bool, name: str, value, requirement: str) -> None:
    if not ok:
        raise ValueError(f"bad hyper-parameter {name}={value!r}: {requirement}")


@contextlib.contextmanager
def eval_mode(model: nn.Module | None):
    """Evaluate losses with dropout off, as the official code does, then restore each module's mode."""
    if model is None:
        yield
        return
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training
