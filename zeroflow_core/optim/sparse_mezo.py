"""Sparse MeZO (Liu et al., arXiv 2402.15751): zeroth-order steps that perturb only the small-magnitude entries.

Per tensor, a threshold h is fixed when the optimizer takes its first step: the (1 − s) quantile of |θ| (s =
`magnitude_sparsity`, the share never perturbed; the paper's best 0.8). Every step recomputes the mask
m = (|θ_t| ≤ h) from the current, unperturbed parameters (the paper's dynamic mask), and runs MeZO on the masked
direction: l± = L(θ ± ε m⊙z), ĝ = (l+ − l−) / 2ε · m⊙z, the SGD rule without momentum.

What it estimates: E_z[ĝ] = m ⊙ ∇L (of the smoothed loss; the paper's Lemma 1), the gradient of the masked
coordinates only; the others never move while they stay above h (tests/test_optim.py states it).

Where our adapters need another rule: a tensor whose entries all have one magnitude when the threshold is taken
(AdaptFormer's zero-initialised up-projection, a single σ) has no small entries to choose, and the quantile rule
would give h = 0 and freeze the tensor after its first move; such a tensor is perturbed dense (h = ∞).
A step keeps its masks (one parameter-sized tensor per trained tensor) instead of recomputing them inside the
forward as the paper's efficient implementation does; with adapters that is little.
"""
from __future__ import annotations

import math

import torch

from zeroflow_core.optim.directions import DirectionStream, derive_seed
from zeroflow_core.optim.hyper import SPARSE_MEZO
from zeroflow_core.optim.zeroth_order import ZerothOrderOptimizer


def magnitude_threshold(param: torch.Tensor, sparsity: float) -> torch.Tensor:
    """h with |θ| ≤ h for the smallest ceil((1 − s)·n) entries; ∞ for a tensor of one magnitude."""
    magnitudes = param.detach().abs().flatten().float()
    if bool(magnitudes.max() == magnitudes.min()):
        return torch.tensor(math.inf, device=param.device)
    kept = max(1, math.ceil((1 - sparsity) * magnitudes.numel()))
    return magnitudes.kthvalue(kept).values


class SparseZerothOrder(ZerothOrderOptimizer):
    """Sparse MeZO; the hyper-parameters are those of hyper.SPARSE_MEZO."""

    settings = SPARSE_MEZO

    def __init__(self, params, *, model=None, **hyper):
        self._step_masks: tuple[tuple, list] | None = None
        super().__init__(params, "sgd", model=model, estimator="plain", **hyper)

    def checked_group(self, group: dict) -> dict:
        group = super().checked_group(group)
        if group["history"] or group["sparsity"] or group["direction"] != "gaussian":
            raise ValueError(f"{type(self).__name__}: Sparse MeZO masks Gaussian directions by magnitude; it takes "
                             "no history nor random sparsity")
        return group

    def magnitude_masks(self, pairs) -> list[torch.Tensor]:
        """This step's masks |θ| ≤ h, from the parameters before the step (the thresholds taken at the first)."""
        key = (self.steps_taken, tuple(id(p) for _, p in pairs))
        if self._step_masks is None or self._step_masks[0] != key:
            masks = []
            for group, param in pairs:
                state = self.state[param]
                if "threshold" not in state:
                    state["threshold"] = magnitude_threshold(param, group["magnitude_sparsity"])
                masks.append((param.detach().abs() <= state["threshold"]).to(torch.float32))
            self._step_masks = (key, masks)
        return self._step_masks[1]

    def _stream(self, pairs, query: int) -> DirectionStream:
        seed = derive_seed(self.shared("seed"), "direction", self.steps_taken, query)
        return DirectionStream(seed, "gaussian", self.magnitude_masks(pairs))
