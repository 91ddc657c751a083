"""Cosine classifiers: logits are scaled cosine similarities between features and class weights."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CosineClassifier(nn.Module):
    """Logits σ · cos(f, w_c) with a learnable scale σ, as in PILOT's CosineLinear.

    σ starts at 1, as PILOT's CosineLinear (which EASE and APER use for their training heads): the
    loss then stays high until σ grows, so the gradient keeps reaching the adapters instead of being
    absorbed by a head that already separates the task at σ = 16.
    """

    evaluates_parameter_sets = True

    def __init__(self, in_features: int, n_classes: int, scale: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_classes, in_features))
        nn.init.normal_(self.weight, std=1.0 / in_features**0.5)
        self.scale = nn.Parameter(torch.tensor(float(scale)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, D) features give (B, C) logits; with a set dimension P in the features or the parameters
        (parameter_sets), (P, B, C)."""
        features, weight = F.normalize(features, dim=-1), F.normalize(self.weight, dim=-1)
        if self.weight.dim() == 2 and self.scale.dim() == 0:
            return self.scale * F.linear(features, weight)
        scale = self.scale.view(-1, 1, 1) if self.scale.dim() else self.scale
        return scale * torch.matmul(features, weight.transpose(-1, -2))


def class_means(features: torch.Tensor, labels: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Mean feature of each class in `classes` (rows in that order)."""
    return torch.stack([features[labels == c].mean(0) for c in classes.tolist()])


def cosine_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """cos(a_i, b_j) for every pair of rows: (n, d) and (m, d) give (n, m)."""
    return F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T
