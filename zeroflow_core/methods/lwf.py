"""Learning without Forgetting, the regularization family of ZeroFlow eq. 3: L = L_cur + alpha L_reg.

Fine-tuning (one adapter set, one cosine head over all classes) plus knowledge distillation of
the old classes' logits from a frozen teacher, the model as it was when the task began:
L_reg = T^2 KL(softmax(teacher / T) || softmax(student / T)) over the old classes.

The teacher's logits do not depend on the trained parameters, so `prepare_batch` computes them
once per step, without gradient and with dropout off; the closure only runs the student, which
keeps every optimizer (backprop, zeroth-order, forward-grad) usable. The teacher lives in the
module tree (a frozen extra adapter set of the shared ViT and a frozen copy of the head), created
by begin_task for every task t >= 1, so a method rebuilt with begin_task(0..t) has the same
structure and load_state_dict restores the teacher.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from zeroflow_core.methods.finetune import Finetune
from zeroflow_core.models.parameter_sets import set_cross_entropy
from zeroflow_core.optim.base import eval_mode
from zeroflow_core.settings import Setting, declared


class LwF(Finetune):
    name = "lwf"
    label = "LwF"
    settings = declared(
        Setting("alpha", 1.0, "weight α of the distillation term L_reg (paper eq. 3)",
                check=lambda value: value >= 0, requirement="must be >= 0"),
        Setting("temperature", 2.0, "distillation temperature T", check=lambda value: value > 0,
                requirement="must be > 0"),
    )

    def __init__(self, vit, n_classes, classes_per_task, **config):
        super().__init__(vit, n_classes, classes_per_task, **config)
        self.teacher_set: int | None = None
        self.teacher_head = None
        # the task whose start the teacher copies: a repeated begin_task(t) keeps that teacher
        self.teacher_task = -1

    def begin_task(self, task: int) -> None:
        super().begin_task(task)
        if task == 0:
            return
        if self.teacher_set is None:
            with torch.random.fork_rng(devices=[]):  # its initial weights are overwritten below
                self.teacher_set = self.vit.add_adapter_set()
            self.vit.adapter_sets[self.teacher_set].train(self.training)
            self.vit.freeze_adapter_set(self.teacher_set)
            self.teacher_head = copy.deepcopy(self.head).requires_grad_(False)
        if self.teacher_task != task:
            self.vit.adapter_sets[self.teacher_set].load_state_dict(self.vit.adapter_sets[0].state_dict())
            self.teacher_head.load_state_dict(self.head.state_dict())
            self.teacher_task = task

    @torch.no_grad()
    def teacher_logits(self, x: torch.Tensor) -> torch.Tensor:
        with eval_mode(self):
            return self.teacher_head(self.vit.features(x, self.teacher_set))[:, : self.task_offset]

    def prepare_batch(self, x: torch.Tensor, y: torch.Tensor) -> dict:
        batch = {"x": x, "y": y}
        if self.task > 0 and self.config["alpha"] != 0:
            batch["teacher_logits"] = self.teacher_logits(x)
        return batch

    def distillation(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        """T^2 KL(teacher || student) on the old classes, averaged over the batch (per set when the student's
        logits carry a set dimension, parameter_sets)."""
        t = self.config["temperature"]
        student = F.log_softmax(student_logits[..., : teacher_logits.shape[1]] / t, dim=-1)
        teacher = F.log_softmax(teacher_logits / t, dim=-1)
        if student.dim() == 2:
            return F.kl_div(student, teacher, reduction="batchmean", log_target=True) * t * t
        return (teacher.exp() * (teacher - student)).sum(-1).mean(-1) * t * t

    def loss(self, batch: dict) -> torch.Tensor:
        logits = self.training_logits(batch["x"])
        loss = set_cross_entropy(logits, batch["y"])
        if "teacher_logits" in batch:
            loss = loss + self.config["alpha"] * self.distillation(logits, batch["teacher_logits"])
        return loss

    def get_extra_state(self) -> dict:
        return {**super().get_extra_state(), "teacher_task": self.teacher_task}

    def set_extra_state(self, state: dict) -> None:
        super().set_extra_state(state)
        self.teacher_task = state["teacher_task"]
