"""Sequential fine-tuning: the lower bound. One adapter set and one growing head, no protection."""
from __future__ import annotations

import torch
from zeroflow_core.methods.base import ContinualMethod
from zeroflow_core.models.heads import CosineClassifier
from zeroflow_core.models.parameter_sets import set_cross_entropy


class Finetune(ContinualMethod):
    name = "finetune"
    label = "Fine-tune"
    evaluates_parameter_sets = True  # set_cross_entropy; its own parameters are read by no loss
    head_scale = 16.0

    def __init__(self, vit, n_classes, classes_per_task, **config):
        super().__init__(vit, n_classes, classes_per_task, **config)
        if not vit.adapter_sets:
            vit.add_adapter_set()
        # One head over every class; logits of unseen classes are masked out, so the head's
        # rows of old classes are pushed down by new-task data: the forgetting we want to show.
        # PILOT's fine-tuning baselines train a plain linear head, not EASE's CosineLinear with σ = 1:
        # σ starts at 16, where a cosine head over many classes learns within a task's few steps.
        self.head = CosineClassifier(vit.embed_dim, n_classes, scale=self.head_scale)

    def training_head(self) -> torch.nn.Module:
        return self.head

    def training_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.vit.features(x, 0))[..., : self.n_seen]

    def loss(self, batch: dict) -> torch.Tensor:
        return set_cross_entropy(self.training_logits(batch["x"]), batch["y"])

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.training_logits(x)
