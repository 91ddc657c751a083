"""Frozen timm ViT backbones with sets of AdaptFormer adapters."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

from zeroflow_core.models._timm import import_timm
from zeroflow_core.models.adapters import Adapter, block_forward
from zeroflow_core.models.parameter_sets import set_linear


@dataclass(frozen=True)
class BackboneSpec:
    timm_name: str
    image_size: int
    timm_kwargs: tuple = ()

    def create(self) -> nn.Module:
        timm = import_timm()
        return timm.create_model(
            self.timm_name, pretrained=False, num_classes=0, img_size=self.image_size, **dict(self.timm_kwargs)
        )


BACKBONES: dict[str, BackboneSpec] = {
    # The tests' and benchmarks' small model: ViT-Ti widths at 32 px with 4 px patches (64 tokens + CLS).
    "vit-tiny": BackboneSpec("vit_tiny_patch16_224", 32, (("patch_size", 4),)),
    # The embedded default's backbone, pretrained by `zeroflow pretrain` on the generated pretext set.
    "vit-smoke": BackboneSpec("vit_tiny_patch16_224", 32,
                              (("patch_size", 8), ("embed_dim", 64), ("depth", 4), ("num_heads", 2))),
    # The paper's backbone (ViT-B/16 at 224 px); weights come from a local file, see models.pretrained: "vit-b16"
    # loads the IN-21K checkpoint the paper's text names, "vit-b16-in21k-ft-in1k" the one INFTY's code loads (timm's
    # vit_base_patch16_224 under PILOT's timm 0.6.12: IN-21K, then fine-tuned on IN-1K). One architecture.
    "vit-b16": BackboneSpec("vit_base_patch16_224", 224),
    "vit-b16-in21k-ft-in1k": BackboneSpec("vit_base_patch16_224", 224),
}


class AdapterViT(nn.Module):
    """A frozen ViT plus any number of adapter sets (one adapter per block in each set).

    `features(x, adapter_set=i)` runs the backbone with set i; `adapter_set=None` runs the plain
    pretrained model. Only adapter parameters are trainable, and only in the sets left unfrozen.
    """

    def __init__(self, backbone: nn.Module, bottleneck: int = 64, scale: float = 0.1, dropout: float = 0.1):
        super().__init__()
        self.backbone = backbone
        self.backbone.requires_grad_(False)
        self.embed_dim = backbone.embed_dim
        self.adapter_config = dict(bottleneck=bottleneck, scale=scale, dropout=dropout)
        self.adapter_sets = nn.ModuleList()
        self._cache_key = None
        self._feature_cache: dict = {}
        # images through the backbone, counted by the trainer to keep held-out records within their budget
        self.images_forwarded = 0

    @property
    def image_size(self) -> int:
        return self.backbone.patch_embed.img_size[0]

    def add_adapter_set(self) -> int:
        adapters = nn.ModuleList(Adapter(self.embed_dim, **self.adapter_config) for _ in self.backbone.blocks)
        param = next(self.backbone.parameters())
        self.adapter_sets.append(adapters.to(device=param.device, dtype=param.dtype))
        return len(self.adapter_sets) - 1

    def freeze_adapter_set(self, index: int) -> None:
        self.adapter_sets[index].requires_grad_(False)

    @contextlib.contextmanager
    def cached_features(self, key):
        """Within this block, features of a frozen adapter set (or the plain backbone) in eval mode are
        computed once per (key, set) and then reused: the caller promises that `key` names the same
        images every time (e.g. one fixed batch of the test set). EASE scores every test image under
        every adapter set after every task; the sets of finished tasks never change, so this computes
        each (image, set) once instead of once per task."""
        self._cache_key = key
        try:
            yield
        finally:
            self._cache_key = None

    def _frozen(self, adapter_set: int | None) -> bool:
        if adapter_set is None:
            return True
        return not any(p.requires_grad for p in self.adapter_sets[adapter_set].parameters())

    def features(self, x: torch.Tensor, adapter_set: int | None = -1) -> torch.Tensor:
        if self._cache_key is not None and not self.training:
            index = adapter_set if adapter_set is None or adapter_set >= 0 else len(self.adapter_sets) + adapter_set
            if self._frozen(index):
                key = (self._cache_key, index)
                if key not in self._feature_cache:
                    self._feature_cache[key] = self._features(x, index)
                return self._feature_cache[key]
        return self._features(x, adapter_set)

    def _features(self, x: torch.Tensor, adapter_set: int | None) -> torch.Tensor:
        vit = self.backbone
        adapters = [None] * len(vit.blocks) if adapter_set is None else self.adapter_sets[adapter_set]
        images = x.shape[0]
        x = vit.norm_pre(vit.patch_drop(vit._pos_embed(vit.patch_embed(x))))
        sets = 0  # P once stacked adapter weights (parameter_sets) have given x a set dimension
        for block, adapter in zip(vit.blocks, adapters):
            x, sets = block_forward(block, x, adapter, sets)
        # what the algorithm evaluates: the batch at every parameter set (the shared prefix ran once)
        self.images_forwarded += images * max(sets, 1)
        features = vit.norm(x)[:, 0]
        return features.unflatten(0, (sets, images)) if sets else features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def disable_fused_attention(model: nn.Module) -> int:
    """Switch timm attention modules to the unfused path; returns how many were switched.

    Forward-mode AD (torch.func.jvp) has no rule for the fused scaled-dot-product kernels on CPU.
    """
    switched = 0
    for module in model.modules():
        if getattr(module, "fused_attn", False):
            module.fused_attn = False
            switched += 1
    return switched


def create_adapter_vit(name: str, **adapter_kwargs) -> AdapterViT:
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; known: {', '.join(sorted(BACKBONES))}")
    return AdapterViT(BACKBONES[name].create(), **adapter_kwargs)


class AdapterClassifier(nn.Module):
    """An AdapterViT with one adapter set and a linear head: the model of the tests and benchmarks.

    The head is frozen by default so that adapters are the only trainable parameters. Its loss evaluates parameter
    sets (parameter_sets.py) with `set_cross_entropy`, as the benchmarks' closures do.
    """

    evaluates_parameter_sets = True

    def __init__(self, vit: AdapterViT, num_classes: int, train_head: bool = False):
        super().__init__()
        self.vit = vit
        if not vit.adapter_sets:
            vit.add_adapter_set()
        self.head = nn.Linear(vit.embed_dim, num_classes)
        self.head.requires_grad_(train_head)
        self.head.evaluates_parameter_sets = True  # read through set_linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return set_linear(self.vit.features(x), self.head.weight, self.head.bias, rank=2)
