"""SimpleCIL (Zhou et al., "Revisiting class-incremental learning with pre-trained models", IJCV 2024).

Class-mean prototypes of the frozen pretrained backbone and nothing else: no adapter, no head, no
step of any optimizer (`trains_on` is always false). PILOT's `simplecil` replaces its cosine
classifier's weights with these prototypes. It is the no-training anchor of every table: an
optimizer's row means something only by how far it is from this one.
"""
from __future__ import annotations

import torch

from zeroflow_core.methods.base import ContinualMethod, FeatureFn, prototype_cross_entropy, seen_prototype_logits
from zeroflow_core.methods.ease import task_prototypes
from zeroflow_core.models.heads import cosine_matrix


class SimpleCIL(ContinualMethod):
    name = "simplecil"
    defaults = {}
    trains = False
    #: scale of the evaluation cosines, as EASE's and APER's: argmax ignores it, held-out losses do not
    prototype_scale = 16.0

    def __init__(self, vit, n_classes, classes_per_task, **config):
        super().__init__(vit, n_classes, classes_per_task, **config)
        if vit.adapter_sets:
            raise ValueError("simplecil uses the plain pretrained backbone: it takes no adapter sets")
        self.prototypes: torch.Tensor | None = None

    def trains_on(self, task: int) -> bool:
        return False

    @torch.no_grad()
    def end_task(self, task: int, features_of: FeatureFn) -> None:
        k = self.classes_per_task
        new = task_prototypes(*features_of(None), torch.arange(task * k, (task + 1) * k))
        old = [self.prototypes[: task * k].to(new)] if task > 0 else []
        self.prototypes = torch.cat(old + [new])

    def prototype_logits(self, x: torch.Tensor) -> torch.Tensor:
        if self.prototypes is None:
            raise RuntimeError("simplecil has no prototypes yet: call end_task first")
        f = self.vit.features(x, None)
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
