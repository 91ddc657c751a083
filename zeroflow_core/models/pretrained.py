"""Backbone weights from local files only: nothing is downloaded."""
from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

# The paper's backbone as timm names it; its weights are timm/vit_base_patch16_224.augreg_in21k.
IN21K_HUB_NAME = "timm/vit_base_patch16_224.augreg_in21k"
# INFTY's backbone: PILOT's vit_ease.py builds timm.create_model("vit_base_patch16_224", pretrained=True), which
# under the timm PILOT pins (0.6.12) loads Google's augreg B/16 trained on IN-21K and fine-tuned on IN-1K (the
# file B_16-i21k-300ep-...--imagenet2012-steps_20k-lr_0.01-res_224.npz), tagged augreg_in21k_ft_in1k since timm 0.9.
# (timm >= 0.9 resolves the bare name to augreg2_in21k_ft_in1k, another fine-tune: not the pinned one.)
IN21K_FT_IN1K_HUB_NAME = "timm/vit_base_patch16_224.augreg_in21k_ft_in1k"


class Pretrained(NamedTuple):
    """The checkpoint a backbone name stands for: its timm tag on the Hugging Face hub (where the local HF cache
    is looked up) and the classes of its head (a file with another head is another pretraining)."""

    hub_name: str
    head_classes: int


# backbone name (models.vit.BACKBONES) -> the pretrained checkpoint it loads
PRETRAINED = {"vit-b16": Pretrained(IN21K_HUB_NAME, 21843),
              "vit-b16-in21k-ft-in1k": Pretrained(IN21K_FT_IN1K_HUB_NAME, 1000)}


# The smoke profile's pretrainings (dvc.yaml's pretrain@<seed>): one folder per seed, each with its BACKBONE_FILE.
PRETRAIN_DIR = Path("runs/pretrain")
BACKBONE_FILE = "backbone.pt"


class WeightsNotFoundError(FileNotFoundError):
    pass


def seed_folder(seed: int, root: str | Path = PRETRAIN_DIR) -> Path:
    """Where the pretraining of `seed` goes: root/seed<k>/."""
    return Path(root) / f"seed{seed}"


def weights_file(weights: str | Path, seed: int) -> Path:
    """The weights file a run of `seed` loads: `weights` itself, or, where `weights` is a folder of per-seed
    pretrainings (the smoke profile's runs/pretrain), that seed's seed<k>/backbone.pt: each seed its own backbone."""
    path = Path(weights)
    if not path.is_dir():
        return path
    own = seed_folder(seed, path) / BACKBONE_FILE
    if not own.is_file():
        raise WeightsNotFoundError(f"{path} holds no pretraining of seed {seed} ({own} is missing): the pipeline "
                                   f"pretrains one backbone per seed of grid.seeds; run `dvc repro pretrain@{seed}`")
    return own


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


def load_backbone_weights(backbone: nn.Module, path: str | Path, hub_name: str | None = None,
                          head_classes: int | None = None) -> Path:
    """Load weights into a timm ViT from `path`, else from the local Hugging Face cache of `hub_name`.

    Classifier-head weights in the file are ignored (our backbones have no head); every other
    tensor must match, so a wrong file fails loudly instead of silently training from scratch. With
    `head_classes`, a file whose head has another number of classes is refused: the IN-21K checkpoint and its
    IN-1K fine-tune share every other shape, so the head is what tells them apart.
    """
    path = Path(path)
    source = path if path.is_file() else (_hub_cache_file(hub_name) if hub_name else None)
    if source is None:
        where = f"or into the local Hugging Face cache as {hub_name} " if hub_name else ""
        raise WeightsNotFoundError(
            f"backbone weights not found: {path}. Put the checkpoint file there {where}"
            "(nothing is downloaded at run time)"
            + ("" if hub_name else "; for the smoke profile, run `dvc repro pretrain` (one pretrain@<seed> stage per "
               "seed) or `zeroflow pretrain` first")
        )
    saved = read_state_dict(source)
    head = saved.get("head.weight")
    if head_classes is not None and head is not None and head.shape[0] != head_classes:
        raise ValueError(f"{source} has a {head.shape[0]}-class head, but the backbone's checkpoint ({hub_name}) has "
                         f"{head_classes} classes: it is another pretraining. Set 'backbone_weights' to that "
                         "backbone's file, or 'backbone' to the one this file belongs to (README, Datasets and weights)")
    state = {k: v for k, v in saved.items() if not k.startswith("head.")}
    missing, unexpected = backbone.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{source} does not fit the backbone: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return source
