"""LOZO (Chen et al., arXiv 2410.07698, ICLR 2025): zeroth-order steps along low-rank perturbations.

Each matrix X (m × n) is perturbed along U Vᵀ, U (m × r) and V (n × r) standard normal: U is fresh every step and
query, V is redrawn only every ν steps (`lazy_interval`), so the steps of one window explore the r-dimensional
subspace that V spans. Tensors of one dimension (biases, norms, EASE's σ) take a full Gaussian direction, as
LOZO's code does. Two-sided queries, c = (L(X + εUVᵀ) − L(X − εUVᵀ)) / 2ε, and the estimate ĝ = c·U Vᵀ / r: the
paper's 1/r, which LOZO's code omits (its learning rate is ours divided by r).

What is unbiased: over U and V, E[⟨G, UVᵀ⟩ UVᵀ] = r·G, so ĝ is an unbiased estimate of the gradient G (of the
loss smoothed along UVᵀ, as every SPSA estimate). Within one window V is fixed and E_U[ĝ | V] = G V Vᵀ / r: the
steps keep to V's span, biased towards it, and the redraws average the bias out (tests/test_optim.py checks both).

LOZO-M (`low_rank_momentum` β > 0) keeps the EMA of the estimate as its r-column factor N: N ← β N + (1 − β) c̄U,
the first step N = c̄U, and the step is N Vᵀ / r; when V is redrawn, N ← β N V_oldᵀ V_new / n + (1 − β) c̄U (LOZO's
code), n the columns of X. One-dimensional tensors keep a full-size EMA, as in LOZO's code.

Nothing but N is stored: V is regenerated from (seed, window) and U from (seed, step, query), so a resumed run
draws what an uninterrupted one would.
"""
from __future__ import annotations

import torch

from zeroflow_core.optim.directions import DirectionStream, derive_seed
from zeroflow_core.optim.hyper import LOZO
from zeroflow_core.optim.zeroth_order import ZerothOrderOptimizer


def _gaussian(shape, seed: int, device) -> torch.Tensor:
    generator = torch.Generator(device=device).manual_seed(seed)
    return torch.randn(shape, generator=generator, device=device, dtype=torch.float32)


def as_matrix_shape(param: torch.Tensor) -> tuple[int, int]:
    """(m, n) of a tensor read as a matrix: its first dimension against the rest."""
    return param.shape[0], param.numel() // param.shape[0]


class LowRankStream(DirectionStream):
    """One query's directions: U Vᵀ for every tensor of two or more dimensions (read as a matrix), a full Gaussian
    for the others. U and V of each tensor come from seeds of their own, so each can be regenerated alone."""

    def __init__(self, seed: int, window_seed: int, rank: int):
        super().__init__(seed, "gaussian")
        self.window_seed = window_seed
        self.rank = rank

    def draw_all(self, params: list[torch.Tensor]):
        for index, param in enumerate(params):
            yield self.direction(param, index)

    def direction(self, param: torch.Tensor, index: int) -> torch.Tensor:
        if param.dim() < 2:
            return _gaussian(param.shape, derive_seed(self.seed, "vector", index), param.device)
        return (self.u(param, index) @ self.v(param, index).T).view(param.shape)

    def u(self, param: torch.Tensor, index: int) -> torch.Tensor:
        return _gaussian((as_matrix_shape(param)[0], self.rank), derive_seed(self.seed, "U", index), param.device)

    def v(self, param: torch.Tensor, index: int, window_seed: int | None = None) -> torch.Tensor:
        seed = derive_seed(self.window_seed if window_seed is None else window_seed, "V", index)
        return _gaussian((as_matrix_shape(param)[1], self.rank), seed, param.device)


class LowRankZerothOrder(ZerothOrderOptimizer):
    """LOZO and LOZO-M on the SGD rule without momentum (the step is lr·(ĝ or N Vᵀ/r) + lr·weight_decay·θ, as LOZO's
    update); the hyper-parameters are those of hyper.LOZO."""

    settings = LOZO

    def __init__(self, params, *, model=None, **hyper):
        super().__init__(params, "sgd", model=model, estimator="plain", **hyper)

    def checked_group(self, group: dict) -> dict:
        group = super().checked_group(group)
        if group["one_sided"] or group["history"] or group["sparsity"] or group["momentum"]:
            raise ValueError(f"{type(self).__name__}: LOZO takes two-sided queries, no history, sparsity nor SGD "
                             "momentum (its momentum is low_rank_momentum)")
        return group

    def window(self) -> int:
        """The lazy window of this step: V is the same within it."""
        return self.steps_taken // self.shared("lazy_interval")

    def _window_seed(self, window: int) -> int:
        return derive_seed(self.shared("seed"), "lozo-window", window)

    def _stream(self, pairs, query: int) -> LowRankStream:
        seed = derive_seed(self.shared("seed"), "direction", self.steps_taken, query)
        return LowRankStream(seed, self._window_seed(self.window()), self.shared("rank"))

    def _estimates(self, pairs, scalars: list[float]):
        """ĝ = (1/q) Σ_j c_j U_j Vᵀ / r per matrix (c_j z_j per vector), or LOZO-M's N Vᵀ / r."""
        q, rank, window = self.shared("q"), self.shared("rank"), self.window()
        streams = [self._stream(pairs, query) for query in range(q)]
        for index, (group, param) in enumerate(pairs):
            beta, state = group["low_rank_momentum"], self.state[param]
            if param.dim() < 2:
                estimate = sum(s.direction(param, index) * (c / q) for s, c in zip(streams, scalars))
                if beta:
                    previous = state.get("momentum")
                    estimate = estimate if previous is None else previous.mul(beta).add_(estimate, alpha=1 - beta)
                    state["momentum"] = estimate
                yield estimate
                continue
            factor = sum(s.u(param, index) * (c / q) for s, c in zip(streams, scalars))  # c̄U, m × r
            v = streams[0].v(param, index)
            if beta:
                previous = state.get("momentum")
                if previous is not None:
                    if state["window"] != window:  # V was redrawn: carry N into the new V's coordinates
                        v_old = streams[0].v(param, index, self._window_seed(state["window"]))
                        previous = previous @ v_old.T @ v / as_matrix_shape(param)[1]
                    factor = previous.mul(beta).add_(factor, alpha=1 - beta)
                state["momentum"], state["window"] = factor, window
            yield (factor @ v.T).div_(rank).view(param.shape)
