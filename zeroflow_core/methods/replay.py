"""Experience replay (ZeroFlow eq. 2): fine-tuning plus a small memory of old-class images.

L = (1/N) L_cur + (1 - 1/N) L_replay, N = number of tasks seen so far, both cross-entropies over
the seen classes; task 0 has no memory and uses L_cur alone.

The trainer only hands the method batches (no end-of-task image pass), so the memory is filled
in `prepare_batch` by per-class reservoir sampling over the training stream: each class keeps at
most `memory_per_class` images, each streamed item equally likely to be kept. The stream is what
the trainer feeds, i.e. augmented views, and over several epochs one image can be kept twice.
A class's images are replayed only once its task is over. The replay batch is drawn in
`prepare_batch`, outside the closure, so every forward of one zeroth-order step sees the same
batch; the memory (kept on the CPU) and the generator state are checkpointed with the method.
"""
from __future__ import annotations

import torch

from zeroflow_core.methods.finetune import Finetune
from zeroflow_core.models.parameter_sets import set_cross_entropy
from zeroflow_core.settings import Setting, declared


class Replay(Finetune):
    name = "replay"
    label = "Replay"
    settings = declared(
        Setting("memory_per_class", 20, "old-class images kept per class (reservoir sampling over the stream)",
                check=lambda value: value >= 1, requirement="must be >= 1"),
        Setting("seed", 0, "seed of the memory's sampling and of the replay batches"),
    )

    def __init__(self, vit, n_classes, classes_per_task, **config):
        super().__init__(vit, n_classes, classes_per_task, **config)
        self.memory: dict[int, list[torch.Tensor]] = {}
        self.seen: dict[int, int] = {}
        self.generator = torch.Generator().manual_seed(int(self.config["seed"]))

    # -- memory ------------------------------------------------------------------------------
    def remember(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Reservoir update of each class's memory with the items of one batch."""
        capacity = int(self.config["memory_per_class"])
        for image, label in zip(x.detach().cpu(), y.tolist()):
            slots = self.memory.setdefault(label, [])
            self.seen[label] = self.seen.get(label, 0) + 1
            if len(slots) < capacity:
                slots.append(image.clone())
                continue
            j = int(torch.randint(self.seen[label], (1,), generator=self.generator))
            if j < capacity:
                slots[j] = image.clone()

    def sample_replay(self, size: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """`size` memory items of the old classes (without replacement when the memory allows)."""
        items = [(image, label) for label in sorted(self.memory) if label < self.task_offset
                 for image in self.memory[label]]
        if not items:
            return None
        if len(items) >= size:
            picks = torch.randperm(len(items), generator=self.generator)[:size]
        else:
            picks = torch.randint(len(items), (size,), generator=self.generator)
        images = torch.stack([items[i][0] for i in picks.tolist()])
        labels = torch.tensor([items[i][1] for i in picks.tolist()])
        return images, labels

    # -- training ----------------------------------------------------------------------------
    def prepare_batch(self, x: torch.Tensor, y: torch.Tensor) -> dict:
        batch = {"x": x, "y": y}
        replay = self.sample_replay(len(y)) if self.task > 0 else None
        if replay is not None:
            batch["x_replay"] = replay[0].to(device=x.device, dtype=x.dtype)
            batch["y_replay"] = replay[1].to(y.device)
        self.remember(x, y)
        return batch

    def loss(self, batch: dict) -> torch.Tensor:
        if "x_replay" not in batch:
            return super().loss(batch)
        n = len(batch["y"])
        logits = self.training_logits(torch.cat([batch["x"], batch["x_replay"]]))
        current = set_cross_entropy(logits[..., :n, :], batch["y"])
        replayed = set_cross_entropy(logits[..., n:, :], batch["y_replay"])
        tasks_seen = self.task + 1
        return current / tasks_seen + (1 - 1 / tasks_seen) * replayed

    # -- checkpointed state ------------------------------------------------------------------
    def get_extra_state(self) -> dict:
        return {
            **super().get_extra_state(),
            "memory": {label: torch.stack(images) for label, images in self.memory.items()},
            "seen": dict(self.seen),
            "generator": self.generator.get_state(),
        }

    def set_extra_state(self, state: dict) -> None:
        super().set_extra_state(state)
        self.memory = {int(label): list(images.cpu().unbind(0)) for label, images in state["memory"].items()}
        self.seen = {int(label): int(count) for label, count in state["seen"].items()}
        self.generator.set_state(state["generator"].cpu())
