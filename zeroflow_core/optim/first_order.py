"""FO-SGD and FO-Adam: backprop through the closure's loss, then the shared descent rule."""
from __future__ import annotations

from typing import Callable

import torch

from zeroflow_core.optim.base import ZeroFlowOptimizer


class FirstOrderOptimizer(ZeroFlowOptimizer):
    """Ordinary backprop training (the model stays in whatever mode the caller set)."""

    def __init__(self, params, rule: str, *, model=None, **hyper):
        super().__init__(params, rule, **hyper)

    def step(self, closure: Callable | None = None) -> torch.Tensor:
        if closure is None:
            raise ValueError(f"{type(self).__name__}.step needs a closure that returns the mini-batch loss")
        loss = self.first_order_step(closure)
        self.steps_taken += 1
        return loss
