"""Class-incremental scenario: a seeded class order split into equal tasks, and torch views.

The class order follows the reference code (PyCIL): `np.random.seed(seed);
np.random.permutation(n_classes)`, seed 1993, and original class `order[j]` becomes label `j`,
so task t holds labels [t * k, (t + 1) * k).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .datasets import ImageSet

Transform = Callable[..., torch.Tensor]


def item_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed for one item in one epoch, independent of worker count and order."""
    state = np.random.SeedSequence([seed, epoch, index]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


class TaskDataset(Dataset):
    """`(image tensor, label)` for `imageset[indices[j]]`.

    `labels` is aligned with the whole `imageset` (e.g. a scenario's remapped labels).
    A training augmentation is drawn from a generator seeded by (seed, epoch, item index), so
    item i in epoch e looks the same in every run whatever the loader's workers do; call
    `set_epoch` before each epoch to get fresh augmentations.
    """

    def __init__(self, imageset: ImageSet, indices: Sequence[int] | np.ndarray,
                 labels: Sequence[int] | np.ndarray, transform: Transform, seed: int = 0):
        self.imageset = imageset
        self.indices = np.asarray(indices, dtype=np.int64)
        self.labels = np.asarray(labels, dtype=np.int64)
        if len(self.labels) != len(imageset):
            raise ValueError(f"labels must be aligned with the image set: {len(self.labels)} "
                             f"labels for {len(imageset)} images")
        if self.indices.size and (self.indices.min() < 0 or self.indices.max() >= len(imageset)):
            raise IndexError("indices out of range of the image set")
        self.transform = transform
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def targets(self) -> np.ndarray:
        """Labels of this view's items, in item order."""
        return self.labels[self.indices]

    def __getitem__(self, j: int):
        i = int(self.indices[j])
        g = torch.Generator().manual_seed(item_seed(self.seed, self.epoch, i))
        if self.imageset.in_memory and hasattr(self.transform, "from_array"):
            # in-memory images skip the PIL round trip when the transform can (same result)
            x = self.transform.from_array(self.imageset.images[i], generator=g)
        else:
            x = self.transform(self.imageset.get_pil(i), generator=g)
        return x, int(self.labels[i])


class TensorCache(Dataset):
    """All items of a dataset with a deterministic transform, computed once and held as tensors.

    Test transforms are deterministic, so evaluating after every task need not decode and
    resize the same images again.
    """

    def __init__(self, dataset: Dataset):
        xs, ys = [], []
        for j in range(len(dataset)):
            x, y = dataset[j]
            xs.append(x)
            ys.append(y)
        if not xs:
            raise ValueError("cannot cache an empty dataset")
        self.x = torch.stack(xs)
        self.y = torch.as_tensor(ys, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, j: int):
        return self.x[j], int(self.y[j])


class ClassIncrementalScenario:
    """Split the classes of (train, test) into `n_tasks` equal tasks in a seeded order."""

    def __init__(self, train: ImageSet, test: ImageSet, n_tasks: int, seed: int = 1993,
                 shuffle: bool = True, class_order: Sequence[int] | None = None):
        if list(train.class_names) != list(test.class_names):
            raise ValueError("train and test must share the same class names in the same order")
        n_classes = train.n_classes
        if n_tasks < 1:
            raise ValueError(f"n_tasks must be >= 1, got {n_tasks}")
        if n_classes % n_tasks:
            raise ValueError(f"{n_classes} classes cannot be split equally into {n_tasks} tasks "
                             f"({n_classes} % {n_tasks} = {n_classes % n_tasks})")
        if class_order is not None:
            order = np.asarray(class_order, dtype=np.int64)
            if sorted(order.tolist()) != list(range(n_classes)):
                raise ValueError(f"class_order must be a permutation of range({n_classes})")
        elif shuffle:
            order = np.random.RandomState(seed).permutation(n_classes).astype(np.int64)
        else:
            order = np.arange(n_classes, dtype=np.int64)
        self.train, self.test = train, test
        self.n_tasks = n_tasks
        self.seed = seed
        self.class_order = order
        self.n_classes = n_classes
        self.classes_per_task = n_classes // n_tasks
        # new label of original class c is its position in the order
        self.label_map = np.empty(n_classes, dtype=np.int64)
        self.label_map[order] = np.arange(n_classes)
        self.train_labels = self.label_map[train.labels]
        self.test_labels = self.label_map[test.labels]
        self.class_names = [train.class_names[c] for c in order]

    def _check_task(self, t: int) -> None:
        if not 0 <= t < self.n_tasks:
            raise IndexError(f"task {t} out of range [0, {self.n_tasks})")

    def task_classes(self, t: int) -> np.ndarray:
        """Remapped labels of task t."""
        self._check_task(t)
        k = self.classes_per_task
        return np.arange(t * k, (t + 1) * k, dtype=np.int64)

    def original_classes(self, t: int) -> np.ndarray:
        """Original (dataset) class indices of task t."""
        self._check_task(t)
        k = self.classes_per_task
        return self.class_order[t * k:(t + 1) * k].copy()

    def task_of(self, labels: np.ndarray | int):
        """Task index of remapped label(s)."""
        return np.asarray(labels) // self.classes_per_task

    def n_seen_classes(self, upto_t: int) -> int:
        self._check_task(upto_t)
        return (upto_t + 1) * self.classes_per_task

    def train_indices(self, t: int) -> np.ndarray:
        """Indices into `train` of task t's images."""
        return np.flatnonzero(self.task_of(self.train_labels) == t)

    def test_indices(self, upto_t: int) -> np.ndarray:
        """Indices into `test` of every class seen up to and including task `upto_t`."""
        return np.flatnonzero(self.test_labels < self.n_seen_classes(upto_t))

    def task_test_indices(self, t: int) -> np.ndarray:
        """Indices into `test` of task t's classes only."""
        self._check_task(t)
        return np.flatnonzero(self.task_of(self.test_labels) == t)

    def train_dataset(self, t: int, transform: Transform, seed: int = 0) -> TaskDataset:
        return TaskDataset(self.train, self.train_indices(t), self.train_labels, transform, seed)

    def test_dataset(self, upto_t: int, transform: Transform) -> TaskDataset:
        return TaskDataset(self.test, self.test_indices(upto_t), self.test_labels, transform)

    def __repr__(self) -> str:
        return (f"ClassIncrementalScenario({self.train.name!r}, n_classes={self.n_classes}, "
                f"n_tasks={self.n_tasks}, seed={self.seed})")
