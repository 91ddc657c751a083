"""What every optimizer of the registry shares: a descent rule, hyper-parameters in its param groups, pass
counters, resumable state."""
from __future__ import annotations

import contextlib
import math
import sys
from typing import Callable, Iterable

import torch
from torch import nn

import zeroflow_core.optim.rules as rules
from zeroflow_core.optim.hybrid_head import BACKPROP_HEAD, HeadGradients
from zeroflow_core.optim.hyper import check_group
from zeroflow_core.settings import Setting, check_values, defaults_of


# why batched steps fell back to one forward per query, each said once per process
_FALLBACKS_REPORTED: set[str] = set()


class NonFiniteLossError(FloatingPointError):
    """A loss evaluated during a step was NaN or infinite; the parameters were left untouched."""


class ZeroFlowOptimizer(torch.optim.Optimizer):
    """A `torch.optim.Optimizer` whose `step(closure)` takes a closure returning the mini-batch loss.

    The closure only computes the loss: first-order optimizers call `backward()` themselves,
    forward-pass optimizers never do. Every hyper-parameter of `settings` (hyper.py) is in `defaults`,
    so each param group holds them all; the step reads the per-group ones from the parameter's group and
    the step-wide ones with `shared`. `forward_passes` and `backward_passes` count what the optimizer has
    spent so far and survive `state_dict()` / `load_state_dict()`.
    """

    settings: dict[str, Setting]  # the hyper-parameters its groups hold (hyper.py)
    rule: str  # the descent rule, one of rules.RULES
    #: whether a param group may be flagged backprop_head (hybrid_head.py): the forward-pass optimizers
    takes_backprop_head = True

    def __init__(self, params: Iterable, hyper: dict):
        defaults = {**defaults_of(self.settings),
                    **check_values(hyper, self.settings, type(self).__name__, error=ValueError)}
        super().__init__(params, defaults)
        self.steps_taken = 0
        self.forward_passes = 0
        self.backward_passes = 0
        self.head_backward_passes = 0  # backward passes through the head alone (hybrid_head.py)

    def add_param_group(self, param_group: dict) -> None:
        group = self.checked_group({**self.defaults, **param_group})
        _without_dynamo(torch.optim.Optimizer.add_param_group)(self, group)

    def checked_group(self, group: dict) -> dict:
        """`group` with its hyper-parameters checked and normalised, its step-wide ones against the first group."""
        where = f"{type(self).__name__} param group {len(self.param_groups)}"
        first = self.param_groups[0] if self.param_groups else None
        if BACKPROP_HEAD in group and (not isinstance(group[BACKPROP_HEAD], bool) or not self.takes_backprop_head):
            raise ValueError(f"{where}: {BACKPROP_HEAD!r} must be true or false, and only a forward-pass optimizer "
                             f"takes it (got {group[BACKPROP_HEAD]!r} for {type(self).__name__})")
        return {**group, **check_group(group, self.settings, where, first)}

    def shared(self, name: str):
        """A step-wide hyper-parameter (hyper.STEP_WIDE): every group holds the same value."""
        return self.param_groups[0][name]

    # -- parameters and updates -------------------------------------------------------------
    def trainable(self) -> list[tuple[dict, torch.Tensor]]:
        """(group, parameter) pairs the optimizer's own estimate updates: frozen parameters are skipped, and so is a
        head trained by backprop (`backprop_head`)."""
        return [(group, p) for group in self.param_groups if not group.get(BACKPROP_HEAD)
                for p in group["params"] if p.requires_grad]

    def backprop_head(self) -> list[tuple[dict, torch.Tensor]]:
        """(group, parameter) pairs of the groups flagged backprop_head (hybrid_head.py)."""
        return [(group, p) for group in self.param_groups if group.get(BACKPROP_HEAD)
                for p in group["params"] if p.requires_grad]

    def with_backprop_head(self, closure: Callable, step: Callable):
        """`step(closure)`, and with a backprop head, the head's step along the mean of its gradients at the points
        where `step` evaluated the loss (hybrid_head.HeadGradients); `step`'s result is returned. A step that
        raises leaves the head as it was."""
        head = self.backprop_head()
        if not head:
            return step(closure)
        gradients = HeadGradients(closure, [p for _, p in self.trainable()], [p for _, p in head])
        result = step(gradients)
        for (group, p), gradient in zip(head, gradients.mean()):
            self.apply(group, p, gradient)
        self.head_backward_passes += gradients.backwards
        return result

    def propose(self, group: dict, param: torch.Tensor, grad: torch.Tensor, state: dict | None = None):
        """The rule's step for `param` and the state it would leave, from `state` (by default param's own)."""
        return rules.propose(self.rule, group, param, grad, self.state[param] if state is None else state)

    def apply(self, group: dict, param: torch.Tensor, grad: torch.Tensor) -> None:
        delta, new_state = self.propose(group, param, grad)
        param.sub_(delta.to(param.dtype))
        self.state[param].update(new_state)

    def batches(self, closure: Callable, params: list[torch.Tensor]) -> bool:
        """Whether this step evaluates its queries in batched forwards (the `batched` setting, and a closure that
        evaluates parameter sets: models/parameter_sets.SetClosure); says once per process why not when asked."""
        if not self.defaults.get("batched") or not self.shared("batched"):
            return False
        unsupported = getattr(closure, "unsupported", None)
        reason = unsupported(params) if unsupported else "the closure is a plain function (no losses_at)"
        if reason and reason not in _FALLBACKS_REPORTED:
            _FALLBACKS_REPORTED.add(reason)
            print(f"{type(self).__name__}: batched queries fall back to one forward per query: {reason}",
                  file=sys.stderr)
        return reason is None

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
        pairs = self.trainable() + self.backprop_head()  # an exact step trains the head with the rest
        with torch.enable_grad():
            for _, p in pairs:
                p.grad = None
            loss = closure()
            self.forward_passes += 1
            self.refuse_non_finite(float(loss.detach()), "exact step")
            if all(p.grad is None for _, p in pairs):
                loss.backward()
            self.backward_passes += 1
        with torch.no_grad():
            for group, p in pairs:
                if p.grad is not None:
                    self.apply(group, p, p.grad)
        return loss.detach()

    # -- resumable state ----------------------------------------------------------------------
    def counters(self) -> dict:
        return {"steps_taken": self.steps_taken, "forward_passes": self.forward_passes,
                "backward_passes": self.backward_passes, "head_backward_passes": self.head_backward_passes}

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

    def zero_grad(self, set_to_none: bool = True) -> None:
        _without_dynamo(torch.optim.Optimizer.zero_grad)(self, set_to_none)


def _without_dynamo(method: Callable) -> Callable:
    # torch.optim.Optimizer wraps its methods in torch._disable_dynamo, whose first call imports
    # torch._dynamo: 1.4 s and ~75 MB in every run that builds an optimizer. Our steps are never
    # compiled (the ZO step branches on loss values in Python), so the plain methods are called.
    return getattr(method, "__wrapped__", method)


@contextlib.contextmanager
def eval_mode(model: nn.Module | None):
    """Evaluate losses with dropout off, as the official code does, then restore each module's mode."""
    if model is None:
        yield
        return
    modes = [(m, m.training) for m in model.modules()]
    # what model.eval() does, without walking the module tree again nor nn.Module.__setattr__'s checks for
    # parameters and submodules (a plain attribute): a forward-pass step enters this once per step
    for module, _ in modes:
        object.__setattr__(module, "training", False)
    try:
        yield
    finally:
        for module, training in modes:
            object.__setattr__(module, "training", training)
