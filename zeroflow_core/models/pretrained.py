"""Backbone weights from local files only: nothing is downloaded."""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

# The paper's backbone as timm names it; its weights are timm/vit_base_patch16_224.augreg_in21k.
IN21K_HUB_NAME = "timm/vit_base_patch16_224.augreg_in21k"


class WeightsNotFoundError(FileNotFoundError):
    pass


def _hub_cache_file(repo: str) -> Path | None:
    """model.safetensors of `repo` in the local Hugging Face cache, if someone put it there."""
    hub = Path(os.environ.get("HF_HUB_CACHE") or Path(os.environ.get("HF_HOME", Path.home() / ".cache/huggingface")) / "hub")
    snapshots = hub / f"models--{repo.replace('/', '--')}" / "snapshots"
    found = sorted(snapshots.glob("*/model.safetensors")) if snapshots.is_dir() else []
    return found[-1] if found else None


def read_state_dict(path: Path) -> dict:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state.get("backbone", state) if isinstance(state, dict) else state


def load_backbone_weights(backbone: nn.Module, path: str | Path, hub_name: str | None = None) -> Path:
    """Load weights into a timm ViT from `path`, else from the local Hugging Face cache of `hub_name`.

    Classifier-head weights in the file are ignored (our backbones have no head); every other
    tensor must match, so a wrong file fails loudly instead of silently training from scratch.
    """
    path = Path(path)
    source = path if path.is_file() else (_hub_cache_file(hub_name) if hub_name else None)
    if source is None:
        where = f"or into the local Hugging Face cache as {hub_name} " if hub_name else ""
        raise WeightsNotFoundError(
            f"backbone weights not found: {path}. Put the checkpoint file there {where}"
            "(nothing is downloaded at run time)"
            + ("" if hub_name else "; for the smoke profile, run `zeroflow pretrain` (or `dvc repro pretrain`) first")
        )
    state = {k: v for k, v in read_state_dict(source).items() if not k.startswith("head.")}
    missing, unexpected = backbone.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{source} does not fit the backbone: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return source
