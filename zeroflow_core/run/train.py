"""One continual-learning run: the paper's Algorithm 1 (optimizer.step(closure)) inside the continual loop.

    for task t:  seed from (seed, t); method.begin_task(t)
                 for each epoch, for each batch: optimizer.step(closure)     Run.train_task, Algorithm 1
                 method.end_task(t, features_of)                             prototypes, teachers, memories
                 accuracy on every seen class; checkpoint

Run is that loop; each piece it drives has one job:
  RunData         the scenario, transforms, the cached test set and every batch the run reads
  Evaluation      accuracy on the seen classes after each task, and the held-out loss records during training
  Checkpoint      checkpoint.pt after each task, and resuming from it

`train(config, out_dir)` writes into out_dir, each file atomically:
  config.yaml        the resolved configuration, and under set_by the layer that set each key
  checkpoint.pt      after every task: method state, accuracy matrix, logs so far
  metrics.json       at the end: accuracies, forgetting, curves, passes spent
  dvclive/           step-level loss and per-task accuracy, for `dvc plots`
and, after every task, its seconds (and at the end its peak memory and device) into the timing file of out_dir
(zeroflow_core.run.timing: outside out_dir when that is a DVC output under runs/), so that every file of out_dir is a
function of the configuration, the code and the backbone: two identical runs write identical bytes.
A run killed at any point and started again with the same configuration resumes from the last
task checkpoint; every task is seeded from (seed, task), so it ends with the same metrics as an
uninterrupted run.
"""
from __future__ import annotations

import functools
import itertools
import json
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader

from zeroflow_core.data import ClassIncrementalScenario, TensorCache, build_transforms, load_dataset
from zeroflow_core.io import file_sha256, save_torch, write_json, write_yaml
from zeroflow_core.methods import create_method
from zeroflow_core.models.parameter_sets import SetClosure
from zeroflow_core.models.pretrained import PRETRAINED, load_backbone_weights, weights_file
from zeroflow_core.models.vit import BACKBONES, AdapterViT
from zeroflow_core.optim import create_optimizer, optimizer_spec
from zeroflow_core.optim.directions import derive_seed
from zeroflow_core.optim.hybrid_head import BACKPROP_HEAD
from zeroflow_core.run import metrics
from zeroflow_core.run.config import (NO_OPTIMIZER, SET_BY, ConfigError, changed_keys, hybrid_phase_optimizer, identity,
                                      validate)
from zeroflow_core.run.progress import RunProgress
from zeroflow_core.run.runtime import peak_memory_mb, pick_device, set_threads
from zeroflow_core.run.timing import read_timing, write_timing

CHECKPOINT = "checkpoint.pt"
# A checkpoint leaves out the frozen backbone (327 of a ViT-B/16 checkpoint's 337 MiB): it records the backbone's
# identity instead (build_vit), and a resume rebuilds the backbone and checks that identity.
BACKBONE_KEYS = "vit.backbone."
# Held-out records (Figure 7) may cost at most this share of a task's training image-forwards: a record is
# taken every `heldout_every` steps only while the task's records so far cost no more than that (so at most one
# record over the share per task).
HELDOUT_SHARE = 0.1
SMALL_IMAGES = 64  # at or below this side, test-transformed images are cached as tensors


# ------------------------------------------------------------------------------ the continual loop
class Run:
    """The continual loop of one configuration in out_dir; `train_task` is Algorithm 1 on one task."""

    def __init__(self, config: dict, out_dir: Path, progress: bool | None = None):
        self.config = config
        self.out = Path(out_dir)
        self.progress = RunProgress(progress)  # bars on a terminal, else a line per epoch; silent in a stage
        set_threads(config["threads"])
        self.device = pick_device(config["device"])
        self.autocast = False  # bf16 for a forward-pass phase that asks for it (_phases); backprop stays in fp32
        torch.manual_seed(config["seed"])  # the random init of the backbone (without weights), adapters and heads
        self.data = RunData(config, self.device)
        vit, backbone_identity = build_vit(config)
        self.method = create_method(config["method"], vit, self.data.scenario.n_classes,
                                    self.data.scenario.classes_per_task, **config["method_config"]).to(self.device)
        self.history = _new_history(config["n_tasks"])
        self.evaluation = Evaluation(config, self.data, self.method, self.history)
        self.checkpoint = Checkpoint(self.out / CHECKPOINT, backbone_identity, self.device)
        # seconds per task and, per task, per epoch: the timing file's, never the checkpoint's or metrics.json's
        self.timing = {"task_seconds": [], "epoch_seconds": []}

    def __call__(self) -> dict:
        first = self.checkpoint.resume(self.method, self.history)
        self.progress.resumed(self.checkpoint.path, first, self.config["n_tasks"])
        self.timing = _earlier_timing(self.out, first)
        for task in self.progress.bar(range(first, self.config["n_tasks"]), desc="tasks"):
            # dropout and anything else on the global RNG restart from (seed, task): resumable
            torch.manual_seed(derive_seed(self.config["seed"], "task", task))
            started = time.perf_counter()
            self.timing["epoch_seconds"].append([])
            self.method.begin_task(task)
            self.method.to(self.device)
            self.train_task(task)
            self.method.eval()
            self.method.end_task(task, self.data.features_of(self.method.vit, task))
            self.evaluation.accuracy(task)
            self.timing["task_seconds"].append(time.perf_counter() - started)
            # the timing first: a checkpoint then always has its tasks' times beside it (a kill between the two would
            # otherwise leave a resumable task without them); a resumed run keeps the times of the tasks it skips
            write_timing(self.out, self.timing)
            self.checkpoint.save(task, self.method, self.history)
        result = _summary(self.config, self.history)
        epochs = [seconds for task in self.timing["epoch_seconds"] for seconds in task]
        write_timing(self.out, {**self.timing, "seconds_per_epoch": float(np.mean(epochs)) if epochs else 0.0,
                                "peak_memory_mb": peak_memory_mb(self.device), "device": str(self.device)})
        write_dvclive(self.out / "dvclive", self.history)
        write_json(self.out / "metrics.json", result)
        return result

    def train_task(self, task: int) -> None:
        """Algorithm 1 on one task: at each step `optimizer.step(closure)` evaluates the loss (a forward-pass
        optimizer at perturbed parameters, forward passes only), estimates the gradient and updates."""
        config, method, history = self.config, self.method, self.history
        curve, step_norms = [], []
        history["loss_curves"].append(curve)
        history["step_norms"].append(step_norms)
        if not method.trains_on(task) or config["optimizer"] == NO_OPTIMIZER:  # the zero-step control stops here
            return
        with method.stored_classifier_trainable(config["zo_scope"] == "official"):
            train_set = self.data.train_set(task)
            heldout = self.evaluation.heldout_records(task)
            trained = [p for p in method.parameters() if p.requires_grad]
            probe = UpdateProbe(method, self.data.probe_batch(task)) if config["update_probe"] else None
            forwards = 0  # image-forwards of this task's steps: the held-out records' allowance grows with them
            phases = {epoch: phase for phase in _phases(config, task) for epoch in phase[2]}
            spent = []  # the task's optimizers, one per phase
            for epoch in self.progress.bar(range(config["epochs"]), desc=f"task {task + 1}/{config['n_tasks']}",
                                           leave=False):
                name, hyper, epochs, autocast = phases[epoch]
                if epoch == epochs[0]:  # a phase begins: a fresh optimizer (as the reference code's per task)
                    optimizer = create_optimizer(name, _param_groups(method, config, name), model=method, **hyper)
                    scheduler = _scheduler(config, optimizer, name, len(epochs))
                    self.autocast = autocast
                    spent.append(optimizer)
                started, first_step = time.perf_counter(), len(curve)
                method.train()
                for x, y in self.progress.bar(self.data.train_batches(train_set, task, epoch),
                                              desc=f"epoch {epoch + 1}", total=self.data.steps_per_epoch(train_set),
                                              leave=False):
                    counted = method.vit.images_forwarded
                    batch = method.prepare_batch(x, y)
                    before = [p.detach().clone() for p in trained]
                    curve.append(float(optimizer.step(SetClosure(method, functools.partial(self._loss, batch)))))
                    step_norms.append(_distance(trained, before))
                    forwards += method.vit.images_forwarded - counted
                    history["steps"] += 1
                    heldout.after_step(history["steps"], forwards)
                if scheduler is not None:
                    scheduler.step()
                self.timing["epoch_seconds"][-1].append(time.perf_counter() - started)
                self.progress.epoch_done(task, config["n_tasks"], epoch, config["epochs"], curve[first_step:],
                                         self.timing["epoch_seconds"][-1][-1])
            if probe is not None:
                history["updates"].append({"task": task, **probe.finish()})
        history["train_image_forwards"] += forwards
        history["forward_passes"] += sum(o.forward_passes for o in spent)
        history["backward_passes"] += sum(o.backward_passes for o in spent)
        history["head_backward_passes"] += sum(o.head_backward_passes for o in spent)
        history["forwards_per_step"] = (sum(o.forward_passes for o in spent)
                                        / max(sum(o.steps_taken for o in spent), 1))

    def _loss(self, batch: dict) -> torch.Tensor:
        if not self.autocast:
            return self.method.loss(batch)
        with torch.autocast(self.device.type, dtype=torch.bfloat16):
            return self.method.loss(batch).float()


def _distance(params: list[torch.Tensor], before: list[torch.Tensor]) -> float:
    """‖θ − θ_before‖ over every trained tensor: the size of one step."""
    with torch.no_grad():
        return float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(
            torch._foreach_sub([p.detach() for p in params], before)))))


class UpdateProbe:
    """Where a task's training went, on held-out images of the task (the method's training loss there):
    - how far the adapters and the heads moved, ‖Δθ‖ and ‖Δθ‖ / ‖θ_start‖;
    - how much of each group's movement follows the gradient: the cosine between its accumulated update
      θ_start − θ_end and the backprop gradient at θ_start (a first-order update follows it; a noisy estimate's
      spreads over directions the loss does not care about);
    - what each group's move alone did to the loss: the loss at θ_start minus the loss with only that group moved
      to where training left it (the other at its start), beside the drop with both moved. A move that lowers the
      loss in aggregate while one group's alone raises it was carried by the other group."""

    def __init__(self, method, batch: tuple[torch.Tensor, torch.Tensor]):
        self.method = method
        self.batch = batch
        self.params = {name: p for name, p in method.named_parameters() if p.requires_grad}
        self.start = {name: p.detach().clone() for name, p in self.params.items()}
        self.gradient = self._gradient()
        self.start_loss = self._loss()

    def _evaluated(self, fn):
        was_training = self.method.training
        self.method.eval()
        try:
            return fn()
        finally:
            self.method.train(was_training)

    def _gradient(self) -> dict[str, torch.Tensor]:
        x, y = self.batch
        saved = {name: p.grad for name, p in self.params.items()}

        def gradient():
            with torch.enable_grad():
                for p in self.params.values():
                    p.grad = None
                self.method.loss({"x": x, "y": y}).backward()
                return {name: (p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p))
                        for name, p in self.params.items()}

        try:
            return self._evaluated(gradient)
        finally:
            for name, p in self.params.items():
                p.grad = saved[name]

    def _loss(self, at_start=()) -> float:
        """The loss on the batch, with the parameters named in `at_start` put back to their start meanwhile."""
        x, y = self.batch
        now = {name: self.params[name].detach().clone() for name in at_start}
        with torch.no_grad():
            for name in at_start:
                self.params[name].copy_(self.start[name])
            try:
                return float(self._evaluated(lambda: self.method.loss({"x": x, "y": y})))
            finally:
                for name, value in now.items():
                    self.params[name].copy_(value)

    def finish(self) -> dict:
        """Per group (adapters, heads, and the stored classifier under zo_scope official) and in all: moved,
        relative, cosine, and loss_drop, the held-out loss's fall from the group's move alone (all: both)."""
        def group(name: str) -> str:
            if ".adapter_sets." in f".{name}":
                return "adapters"
            return "stored" if name.startswith("stored_classifier") else "heads"  # zo_scope official's prototypes

        groups = {g: [n for n in self.params if group(n) == g] for g in ("adapters", "heads", "stored")}
        groups["all"] = list(self.params)
        out = {}
        for group, names in groups.items():
            if not names:
                continue
            update = torch.cat([(self.start[n] - self.params[n].detach()).flatten() for n in names])
            start = torch.cat([self.start[n].flatten() for n in names])
            gradient = torch.cat([self.gradient[n].flatten() for n in names])
            moved, size, norm = float(update.norm()), float(start.norm()), float(gradient.norm())
            others = [n for n in self.params if n not in names]
            out[group] = {"moved": moved, "relative": moved / size if size else None,
                          "cosine": float(update @ gradient) / (moved * norm) if moved and norm else None,
                          "loss_drop": self.start_loss - self._loss(at_start=others)}
        return out


def build_vit(config: dict) -> tuple[AdapterViT, dict]:
    """The adapter ViT of a run, and what identifies its frozen backbone: the weights file's sha256 (the run's seed's
    own file where backbone_weights is a folder of per-seed pretrainings), or the run seed of a random init (the global
    RNG is seeded from it before this is called)."""
    backbone = BACKBONES[config["backbone"]].create()
    identity = {"backbone": config["backbone"], "random_init_seed": config["seed"]}
    if config["backbone_weights"]:
        pretrained = PRETRAINED.get(config["backbone"])
        source = load_backbone_weights(backbone, weights_file(config["backbone_weights"], config["seed"]),
                                       *(pretrained or ()))
        identity = {"backbone": config["backbone"], "weights_sha256": file_sha256(source)}
    return AdapterViT(backbone, bottleneck=config["adapter_bottleneck"], scale=config["adapter_scale"]), identity


def _new_history(n_tasks: int) -> dict:
    """What a run records as it goes; the checkpoint holds it, metrics.json summarizes it."""
    return {"acc_matrix": metrics.empty_acc_matrix(n_tasks).tolist(), "acc_seen": [],
            "loss_curves": [], "heldout": [],
            "forward_passes": 0, "backward_passes": 0, "head_backward_passes": 0, "steps": 0, "forwards_per_step": None,
            "train_image_forwards": 0, "heldout_image_forwards": 0, "step_norms": [], "updates": []}


def _optimizer_hyper(config: dict, task: int) -> dict:
    hyper = dict(config["optimizer_hyper"])
    if "seed" in optimizer_spec(config["optimizer"]).hyper:
        # a fresh optimizer per task (as the reference code does), with its own direction stream
        hyper["seed"] = derive_seed(hyper.get("seed", config["seed"]), "task", task)
    return hyper


def _phases(config: dict, task: int) -> list[tuple[str, dict, range, bool]]:
    """(optimizer, hyper-parameters, epochs, bf16 autocast) of each phase of a task: the hybrid schedule's backprop
    phase (fo_epochs, never autocast) then the run's optimizer; without it, the run's optimizer alone."""
    autocast = config["autocast"] == "bf16" and optimizer_spec(config["optimizer"]).forward_pass_only
    fo, split = hybrid_phase_optimizer(config), config["fo_epochs"]
    phases = [(fo, config["fo_hyper"], range(split), False)] if fo else []
    rest = range(split if fo else 0, config["epochs"])
    return phases + ([(config["optimizer"], _optimizer_hyper(config, task), rest, autocast)] if len(rest) else [])


def _param_groups(method, config: dict, optimizer: str) -> list:
    """The method's trained parameters, with head_optimizer backprop (and a forward-pass optimizer) split into the
    estimated ones and the head, a group flagged backprop_head (optim/hybrid_head.py)."""
    params = method.trainable_parameters()
    if config["head_optimizer"] != "backprop" or not optimizer_spec(optimizer).forward_pass_only:
        return params
    head = {id(p) for p in method.head_parameters()}
    return [{"params": [p for p in params if id(p) not in head]},
            {"params": [p for p in params if id(p) in head], BACKPROP_HEAD: True}]


def _scheduler(config: dict, optimizer, name: str | None = None,
               epochs: int | None = None) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The schedule of optimizer `name` (the run's by default) over `epochs` (the run's by default; a phase of the
    hybrid schedule passes its own)."""
    name, epochs = name or config["optimizer"], epochs or config["epochs"]
    schedule = config["schedule"]
    if schedule == "auto":
        # The reference code's cosine schedule never reaches its ZO base optimizer: ZO runs at constant lr.
        schedule = "constant" if optimizer_spec(name).forward_pass_only else "cosine"
    if schedule != "cosine":
        return None
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=config["min_lr"])


def _earlier_timing(out: Path, first: int) -> dict:
    """The timing of the `first` tasks a resumed run does not redo, from its timing file (empty lists without one)."""
    earlier = read_timing(out) if first else {}
    tasks, epochs = earlier.get("task_seconds", []), earlier.get("epoch_seconds", [])
    if len(tasks) < first or len(epochs) < first or not all(isinstance(e, list) for e in epochs[:first]):
        return {"task_seconds": [], "epoch_seconds": []}  # not the earlier tasks' record: say nothing of them
    return {"task_seconds": tasks[:first], "epoch_seconds": epochs[:first]}


def _summary(config: dict, history: dict) -> dict:
    """metrics.json of a finished run."""
    h = history
    matrix = np.array(h["acc_matrix"], dtype=float)
    return {
        **metrics.summarize(matrix, h["acc_seen"]),
        "acc_matrix": [[None if np.isnan(v) else v for v in row] for row in matrix.tolist()],
        "acc_seen": h["acc_seen"],
        "loss_curves": h["loss_curves"],
        # how far each task's training loss fell, and the mean over the tasks that trained (metrics.loss_drop)
        "loss_drops": [metrics.loss_drop(c) for c in h["loss_curves"]],
        "loss_drop": metrics.mean_loss_drop(h["loss_curves"]),
        # the mean size of a step in each task (‖θ_{t+1} − θ_t‖), and where each task's training went (UpdateProbe)
        "step_norms": [float(np.mean(norms)) if norms else None for norms in h["step_norms"]],
        "updates": h["updates"],
        "heldout_losses": h["heldout"],
        "forward_passes": h["forward_passes"],
        "train_image_forwards": h["train_image_forwards"],
        "heldout_image_forwards": h["heldout_image_forwards"],
        "backward_passes": h["backward_passes"],
        # backward passes through the classifier head alone (head_optimizer: backprop)
        "head_backward_passes": h["head_backward_passes"],
        "forwards_per_step": h["forwards_per_step"],
        "steps": h["steps"],
        "method": config["method"], "optimizer": config["optimizer"],
        "dataset": config["dataset"], "seed": config["seed"], "profile": config["profile"],
    }


# ---------------------------------------------------------------------------------- data and caches
@functools.lru_cache(maxsize=4)
def _load_split(name: str, root: str, split: str, options_json: str):
    # A warm worker runs many cells of one dataset: generate or read each split once. Loaders return
    # sets that nothing downstream modifies, so sharing one between cells is safe.
    return load_dataset(name, root, split, **json.loads(options_json))


def build_scenario(config: dict) -> ClassIncrementalScenario:
    options = json.dumps(config["dataset_options"], sort_keys=True)
    train = _load_split(config["dataset"], config["data_root"], "train", options)
    test = _load_split(config["dataset"], config["data_root"], "test", options)
    return ClassIncrementalScenario(train, test, config["n_tasks"], seed=config["class_order_seed"])


class RunData:
    """The scenario of a run, its transforms, the test set (as tensors when images are small), and every batch
    the run reads: training batches, deterministic evaluation batches, held-out batches, features for end_task."""

    def __init__(self, config: dict, device: torch.device):
        self.config = config
        self.device = device
        # page-locked batches copied without blocking: the next batch's copy overlaps the current step on a GPU
        self.pinned = device.type == "cuda"
        self.scenario = build_scenario(config)
        image_size = BACKBONES[config["backbone"]].image_size
        self.train_tf, self.test_tf = build_transforms(config["transforms"], image_size, flip=config["flip"])
        self.small_images = image_size <= SMALL_IMAGES
        last = config["n_tasks"] - 1
        self.test_set = self._maybe_cached(self.scenario.test_dataset(last, self.test_tf))
        self.test_labels = torch.as_tensor(self.scenario.test_labels[self.scenario.test_indices(last)])

    def _maybe_cached(self, dataset):
        return TensorCache(dataset) if self.small_images else dataset

    def train_set(self, task: int):
        """The task's training images, each augmented from (seed, task, epoch, item)."""
        seed = derive_seed(self.config["seed"], "augment", task)
        return self.scenario.train_dataset(task, self.train_tf, seed=seed)

    def steps_per_epoch(self, train_set) -> int:
        batches = math.ceil(len(train_set) / self.config["batch_size"])
        return min(self.config["max_steps_per_epoch"] or batches, batches)

    def train_batches(self, train_set, task: int, epoch: int):
        """One epoch of training batches on the device, shuffled from (seed, task, epoch), at most
        max_steps_per_epoch of them."""
        train_set.set_epoch(epoch)
        order = torch.Generator().manual_seed(derive_seed(self.config["seed"], "order", task, epoch))
        loader = DataLoader(train_set, batch_size=self.config["batch_size"], shuffle=True, generator=order,
                            pin_memory=self.pinned, num_workers=self.config["workers"], persistent_workers=False)
        for x, y in itertools.islice(loader, self.steps_per_epoch(train_set)):
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def batches(self, dataset):
        """Deterministic batches of (images, labels) on the device, in dataset order."""
        loader = DataLoader(dataset, batch_size=self.config["eval_batch"], shuffle=False, pin_memory=self.pinned,
                            num_workers=0 if self.small_images else self.config["workers"])
        for x, y in loader:
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def probe_batch(self, task: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The update probe's held-out images: the task's first `heldout_batch` test images (UpdateProbe)."""
        return self.heldout_batches(task)[task]

    def heldout_batches(self, task: int) -> list:
        """The first held-out (test) images of every task seen so far, one fixed batch per task."""
        batches = []
        for i in range(task + 1):
            index = torch.nonzero(self.test_labels // self.scenario.classes_per_task == i).flatten()
            items = [self.test_set[j] for j in index[: self.config["heldout_batch"]].tolist()]
            batches.append((torch.stack([x for x, _ in items]).to(self.device),
                            torch.tensor([y for _, y in items], device=self.device)))
        return batches

    def features_of(self, vit: AdapterViT, task: int):
        """end_task's `features_of`: features of the task's training images under the test transform."""
        data = self._maybe_cached(self.scenario.train_dataset(task, self.test_tf))

        def features_of(adapter_set):
            features, labels = [], []
            with torch.no_grad():
                for x, y in self.batches(data):
                    features.append(vit.features(x, adapter_set))
                    labels.append(y)
            return torch.cat(features), torch.cat(labels)

        return features_of


# ---------------------------------------------------------------------------------------- evaluation
class Evaluation:
    """What a run measures of its method: accuracy on every seen class after each task (the accuracy matrix and
    acc_seen), and held-out losses while a task trains (Figure 7). Both only read the method, in eval mode."""

    def __init__(self, config: dict, data: RunData, method, history: dict):
        self.config = config
        self.data = data
        self.method = method
        self.history = history

    def accuracy(self, task: int) -> None:
        """Accuracy on the test images of every seen class. The whole test set goes through in fixed
        batches, so that features of frozen adapter sets are computed once per run (AdapterViT's
        cached_features), and the rows of unseen classes are dropped."""
        self.method.eval()
        n_seen = self.data.scenario.n_seen_classes(task)
        labels, predictions = [], []
        with torch.no_grad():
            for index, (x, y) in enumerate(self.data.batches(self.data.test_set)):
                seen = y < n_seen
                if not seen.any():
                    continue
                with self.method.vit.cached_features(("test", index)):
                    logits = self.method.logits(x)
                predictions.append(logits[seen].argmax(1).cpu())
                labels.append(y[seen].cpu())
        per_task, overall = metrics.task_accuracies(torch.cat(labels).numpy(), torch.cat(predictions).numpy(),
                                                    self.data.scenario.classes_per_task, task + 1)
        for i, accuracy in enumerate(per_task):
            self.history["acc_matrix"][i][task] = float(accuracy)
        self.history["acc_seen"].append(float(overall))

    def heldout_records(self, task: int) -> HeldoutRecords:
        every = self.config["heldout_every"]
        return HeldoutRecords(self.method, task, every, self.data.heldout_batches(task) if every else [],
                              self.history)


class HeldoutRecords:
    """The held-out losses of every seen task, recorded every `every` steps of one task while their cost stays
    within HELDOUT_SHARE of the task's training image-forwards."""

    def __init__(self, method, task: int, every: int, batches: list, history: dict):
        self.method = method
        self.task = task
        self.every = every
        self.batches = batches
        self.history = history
        self.forwards = 0

    def after_step(self, steps: int, train_forwards: int) -> None:
        if self.batches and steps % self.every == 0 and self.forwards <= HELDOUT_SHARE * train_forwards:
            self._record(steps)

    def _record(self, steps: int) -> None:
        counted = self.method.vit.images_forwarded
        was_training = self.method.training
        self.method.eval()
        losses = []
        with torch.no_grad():
            for index, (x, y) in enumerate(self.batches):
                # the held-out batch of task i is the same images at every record, so frozen adapter sets'
                # features are computed once (EASE's old-class part is then free until its next task)
                with self.method.vit.cached_features(("heldout", index)):
                    losses.append(self.method.heldout_loss(x, y))
        self.method.train(was_training)
        self.history["heldout"].append({"step": steps, "task": self.task, "losses": losses})
        cost = self.method.vit.images_forwarded - counted
        self.forwards += cost
        self.history["heldout_image_forwards"] += cost


# ---------------------------------------------------------------------------------------- checkpoint
def trained_state(method) -> dict:
    """The method's state without the frozen backbone: adapters, heads, prototypes and extra state."""
    if any(p.requires_grad for p in method.vit.backbone.parameters()):
        return method.state_dict()
    return {k: v for k, v in method.state_dict().items() if not k.startswith(BACKBONE_KEYS)}


class Checkpoint:
    """checkpoint.pt: after each task, the method's trained state, the backbone's identity and the history."""

    def __init__(self, path: Path, backbone_identity: dict, device: torch.device):
        self.path = path
        self.backbone_identity = backbone_identity
        self.device = device

    def save(self, task: int, method, history: dict) -> None:
        save_torch(self.path, {"task": task, "method": trained_state(method), "backbone": self.backbone_identity,
                               "history": history})

    def resume(self, method, history: dict) -> int:
        """Load the last task checkpoint into method and history if there is one; return the first task still
        to do. A checkpoint that cannot be read or was made with another backbone is removed (the run starts
        again from task 0); one that does not fit the method stops the run."""
        path = self.path
        if not path.exists():
            return 0
        try:
            state = torch.load(path, map_location=self.device, weights_only=False)
        except Exception as error:  # truncated or garbled: torch raises RuntimeError, EOFError, pickle errors
            path.unlink()
            print(f"{path}: unreadable checkpoint ({type(error).__name__}: {str(error)[:120]}); removed it, "
                  f"the run starts again from task 0 (every task is seeded: it ends as an uninterrupted run)",
                  file=sys.stderr)
            return 0
        saved_backbone = state.get("backbone", self.backbone_identity)
        if saved_backbone != self.backbone_identity:
            path.unlink()
            print(f"{path}: made with another backbone ({saved_backbone}, this run has {self.backbone_identity}); "
                  f"removed it, the run starts again from task 0", file=sys.stderr)
            return 0
        for task in range(state["task"] + 1):
            method.begin_task(task)
        method.to(self.device)
        missing, unexpected = method.load_state_dict(state["method"], strict=False)
        if unexpected or any(not key.startswith(BACKBONE_KEYS) for key in missing):
            raise RuntimeError(f"{path} does not fit this run's method: missing {missing[:5]}, unexpected "
                               f"{unexpected[:5]}; remove {path.parent} and run again")
        # in place: the run and its evaluation hold this dict
        history.clear()
        history.update(state["history"])
        return state["task"] + 1


def write_dvclive(directory: Path, history: dict) -> None:
    """Replay the run's history into a dvclive folder (rebuilt whole, so a resumed run logs once)."""
    from dvclive import Live

    staging = directory.with_name(directory.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    with Live(dir=str(staging), save_dvc_exp=False, dvcyaml=None, report=None) as live:
        step = 0
        for task, curve in enumerate(history["loss_curves"]):
            for loss in curve:
                live.step = step
                live.log_metric("train/loss", loss)
                step += 1
            live.step = max(step - 1, 0)
            live.log_metric("eval/acc_seen", history["acc_seen"][task])
            for i in range(task + 1):
                live.log_metric(f"eval/task_{i}_acc", history["acc_matrix"][i][task])
    shutil.rmtree(directory, ignore_errors=True)
    staging.rename(directory)


def train(config: dict, out_dir: str | Path, progress: bool | None = None, set_by: dict | None = None) -> dict:
    """Run (or resume, or return the finished result of) one configuration in out_dir. `set_by`, the layer that
    set each key (config.resolve), is written beside the configuration in config.yaml."""
    config = validate(config)
    out = Path(out_dir)
    saved = out / "config.yaml"
    if saved.exists():
        changed = changed_keys(identity(yaml.safe_load(saved.read_text())), identity(config))
        if changed and (out / CHECKPOINT).exists():
            key, there, now = changed[0]
            raise ConfigError(f"{out} holds a run with another configuration (key {key!r}: {there!r} there, {now!r} "
                              f"now); use another --out or remove that folder")
        if not changed and (out / "metrics.json").exists():
            return json.loads((out / "metrics.json").read_text())  # done before: a rerun changes nothing
    write_yaml(saved, {**config, SET_BY: set_by} if set_by else config)
    return Run(config, out, progress)()
