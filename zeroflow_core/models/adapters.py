"""AdaptFormer adapters for a frozen timm ViT (one per block, parallel to its MLP, as PILOT's EASE/APER)."""
from __future__ import annotations

import math

import torch
from torch import nn

from zeroflow_core.models.parameter_sets import set_linear


class Adapter(nn.Module):
    """Bottleneck MLP parallel to a block's MLP: up(dropout(relu(down(x)))) * scale.

    The up-projection starts at zero, so a fresh adapter leaves the pretrained model unchanged.
    """

    evaluates_parameter_sets = True  # parameter_sets: its weights may be stacked, and then x may be (P, B, T, D)

    def __init__(self, dim: int, bottleneck: int = 64, scale: float = 0.1, dropout: float = 0.1):
        super().__init__()
        self.down = nn.Linear(dim, bottleneck)
        self.up = nn.Linear(bottleneck, dim)
        self.dropout = nn.Dropout(dropout)
        self.scale = scale
        nn.init.kaiming_uniform_(self.down.weight, a=math.sqrt(5))
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)
        # the Linear modules are read through set_linear, so they evaluate parameter sets too
        self.down.evaluates_parameter_sets = self.up.evaluates_parameter_sets = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.down.weight.dim() == 2:
            return self.up(self.dropout(torch.relu(self.down(x)))) * self.scale
        hidden = torch.relu(set_linear(x, self.down.weight, self.down.bias, rank=3))
        return set_linear(self.dropout(hidden), self.up.weight, self.up.bias, rank=3) * self.scale


def block_forward(block: nn.Module, x: torch.Tensor, adapter: Adapter | None, sets: int = 0):
    """A timm ViT `Block` forward with the adapter added beside the MLP branch; returns (x, sets).

    The adapter reads the residual stream after attention (AdaptFormer's parallel form, no layer norm in front of
    it), as PILOT's EASE/APER backbones do. With stacked adapter weights (parameter_sets) the first adapter's
    output carries the set dimension P: from there x holds the P copies of the batch as one batch of P·B
    (`sets` = P), and everything before it ran once.
    """
    x = x + block.drop_path1(block.ls1(block.attn(block.norm1(x))))
    branch = block.drop_path2(block.ls2(block.mlp(block.norm2(x))))
    if adapter is None:
        return x + branch, sets
    if not sets:
        added = adapter(x)
        if added.dim() == x.dim():
            return x + (branch + added), 0
        sets = added.shape[0]
        return (x + (branch + added)).flatten(0, 1), sets  # broadcast over the sets, then P·B images
    added = adapter(x.unflatten(0, (sets, -1)))
    return x + (branch + added.flatten(0, 1)), sets
