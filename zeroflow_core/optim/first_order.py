"""FO-SGD and FO-Adam: backprop through the closure's loss, then the shared descent rule."""
from __future__ import annotations

from typing import Callable

import torch

import zeroflow_core.optim.rules as rules
from zeroflow_core.optim.base import ZeroFlowOptimizer
from zeroflow_core.optim.hyper import FIRST_ORDER


class FirstOrderOptimizer(ZeroFlowOptimizer):
    """Ordinary backprop training (the model stays in whatever mode the caller set)."""

    settings = FIRST_ORDER
    takes_backprop_head = False  # it trains every parameter by backprop already

    def __init__(self, params, rule: str, *, model=None, **hyper):
        self.rule = rules.checked(rule)
        super().__init__(params, hyper)

    def step(self, closure: Callable | None = None) -> torch.Tensor:
        if closure is None:
            raise ValueError(f"{type(self).__name__}.step needs a closure that returns the mini-batch loss")
        loss = self.first_order_step(closure)
        self.steps_taken += 1
        return loss
