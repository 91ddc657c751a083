"""EASE (Zhou et al., CVPR 2024): one adapter set per task, prototype classifier over all subspaces.

Follows PILOT's `models/ease.py` with its reference settings (recalc_sim=True, use_reweight=True,
use_diagonal=False, use_old_data=False, moni_adam=False):

- task t trains a fresh adapter set t and a cosine head over task t's classes only (local labels);
- end_task(t) freezes set t, stores class-mean prototypes of task t's classes in every subspace
  s <= t, and rebuilds every old class's prototype in every newer subspace from the
  "semantic-guided" complement (`complement_prototypes`, PILOT's solve_sim_reset);
- evaluation scores class c of task i as  sum_s lambda_is * cos(f_s(x), P_s[c])  with
  lambda_ii = 1 and lambda_is = alpha / t otherwise (t = index of the last finished task; PILOT's
  EaseCosineLinear.forward_reweight), plus beta * cos on the plain-backbone subspace when
  use_init_ptm is set.

PILOT's reference configs: alpha 0.1 (0.05 for CUB), beta 0, use_init_ptm false; its OmniBenchmark
config switches to an APER-like mode (moni_adam) that is not reproduced here.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zeroflow_core.methods.base import ContinualMethod, FeatureFn, seen_prototype_logits
from zeroflow_core.models.heads import CosineClassifier, class_means, cosine_matrix
from zeroflow_core.models.parameter_sets import set_cross_entropy
from zeroflow_core.optim.directions import derive_seed
from zeroflow_core.settings import Setting, declared


def semantic_complement(own: torch.Tensor, anchors_old: torch.Tensor, anchors_new: torch.Tensor) -> torch.Tensor:
    """Prototypes of old classes in a newer subspace, borrowed from newer classes.

    own: (a, d) old classes in their own subspace; anchors_old: (b, d) newer classes in that same
    subspace; anchors_new: (b, d') those newer classes in the newer subspace. Each old class takes
    the softmax(cosine)-weighted mix of the anchors (softmax over the anchors, as PILOT).
    """
    return torch.softmax(cosine_matrix(own, anchors_old), dim=1) @ anchors_new


def complement_prototypes(prototypes: torch.Tensor, classes_per_task: int) -> torch.Tensor:
    """Fill in every old class's prototype in every newer subspace (PILOT's solve_sim_reset).

    prototypes: (T + 1, C, d), entry [s, c] is the class mean of c under adapter set s; only entries
    with s <= task(c) need to be real (the others are overwritten). For old task i and newer
    subspace u, the anchors are the classes of tasks u..T, which have real prototypes in both
    subspace i and subspace u, so every input is a real prototype and the result does not depend
    on earlier complements.
    """
    out = prototypes.clone()
    last = prototypes.shape[0] - 1
    k = classes_per_task
    for i in range(last):
        own = prototypes[i, i * k:(i + 1) * k]
        for u in range(i + 1, last + 1):
            anchors = slice(u * k, (last + 1) * k)
            out[u, i * k:(i + 1) * k] = semantic_complement(own, prototypes[i, anchors], prototypes[u, anchors])
    return out


class Ease(ContinualMethod):
    name = "ease"
    label = "EASE"
    evaluates_parameter_sets = True  # set_cross_entropy; its own parameters are read by no loss
    settings = declared(
        Setting("alpha", 0.1, "weight α of the other subspaces in a class's score, divided by the tasks learned "
                "(PILOT: 0.1; CUB 0.05)", check=lambda value: value >= 0, requirement="must be >= 0"),
        Setting("beta", 0.0, "weight of the plain backbone's subspace when use_init_ptm is on",
                check=lambda value: value >= 0, requirement="must be >= 0"),
        Setting("use_init_ptm", False, "also score with the plain backbone's prototypes (PILOT's use_init_ptm)"),
        Setting("head_scale", 1.0, "the training heads' initial σ (PILOT's CosineLinear: 1)",
                check=lambda value: value > 0, requirement="must be > 0"),
    )
    #: multiplies the evaluation cosines; PILOT's evaluation classifier scales them by its σ (below), which starts
    #: at 1: argmax is the same, but a held-out cross-entropy at scale 1 barely moves, so we use the training heads'
    #: scale on top of it
    prototype_scale = 16.0

    def __init__(self, vit, n_classes, classes_per_task, **config):
        super().__init__(vit, n_classes, classes_per_task, **config)
        if vit.adapter_sets:
            raise ValueError("ease needs a backbone without adapter sets: adapter set t belongs to task t")
        self.heads = nn.ModuleList()
        # Task t's adapter set and head are initialised from (init_seed, t), not from wherever the
        # global RNG happens to be, so a run resumed from a task checkpoint creates the same modules
        # as the uninterrupted run. The trainer seeds the global RNG from the run seed before
        # building the method, so this still varies with the run seed.
        self.init_seed = torch.initial_seed()
        # prototypes[s, c]: class c's prototype under adapter set s, for the finished tasks
        self.prototypes: torch.Tensor | None = None
        self.ptm_prototypes: torch.Tensor | None = None
        # The evaluation classifier's σ: PILOT's EaseCosineLinear.sigma, a learnable scalar from 1 that EaseNet's
        # update_fc carries from task to task (utils/inc_net.py, `fc.sigma.data = self.fc.sigma.data`). No loss
        # reaches it, so backprop leaves it at 1; INFTY's ZeroFlow perturbs and updates it with every other
        # requires_grad tensor (zo_scope: official), and a σ driven below 0 reverses every prediction.
        self.sigma: torch.Tensor | None = None

    # -- structure ---------------------------------------------------------------------------
    def begin_task(self, task: int) -> None:
        super().begin_task(task)
        param = next(self.vit.backbone.parameters())
        if self.sigma is None:
            self.sigma = torch.ones(1, device=param.device, dtype=param.dtype)
        while len(self.heads) <= task:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(derive_seed(self.init_seed, "ease", len(self.heads)))
                new_set = self.vit.add_adapter_set()
                head = CosineClassifier(self.vit.embed_dim, self.classes_per_task, scale=self.config["head_scale"])
            # new modules follow the method's train/eval mode, as if they had been there all along
            self.vit.adapter_sets[new_set].train(self.training)
            self.heads.append(head.train(self.training).to(device=param.device, dtype=param.dtype))
        for old in range(task):
            self.vit.freeze_adapter_set(old)
            self.heads[old].requires_grad_(False)

    def stored_classifier(self) -> list[torch.Tensor]:
        return [t for t in (self.prototypes, self.ptm_prototypes, self.sigma) if t is not None]

    # -- training ----------------------------------------------------------------------------
    def training_head(self) -> nn.Module:
        return self.heads[self.task]

    def training_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Scores over the current task's classes only (local labels y - task_offset)."""
        return self.heads[self.task](self.vit.features(x, self.task))

    def loss(self, batch: dict) -> torch.Tensor:
        return set_cross_entropy(self.training_logits(batch["x"]), batch["y"] - self.task_offset)

    @torch.no_grad()
    def end_task(self, task: int, features_of: FeatureFn) -> None:
        self.vit.freeze_adapter_set(task)
        self.heads[task].requires_grad_(False)
        k = self.classes_per_task
        classes = torch.arange(task * k, (task + 1) * k)
        new = torch.stack([task_prototypes(*features_of(s), classes) for s in range(task + 1)])
        table = new.new_zeros(task + 1, (task + 1) * k, new.shape[-1])
        if task > 0:
            table[:task, : task * k] = self.prototypes.to(new)
        table[:, task * k:] = new
        self.prototypes = complement_prototypes(table, k)
        if self.config["use_init_ptm"]:
            # the plain backbone is one subspace where every class has a real prototype
            ptm = task_prototypes(*features_of(None), classes)
            old = [self.ptm_prototypes.to(ptm)] if task > 0 else []
            self.ptm_prototypes = torch.cat(old + [ptm])

    # -- evaluation --------------------------------------------------------------------------
    def subspace_weights(self) -> torch.Tensor:
        """lambda[s, c]: weight of subspace s in class c's score (1 on its own task's subspace)."""
        n_sets, n_protos = self.prototypes.shape[:2]
        last = n_sets - 1
        own = torch.arange(n_protos) // self.classes_per_task
        weights = torch.full((n_sets, n_protos), self.config["alpha"] / last if last else 0.0)
        weights[own, torch.arange(n_protos)] = 1.0
        return weights

    def prototype_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Evaluation scores over the classes of the finished tasks (one forward per adapter set)."""
        if self.prototypes is None:
            raise RuntimeError("ease has no prototypes yet: call end_task first")
        weights = self.subspace_weights().to(x.device)
        scores = 0.0
        for s in range(self.prototypes.shape[0]):
            f = self.vit.features(x, s)
            scores = scores + weights[s] * cosine_matrix(f, self.prototypes[s].to(f))
        if self.config["use_init_ptm"]:
            f = self.vit.features(x, None)
            scores = scores + self.config["beta"] * cosine_matrix(f, self.ptm_prototypes.to(f))
        return self.prototype_scale * scores * self.sigma.to(scores)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return seen_prototype_logits(self, x)

    @torch.no_grad()
    def heldout_loss(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """Mean over the images of: the training loss (local labels) for the current task's
        images; the cross-entropy of the evaluation logits restricted to old classes for old
        tasks' images. During task t the old-class part uses the prototypes of end_task(t - 1),
        which training task t cannot change: EASE does not forget within old classes until the
        next prototype complement."""
        offset = self.task_offset
        current = y >= offset
        total = x.new_zeros(())
        if current.any():
            total += F.cross_entropy(self.training_logits(x[current]), y[current] - offset, reduction="sum")
        if (~current).any():
            old_logits = self.prototype_logits(x[~current])[:, :offset]
            total += F.cross_entropy(old_logits, y[~current], reduction="sum")
        return float(total / len(y))

    # -- checkpointed state ------------------------------------------------------------------
    def get_extra_state(self) -> dict:
        return {**super().get_extra_state(), "prototypes": self.prototypes, "ptm_prototypes": self.ptm_prototypes,
                "sigma": self.sigma, "init_seed": self.init_seed}

    def set_extra_state(self, state: dict) -> None:
        super().set_extra_state(state)
        self.init_seed = state["init_seed"]
        self.prototypes = state["prototypes"]
        self.ptm_prototypes = state["ptm_prototypes"]
        self.sigma = state.get("sigma", self.sigma)


def task_prototypes(features: torch.Tensor, labels: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Class means of `classes` (rows in that order), refusing a class without features."""
    labels = labels.to(features.device)
    missing = [c for c in classes.tolist() if not (labels == c).any()]
    if missing:
        raise ValueError(f"no training features for classes {missing}: cannot build their prototypes")
    return class_means(features, labels, classes.to(features.device))
