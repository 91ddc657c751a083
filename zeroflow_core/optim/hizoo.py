"""HiZOO (Zhao et al., arXiv 2402.15173, ICLR 2025): zeroth-order steps preconditioned by a diagonal Hessian
estimated from the same forward passes.

The optimizer keeps, per parameter, D, a diagonal estimate of the Hessian's magnitude (HiZOO's Σ⁻¹), from ones.
One step, z ~ N(0, I), one query as in the paper (q queries average the query terms):
- l0 = L(θ), l± = L(θ ± ε D^{-1/2} z): three forwards (2q + 1), one more than MeZO;
- the curvature estimate D̂ = |l+ + l− − 2 l0| / (2ε²) · D ⊙ z² (HiZOO's Algorithm 1 and code, which drop the
  paper's Eq. 8 term −Σ⁻¹ and keep only the diagonal), and D ← (1 − α) D + α D̂ (`hessian_smooth` α);
- the step follows ĝ = (l+ − l−) / 2ε · D_new^{-1/2} z with the SGD rule (HiZOO's update, lr·(ĝ + wd·θ)).

What it estimates: E_z[ĝ] = D_new^{-1/2} D_old^{-1/2} ∇L, a preconditioned gradient, not ∇L (with α = 0, D^{-1}
∇L); tests/test_optim.py states that bias. α = 0 keeps D = 1, and HiZOO is then MeZO with one more forward.
D is parameter-sized state (HiZOO's memory: about twice MeZO's), saved with the optimizer.
"""
from __future__ import annotations

import torch

from zeroflow_core.optim.directions import DirectionStream, derive_seed
from zeroflow_core.optim.hyper import HIZOO
from zeroflow_core.optim.zeroth_order import ZerothOrderOptimizer


class HessianZerothOrder(ZerothOrderOptimizer):
    """HiZOO on the SGD rule without momentum; the hyper-parameters are those of hyper.HIZOO."""

    settings = HIZOO
    needs_base_loss = True  # the curvature's l0

    def __init__(self, params, *, model=None, **hyper):
        self._curvatures: list[float] = []
        super().__init__(params, "sgd", model=model, estimator="plain", **hyper)

    def checked_group(self, group: dict) -> dict:
        group = super().checked_group(group)
        if group["one_sided"] or group["history"] or group["sparsity"] or group["direction"] != "gaussian":
            raise ValueError(f"{type(self).__name__}: HiZOO takes two-sided Gaussian queries (its curvature is "
                             "l+ + l− − 2·l0), without history or sparsity")
        return group

    def preconditioner(self, param: torch.Tensor) -> torch.Tensor:
        """D of `param` (ones before its first step)."""
        stored = self.state[param].get("hessian")
        return stored if stored is not None else torch.ones(param.shape, dtype=torch.float32, device=param.device)

    def _stream(self, pairs, query: int) -> DirectionStream:
        """z scaled by D^{-1/2}: the perturbation's direction, from the preconditioner before this step's update."""
        seed = derive_seed(self.shared("seed"), "direction", self.steps_taken, query)
        return DirectionStream(seed, "gaussian", [self.preconditioner(p).rsqrt() for _, p in pairs])

    def _scalars(self, base_loss: float, losses: list[float]) -> list[float]:
        eps = self.shared("zo_eps")
        plus, minus = losses[::2], losses[1::2]
        # each query's |l+ + l− − 2·l0| / 2ε², read by _estimates
        self._curvatures = [abs(p + m - 2 * base_loss) / (2 * eps * eps) for p, m in zip(plus, minus)]
        return [(p - m) / (2 * eps) for p, m in zip(plus, minus)]

    def _estimates(self, pairs, scalars: list[float]):
        q = self.shared("q")
        streams = self._directions(pairs)
        for group, param in pairs:
            old = self.preconditioner(param)
            estimate = torch.zeros(param.shape, dtype=torch.float32, device=param.device)
            curvature = torch.zeros_like(estimate)
            for stream, scalar, h in zip(streams, scalars, self._curvatures):
                z = next(stream) * old.sqrt()  # the stream gives D^{-1/2} z
                estimate.add_(z, alpha=scalar / q)
                curvature.addcmul_(old, z * z, value=h / q)
            alpha = group["hessian_smooth"]
            new = old.mul(1 - alpha).add_(curvature, alpha=alpha)
            self.state[param]["hessian"] = new
            yield estimate.div_(new.sqrt())
