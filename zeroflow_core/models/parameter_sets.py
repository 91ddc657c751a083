"""A mini-batch loss at several parameter sets in one forward: the batched queries of a zeroth-order step.

A zeroth-order step needs the loss of one mini-batch at P points θ + s·ε·z. Evaluated one by one, that is P
forwards of the batch. Here the trainable tensors are swapped for stacked ones with a leading set dimension P,
and one forward gives the P losses:
- what runs before the first trainable module (patch embedding, the first block's attention and MLP) runs once;
- from there the activations carry the set dimension, and the frozen layers see the P copies of the batch as
  one batch of P·B images, which a CPU or GPU runs faster than P batches of B.

The contract, kept explicit:
- a module that holds trainable parameters declares `evaluates_parameter_sets = True` and accepts each of its
  parameters with a leading set dimension (`set_linear` does the matmul); its input has that dimension or not,
  told apart by its rank, and its output has it when either has;
- a method's loss reduces over the batch per set (`set_cross_entropy`), returning P losses instead of one;
- everything else (frozen modules, the data) is unchanged.
`SetClosure` is what an optimizer's `step` receives: called, it is the ordinary closure (the loss at the current
parameters); `losses_at` gives the losses at stacked parameters, or `unsupported` says why it cannot, and the
optimizer then evaluates the points one by one.
"""
from __future__ import annotations

import contextlib
import weakref
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn


def set_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, rank: int) -> torch.Tensor:
    """x Wᵀ + b where W (and b) may carry a leading set dimension P, and so may x: `rank` is x's rank without it.

    The result has the set dimension when either has it: (P, *x's batch dims, out).
    """
    if weight.dim() == 2:
        return F.linear(x, weight, bias)
    sets = weight.shape[0]
    batch_shape = x.shape[x.dim() - rank: -1]
    flat = x.reshape(sets if x.dim() > rank else 1, -1, x.shape[-1])
    if flat.shape[0] == 1:  # the same inputs for every set: one (N, in) @ (P, in, out), broadcast
        out = torch.matmul(flat[0], weight.transpose(1, 2))
        if bias is not None:
            out = out + bias.unsqueeze(1)
    elif bias is None:
        out = torch.bmm(flat, weight.transpose(1, 2))
    else:
        out = torch.baddbmm(bias.unsqueeze(1), flat, weight.transpose(1, 2))
    return out.view(sets, *batch_shape, weight.shape[1])


def set_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the batch: one value, or one per set when the logits are (P, B, classes)."""
    if logits.dim() == 2:
        return F.cross_entropy(logits, targets)
    sets = logits.shape[0]
    per_image = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.repeat(sets), reduction="none")
    return per_image.view(sets, -1).mean(1)


def holders(model: nn.Module, params: Sequence[torch.Tensor]) -> list[list[tuple[nn.Module, str]]]:
    """For each parameter, the (module, attribute name) pairs that hold it in `model`."""
    index = {id(p): i for i, p in enumerate(params)}
    found: list[list[tuple[nn.Module, str]]] = [[] for _ in params]
    for module in model.modules():
        for name, param in module._parameters.items():
            if param is not None and id(param) in index:
                found[index[id(param)]].append((module, name))
    return found


@contextlib.contextmanager
def swapped(places: list[list[tuple[nn.Module, str]]], tensors: Sequence[torch.Tensor]):
    """Within the block, the parameter held at each place of `places[i]` (`holders`) reads as `tensors[i]`, as
    torch.func.functional_call swaps them. The tensor goes into the module's __dict__, which attribute lookup
    reads before nn.Module's own parameter lookup: a step swaps every trainable tensor, so this is kept cheap."""
    moved = []
    try:
        for held, tensor in zip(places, tensors):
            for module, name in held:
                moved.append((module, name, module._parameters.pop(name)))
                module.__dict__[name] = tensor
        yield
    finally:
        for module, name, param in moved:
            del module.__dict__[name]
            module._parameters[name] = param


class SetClosure:
    """A step's closure over `model`: `closure()` is `loss()` at the current parameters, and `losses_at(params,
    stacked)` the P losses at the parameter sets `stacked` (one (P, *shape) tensor per parameter), in one forward
    (`loss` is then called with the parameters swapped, and must return the P losses)."""

    def __init__(self, model: nn.Module, loss: Callable[[], torch.Tensor]):
        self.model = model
        self.loss = loss

    def __call__(self) -> torch.Tensor:
        return self.loss()

    def unsupported(self, params: Sequence[torch.Tensor]) -> str | None:
        """Why the losses at `params` cannot be batched (the model's loss or a module that holds one of them does
        not evaluate parameter sets), or None."""
        return _layout(self.model, params)[1]

    def losses_at(self, params: Sequence[torch.Tensor], stacked: Sequence[torch.Tensor]) -> torch.Tensor:
        sets = stacked[0].shape[0]
        with swapped(_layout(self.model, params)[0], stacked):
            losses = self.loss()
        if losses.shape != (sets,):
            raise RuntimeError(f"the loss at {sets} parameter sets has shape {tuple(losses.shape)}, not ({sets},): "
                               "it must reduce over the batch per set (parameter_sets.set_cross_entropy)")
        return losses


# model → (the parameters' ids, their holders, why they cannot be batched): a step's closure is new every step, the
# model and its trainable parameters only change between tasks
_LAYOUTS: "weakref.WeakKeyDictionary[nn.Module, tuple]" = weakref.WeakKeyDictionary()


def _layout(model: nn.Module, params: Sequence[torch.Tensor]) -> tuple[list, str | None]:
    key = tuple(id(p) for p in params)
    cached = _LAYOUTS.get(model)
    if cached is None or cached[0] != key:
        places = holders(model, params)
        cached = _LAYOUTS[model] = (key, places, _why_not(model, params, places))
    return cached[1], cached[2]


def _why_not(model: nn.Module, params: Sequence[torch.Tensor], places: list) -> str | None:
    if not getattr(model, "evaluates_parameter_sets", False):
        return f"{type(model).__name__}'s loss does not reduce per parameter set"
    for held in places:
        if not held:
            return "a parameter is not in the model"
        for module, name in held:
            if not getattr(module, "evaluates_parameter_sets", False):
                return f"{type(module).__name__} (holding {name!r}) does not evaluate parameter sets"
    return None
