"""Backprop pretraining of the small backbone on the generated pretext set.

This is the embedded default's stand-in for ImageNet-21K pretraining: the pretext classes share
no class with the continual-learning sets, so the continual tasks start from features learned
elsewhere, as in the paper's setting.

With `grayscale` (the smoke book's choice) the pretext images are shown in grey: the backbone
learns shapes but never uses colour, and the smoke book's continual set (`hues`, classes that
differ in hue) then holds a factor that the frozen features do not separate and that only
training the adapters can pick up. See the book's introduction for the measurements behind this.

The pipeline pretrains one backbone per seed (`pretrain@<seed>`, into runs/pretrain/seed<k>/): the seed draws the
pretext classes, the initialisation and the data order, and each run of that seed loads it, so that the spread
over seeds includes the backbone's. backbone.pt and pretrain.json are functions of the settings (on one machine's
kernels, bit for bit); the pretraining's seconds go to its timing file (zeroflow_core.run.timing).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from zeroflow_core.data import build_transforms, load_dataset
from zeroflow_core.data.scenario import TaskDataset, TensorCache
from zeroflow_core.io import save_torch, write_json
from zeroflow_core.models.pretrained import BACKBONE_FILE
from zeroflow_core.models.vit import BACKBONES
from zeroflow_core.optim.directions import derive_seed
from zeroflow_core.run.runtime import pick_device, set_threads
from zeroflow_core.run.timing import write_timing


def to_grayscale(imageset):
    """The same images in grey (R = G = B = the mean of the three), labels unchanged."""
    grey = np.round(imageset.images.astype(np.float32).mean(axis=-1, keepdims=True)).astype(np.uint8)
    imageset.images = np.repeat(grey, 3, axis=-1)
    return imageset


def pretrain(out_dir: str | Path, backbone: str = "vit-smoke", epochs: int = 10, batch_size: int = 64,
             lr: float = 1e-3, weight_decay: float = 0.05, seed: int = 0, n_classes: int = 64,
             grayscale: bool = False, threads: int = 0, device: str = "auto",
             progress: bool | None = None) -> dict:
    set_threads(threads)
    device = pick_device(device)
    progress = sys.stderr.isatty() if progress is None else progress
    torch.manual_seed(seed)
    spec = BACKBONES[backbone]
    train_tf, test_tf = build_transforms("light", spec.image_size)
    train = load_dataset("pretext", split="train", seed=seed, n_classes=n_classes)
    test = load_dataset("pretext", split="test", seed=seed, n_classes=n_classes)
    if grayscale:
        train, test = to_grayscale(train), to_grayscale(test)
    train_set = TaskDataset(train, range(len(train)), train.labels, train_tf, seed=seed)
    test_cache = TensorCache(TaskDataset(test, range(len(test)), test.labels, test_tf))

    model = spec.create()
    head = torch.nn.Linear(model.embed_dim, n_classes)
    net = torch.nn.Sequential(model, head).to(device)
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * -(-len(train_set) // batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.1)
    started = time.perf_counter()
    losses = []
    for epoch in tqdm(range(epochs), desc="pretrain", disable=not progress):
        train_set.set_epoch(epoch)
        order = torch.Generator().manual_seed(derive_seed(seed, "pretrain-order", epoch))
        net.train()
        for x, y in DataLoader(train_set, batch_size=batch_size, shuffle=True, generator=order):
            loss = F.cross_entropy(net(x.to(device)), y.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()))
    net.eval()
    with torch.no_grad():
        correct = sum(int((net(test_cache.x[i:i + 512].to(device)).argmax(1).cpu() == test_cache.y[i:i + 512]).sum())
                      for i in range(0, len(test_cache.y), 512))
    result = {"backbone": backbone, "epochs": epochs, "pretext_classes": n_classes, "grayscale": grayscale,
              "pretext_test_accuracy": 100.0 * correct / len(test_cache.y),
              "final_train_loss": sum(losses[-20:]) / len(losses[-20:]), "seed": seed}
    seconds = time.perf_counter() - started
    out = Path(out_dir)
    save_torch(out / BACKBONE_FILE, {"backbone": {k: v.cpu() for k, v in model.state_dict().items()}, "meta": result})
    write_json(out / "pretrain.json", result)
    write_timing(out, {"seconds": seconds, "device": str(device)})
    return {**result, "seconds": seconds}
