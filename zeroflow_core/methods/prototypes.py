"""Classification by cosine to one class-mean prototype per seen class: what SimpleCIL and APER share.

A subclass says which features its prototypes live in (`prototype_features`) and, in `end_task`,
adds the finished task's prototypes (`add_task_prototypes`); the scoring, the held-out loss and
the checkpointed prototypes are the same for both.
"""
from __future__ import annotations

import torch

from zeroflow_core.methods.base import ContinualMethod, prototype_cross_entropy, seen_prototype_logits
from zeroflow_core.methods.ease import task_prototypes
from zeroflow_core.models.heads import cosine_matrix


class PrototypeClassifier(ContinualMethod):
    #: scale of the evaluation cosines, as EASE's: argmax (accuracy) ignores it, held-out losses do not
    prototype_scale = 16.0

    def __init__(self, vit, n_classes, classes_per_task, **config):
        super().__init__(vit, n_classes, classes_per_task, **config)
        self.prototypes: torch.Tensor | None = None

    def prototype_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def add_task_prototypes(self, task: int, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Append the class means of task `task`'s classes to the prototypes of the earlier tasks."""
        k = self.classes_per_task
        new = task_prototypes(features, labels, torch.arange(task * k, (task + 1) * k))
        old = [self.prototypes[: task * k].to(new)] if task > 0 else []
        self.prototypes = torch.cat(old + [new])

    def prototype_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Scaled cosines to the prototypes of every class of the finished tasks."""
        if self.prototypes is None:
            raise RuntimeError(f"{self.name} has no prototypes yet: call end_task first")
        f = self.prototype_features(x)
        return self.prototype_scale * cosine_matrix(f, self.prototypes.to(f))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return seen_prototype_logits(self, x)

    @torch.no_grad()
    def heldout_loss(self, x: torch.Tensor, y: torch.Tensor) -> float:
        return prototype_cross_entropy(self, x, y)

    def get_extra_state(self) -> dict:
        return {**super().get_extra_state(), "prototypes": self.prototypes}

    def set_extra_state(self, state: dict) -> None:
        super().set_extra_state(state)
        self.prototypes = state["prototypes"]
