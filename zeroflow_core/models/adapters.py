"""AdaptFormer adapters for a frozen timm ViT: one per block, parallel to its MLP (as EASE and APER use them)."""
from __future__ import annotations

import math

import torch
from torch import nn


class Adapter(nn.Module):
    """Bottleneck MLP parallel to a block's MLP: up(dropout(relu(down(x)))) * scale.

    The up-projection starts at zero, so a fresh adapter leaves the pretrained model unchanged.
    """

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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.dropout(torch.relu(self.down(x)))) * self.scale


def block_forward(block: nn.Module, x: torch.Tensor, adapter: Adapter | None) -> torch.Tensor:
    """A timm ViT `Block` forward with the adapter added beside the MLP branch.

    The adapter reads the residual stream after attention (AdaptFormer's parallel form, no
    layer norm in front of it), as PILOT's EASE/APER backbones do.
    """
    x = x + block.drop_path1(block.ls1(block.attn(block.norm1(x))))
    branch = block.drop_path2(block.ls2(block.mlp(block.norm2(x))))
    if adapter is not None:
        branch = branch + adapter(x)
    return x + branch
