"""The interface every continual-learning method implements.

A method owns the adapter ViT and its classifiers. The trainer drives it:

    for task t:   begin_task(t)                      structure only (adapters, heads): no data
                  if trains_on(t): for each batch:
                      batch = prepare_batch(x, y)      anything that does not depend on the
                                                       trained parameters (teacher outputs, replay
                                                       samples), computed once per step
                      optimizer.step(lambda: loss(batch))
                  end_task(t, features_of)           prototypes, teachers, memories
                  evaluate with logits(x)

Every loss term is computed inside `loss`, from forward passes only, so every optimizer of the
registry (backprop, zeroth-order, forward-grad) trains every method. `loss` must reach trainable
parameters through modules (forward-grad swaps them with torch.func.functional_call).
State that `end_task` builds is returned by `get_extra_state` so that checkpoints hold it.
"""
from __future__ import annotations

import contextlib
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from zeroflow_core.models.vit import AdapterViT
from zeroflow_core.settings import Setting, check_values, defaults_of

# `features_of(adapter_set)` returns (features, labels) of the current task's training images
# under the test transform, computed with the given adapter set (None = the plain backbone).
FeatureFn = Callable[[int | None], tuple[torch.Tensor, torch.Tensor]]


class ContinualMethod(nn.Module):
    name = "base"
    label = "base"  # the name the book prints
    #: the method's settings (a run's `method_config`), each with its default, type and help; `defaults` follows
    settings: dict[str, Setting] = {}
    defaults: dict = {}
    #: False for a method that never steps an optimizer (its runs have no optimizer axis)
    trains: bool = True
    #: its loss reduces per parameter set (models/parameter_sets.py), so a zeroth-order step can evaluate all its
    #: queries in one forward; otherwise the step falls back to one forward per query
    evaluates_parameter_sets: bool = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.defaults = defaults_of(cls.settings)

    @classmethod
    def check_settings(cls, values: dict, where: str, prefix: str = "", error=None) -> dict:
        """The one check of a method's settings (params.yaml, a run's configuration, the constructor)."""
        return check_values(values, cls.settings, where, prefix=prefix, **({"error": error} if error else {}))

    def __init__(self, vit: AdapterViT, n_classes: int, classes_per_task: int, **config):
        super().__init__()
        self.config = {**self.defaults, **self.check_settings(config, f"method {self.name!r}", error=ValueError)}
        self.vit = vit
        self.n_classes = n_classes
        self.classes_per_task = classes_per_task
        self.task = -1

    # -- structure ---------------------------------------------------------------------------
    @property
    def n_seen(self) -> int:
        return (self.task + 1) * self.classes_per_task

    @property
    def task_offset(self) -> int:
        return self.task * self.classes_per_task

    def begin_task(self, task: int) -> None:
        self.task = task

    @classmethod
    def trains_on(cls, task: int) -> bool:
        return True

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def training_head(self) -> nn.Module:
        """The classifier head the training loss reads (what head_optimizer: backprop trains by backprop)."""
        raise NotImplementedError(f"{self.name} has no training head")

    def head_parameters(self) -> list[nn.Parameter]:
        """The trainable parameters of the training head."""
        return [p for p in self.training_head().parameters() if p.requires_grad]

    def stored_classifier(self) -> list[torch.Tensor]:
        """The evaluation classifier's stored tensors (EASE's prototypes), which no loss depends on."""
        return []

    @contextlib.contextmanager
    def stored_classifier_trainable(self, trainable: bool = True):
        """Within the block the stored classifier is a parameter with requires_grad (zo_scope: official).

        PILOT's networks keep it so (EaseNet rebuilds its prototype classifier with requires_grad every task), and
        INFTY's ZeroFlow perturbs and updates every such parameter: a forward-pass step then moves the stored
        prototypes by noise and weight decay, while backprop leaves them alone (they get no gradient). Each
        parameter is a view of its tensor, so what the optimizer does to it lands in the stored tensor.
        """
        names = []
        for index, tensor in enumerate(self.stored_classifier() if trainable else []):
            names.append(f"stored_classifier_{index}")
            self.register_parameter(names[-1], nn.Parameter(tensor))
        try:
            yield
        finally:
            for name in names:
                del self._parameters[name]

    # -- training ----------------------------------------------------------------------------
    def prepare_batch(self, x: torch.Tensor, y: torch.Tensor) -> dict:
        return {"x": x, "y": y}

    def loss(self, batch: dict) -> torch.Tensor:
        raise NotImplementedError

    def end_task(self, task: int, features_of: FeatureFn) -> None:
        pass

    # -- evaluation --------------------------------------------------------------------------
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Scores over the classes seen so far (evaluation classifier, after end_task)."""
        raise NotImplementedError

    def heldout_loss(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """Loss on held-out images of any seen task, under the parameters being trained now.

        Default: cross-entropy of the current-task objective's head over all classes seen so far.
        """
        return float(F.cross_entropy(self.training_logits(x), y))

    def training_logits(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # -- checkpointed state ------------------------------------------------------------------
    def get_extra_state(self) -> dict:
        return {"task": self.task}

    def set_extra_state(self, state: dict) -> None:
        self.task = state["task"]


def seen_prototype_logits(method, x: torch.Tensor) -> torch.Tensor:
    """`method.prototype_logits(x)`, refused until end_task has given every seen class a prototype."""
    scores = method.prototype_logits(x)
    if scores.shape[1] != method.n_seen:
        raise RuntimeError(f"{method.name}: task {method.task} has no prototypes yet: call end_task({method.task}) first")
    return scores


def prototype_cross_entropy(method, x: torch.Tensor, y: torch.Tensor) -> float:
    """Cross-entropy of a prototype classifier (`method.prototypes`, `method.prototype_logits`) on the images
    whose class already has a prototype; NaN when none has."""
    if method.prototypes is None:
        return float("nan")
    known = y < method.prototypes.shape[0]
    if not known.any():
        return float("nan")
    return float(F.cross_entropy(method.prototype_logits(x[known]), y[known]))
