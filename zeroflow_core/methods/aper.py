"""APER with adapters (Zhou et al., IJCV 2024): adapt on the first task, then prototypes only.

Task 0 trains adapter set 0 and a cosine head over task 0's classes; afterwards both are frozen
and later tasks train nothing (`trains_on(t)` is t == 0), so a zeroth-order optimizer only ever
touches task 0. Every class gets a class-mean prototype of the concatenated feature
[plain pretrained CLS, adapted CLS], and evaluation is the cosine to those prototypes over the
whole concatenated vector (PILOT's CosineLinear on the merged branches).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from zeroflow_core.methods.base import FeatureFn
from zeroflow_core.methods.prototypes import PrototypeClassifier
from zeroflow_core.models.heads import CosineClassifier
from zeroflow_core.models.parameter_sets import set_cross_entropy
from zeroflow_core.settings import Setting, declared


class Aper(PrototypeClassifier):
    name = "aper"
    label = "APER"
    evaluates_parameter_sets = True  # set_cross_entropy; its own parameters are read by no loss
    settings = declared(Setting("head_scale", 1.0, "the training head's initial σ (PILOT's CosineLinear: 1)",
                                check=lambda value: value > 0, requirement="must be > 0"))

    def __init__(self, vit, n_classes, classes_per_task, **config):
        super().__init__(vit, n_classes, classes_per_task, **config)
        if not vit.adapter_sets:
            vit.add_adapter_set()
        self.head = CosineClassifier(vit.embed_dim, classes_per_task, scale=self.config["head_scale"])

    @classmethod
    def trains_on(cls, task: int) -> bool:
        return task == 0

    def begin_task(self, task: int) -> None:
        super().begin_task(task)
        if task > 0:
            self._freeze()

    def _freeze(self) -> None:
        self.vit.freeze_adapter_set(0)
        self.head.requires_grad_(False)

    # -- training (task 0 only) --------------------------------------------------------------
    def training_head(self) -> torch.nn.Module:
        return self.head

    def training_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.vit.features(x, 0))

    def loss(self, batch: dict) -> torch.Tensor:
        return set_cross_entropy(self.training_logits(batch["x"]), batch["y"])

    @torch.no_grad()
    def end_task(self, task: int, features_of: FeatureFn) -> None:
        self._freeze()
        plain, labels = features_of(None)
        adapted, labels_adapted = features_of(0)
        if not torch.equal(labels.cpu(), labels_adapted.cpu()):
            raise ValueError("features_of(None) and features_of(0) must list the same images in the same order")
        self.add_task_prototypes(task, torch.cat([plain, adapted], dim=1), labels)

    # -- evaluation --------------------------------------------------------------------------
    def prototype_features(self, x: torch.Tensor) -> torch.Tensor:
        """[plain pretrained CLS, adapted CLS]: the prototypes live in the concatenation."""
        return torch.cat([self.vit.features(x, None), self.vit.features(x, 0)], dim=1)

    @torch.no_grad()
    def heldout_loss(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """Task 0: the training loss. Later tasks train nothing, so the loss is the cross-entropy of
        the prototype logits, on the images whose class already has a prototype (NaN if none)."""
        if self.task == 0:
            return float(F.cross_entropy(self.training_logits(x), y))
        return super().heldout_loss(x, y)
