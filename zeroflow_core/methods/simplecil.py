"""SimpleCIL (Zhou et al., "Revisiting class-incremental learning with pre-trained models", IJCV 2024).

Class-mean prototypes of the frozen pretrained backbone and nothing else: no adapter, no head, no
step of any optimizer (`trains_on` is always false). PILOT's `simplecil` replaces its cosine
classifier's weights with these prototypes. It is the no-training anchor of every table: an
optimizer's row means something only by how far it is from this one.
"""
from __future__ import annotations

import torch

from zeroflow_core.methods.base import FeatureFn
from zeroflow_core.methods.prototypes import PrototypeClassifier


class SimpleCIL(PrototypeClassifier):
    name = "simplecil"
    label = "SimpleCIL"
    trains = False

    def __init__(self, vit, n_classes, classes_per_task, **config):
        super().__init__(vit, n_classes, classes_per_task, **config)
        if vit.adapter_sets:
            raise ValueError("simplecil uses the plain pretrained backbone: it takes no adapter sets")

    @classmethod
    def trains_on(cls, task: int) -> bool:
        return False

    @torch.no_grad()
    def end_task(self, task: int, features_of: FeatureFn) -> None:
        self.add_task_prototypes(task, *features_of(None))

    def prototype_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.vit.features(x, None)
