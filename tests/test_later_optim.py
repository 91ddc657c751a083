"""The later zeroth-order optimizers (beyond the paper): what each estimates, and its own mechanics.

The registry-wide tests (tests/test_optim.py: descent, resume, the global RNG, forwards per step, batched against
sequential, bad hyper-parameters) cover them too; here each one's estimator is checked against its paper, on
linear losses (whose finite differences are exact, so an estimate's mean is what the estimator targets).
"""
import copy
import math

import pytest
import torch

from zeroflow_core.optim import create_optimizer
from zeroflow_core.optim.directions import DirectionStream, derive_seed
from zeroflow_core.optim.lozo import LowRankStream
from zeroflow_core.optim.sparse_mezo import magnitude_threshold

from test_optim import estimates_and_optimizer as estimates


class Linear(torch.nn.Module):
    """L(θ) = ⟨G, θ⟩: every estimate's finite difference is exact, and ∇L = G wherever θ is."""

    def __init__(self, theta: torch.Tensor, seed: int = 0):
        super().__init__()
        self.theta = torch.nn.Parameter(theta.clone())
        self.g = torch.randn(theta.shape, generator=torch.Generator().manual_seed(seed))

    def loss(self):
        return (self.g * self.theta).sum()


def within(samples, target, sigmas=5.0) -> bool:
    mean = samples.mean(0)
    stderr = samples.std(0) / math.sqrt(len(samples))
    return bool(torch.all((mean - target).abs() <= sigmas * stderr + 1e-6))


# -- LOZO -----------------------------------------------------------------------------------------------------
def _perturbations(model, name, steps, **hyper):
    """The direction of each step's first query, read off the parameters the closure sees: (θ + εd − θ0) / ε."""
    seen = []

    def closure():
        seen.append(model.theta.detach().clone())
        return model.loss()

    opt = create_optimizer(name, [model.theta], model=model, lr=0.0, zo_eps=1.0, **hyper)
    start = model.theta.detach().clone()
    for _ in range(steps):
        opt.step(closure)
    return [seen[i] - start for i in range(0, len(seen), 2)]


def _row_space(matrix: torch.Tensor, rank: int) -> torch.Tensor:
    return torch.linalg.svd(matrix, full_matrices=False).Vh[:rank]


def test_lozo_perturbs_each_matrix_along_rank_r_and_keeps_v_for_a_window():
    model = Linear(torch.zeros(7, 6))
    directions = _perturbations(model, "lozo", 6, rank=2, lazy_interval=3)
    assert all(int(torch.linalg.matrix_rank(d)) == 2 for d in directions)
    spaces = [_row_space(d, 2) for d in directions]

    def same_span(a, b):  # the projections onto the two row spaces agree
        return torch.allclose(a.T @ a, b.T @ b, atol=1e-5)

    assert same_span(spaces[0], spaces[1]) and same_span(spaces[1], spaces[2])  # V kept within the window
    assert not same_span(spaces[2], spaces[3])  # and redrawn after lazy_interval steps
    assert not torch.allclose(directions[0], directions[1])  # U fresh every step


def test_lozo_perturbs_a_vector_along_a_full_gaussian():
    model = Linear(torch.zeros(9))
    (direction,) = _perturbations(model, "lozo", 1)
    assert bool((direction != 0).all())


def test_lozo_estimate_is_unbiased_over_u_and_v():
    """The paper's 1/r: E_{U,V}[c·UVᵀ/r] = G, with V redrawn every step."""
    model = Linear(torch.zeros(5, 4))
    samples, _ = estimates(model, "lozo", 6000, rank=2, lazy_interval=1)
    assert within(samples, model.g)


def test_lozo_estimate_within_one_window_is_the_gradient_projected_on_vs_span():
    """With V fixed, E_U[ĝ | V] = G V Vᵀ / r: biased towards V's span, not G."""
    model = Linear(torch.zeros(5, 4))
    samples, opt = estimates(model, "lozo", 4000, rank=2, lazy_interval=100000)
    v = opt._stream(opt.trainable(), 0).v(model.theta, 0)
    assert within(samples, model.g @ v @ v.T / 2)
    assert not within(samples, model.g)


def test_lozo_m_keeps_the_momentum_as_a_low_rank_factor_and_carries_it_into_a_new_v():
    """N ← β N + (1 − β) c U (the first step N = c U), the step N Vᵀ / r; at a redraw N ← β N V_oldᵀ V_new / n + ..."""
    beta, rank, lr = 0.9, 2, 0.1
    model = Linear(torch.randn(5, 4, generator=torch.Generator().manual_seed(1)))
    # ε = 1: a linear loss's difference is exact at any ε, and a large one keeps fp32 rounding out of c
    opt = create_optimizer("lozo", [model.theta], model=model, lr=lr, rank=rank, lazy_interval=2,
                           low_rank_momentum=beta, seed=3, zo_eps=1.0)
    theta = model.theta.detach().clone()
    factor = None
    for step in range(4):
        stream = LowRankStream(derive_seed(3, "direction", step, 0), derive_seed(3, "lozo-window", step // 2), rank)
        u, v = stream.u(theta, 0), stream.v(theta, 0)
        c = float((model.g * (u @ v.T)).sum())  # the exact two-sided difference of a linear loss
        if factor is None:
            factor = c * u
        else:
            if step % 2 == 0:  # a new window: V_old is the previous window's
                v_old = stream.v(theta, 0, derive_seed(3, "lozo-window", step // 2 - 1))
                factor = factor @ v_old.T @ v / 4
            factor = beta * factor + (1 - beta) * c * u
        theta = theta - lr * factor @ v.T / rank
        opt.step(model.loss)
        torch.testing.assert_close(model.theta.detach(), theta)
    assert opt.state[model.theta]["momentum"].shape == (5, rank)  # m × r, not m × n


# -- HiZOO ----------------------------------------------------------------------------------------------------
def test_hizoo_estimate_is_the_preconditioned_gradient_not_the_gradient():
    """With α = 0, D stays where it is and E_z[ĝ] = D^{-1/2} D^{-1/2} ∇L = ∇L / D: a bias towards the directions of
    small curvature, which is the point of the preconditioner."""
    model = Linear(torch.zeros(6), seed=2)
    d = torch.tensor([1.0, 4.0, 0.25, 9.0, 1.0, 2.0])
    opt = create_optimizer("hizoo", [model.theta], model=model, lr=1.0, hessian_smooth=0.0)
    opt.state[model.theta]["hessian"] = d.clone()
    start = model.theta.detach().clone()
    samples = []
    for _ in range(6000):
        opt.step(model.loss)
        with torch.no_grad():
            samples.append(start - model.theta)
            model.theta.copy_(start)
    samples = torch.stack(samples)
    assert within(samples, model.g / d)
    assert not within(samples, model.g)


def test_hizoo_step_follows_its_algorithm_on_a_quadratic():
    """l0, l± = L(θ ± ε D^{-1/2} z); D ← (1 − α) D + α |l+ + l− − 2 l0| / 2ε² · D ⊙ z²; θ ← θ − lr·c·D_new^{-1/2} z."""
    h = torch.tensor([3.0, 0.5, 1.0, 2.0])

    class Quadratic(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.theta = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5, 0.3]))

        def loss(self):
            return 0.5 * (h * self.theta**2).sum()

    model = Quadratic()
    seen = []
    eps, alpha, lr = 0.1, 0.3, 0.05
    opt = create_optimizer("hizoo", [model.theta], model=model, lr=lr, zo_eps=eps, hessian_smooth=alpha, seed=5)
    d = torch.tensor([1.0, 2.0, 0.5, 4.0])
    opt.state[model.theta]["hessian"] = d.clone()
    theta0 = model.theta.detach().clone()
    opt.step(lambda: seen.append(model.theta.detach().clone()) or model.loss())
    base, plus, minus = seen  # L(θ) first, then the query's two sides
    assert torch.equal(base, theta0)
    z = next(DirectionStream(derive_seed(5, "direction", 0, 0), "gaussian").draw_all([theta0]))
    torch.testing.assert_close(plus, theta0 + eps * z / d.sqrt())
    loss = lambda t: float(0.5 * (h * t**2).sum())  # noqa: E731
    l0, lp, lm = loss(base), loss(plus), loss(minus)
    new = (1 - alpha) * d + alpha * abs(lp + lm - 2 * l0) / (2 * eps**2) * d * z**2
    torch.testing.assert_close(opt.state[model.theta]["hessian"], new)
    torch.testing.assert_close(model.theta.detach(), theta0 - lr * (lp - lm) / (2 * eps) * z / new.sqrt())


def test_hizoo_without_smoothing_is_mezo_with_one_more_forward(quadratic):
    other = copy.deepcopy(quadratic)
    hizoo = create_optimizer("hizoo", [quadratic.theta], model=quadratic, lr=0.01, hessian_smooth=0.0, seed=4)
    mezo = create_optimizer("zo-sgd", [other.theta], model=other, lr=0.01, momentum=0.0, weight_decay=0.0, seed=4)
    for _ in range(5):
        hizoo.step(quadratic.loss)
        mezo.step(other.loss)
    torch.testing.assert_close(quadratic.theta.detach(), other.theta.detach())
    assert (hizoo.forward_passes, mezo.forward_passes) == (15, 10)


# -- Sparse MeZO ----------------------------------------------------------------------------------------------
def test_sparse_mezo_estimates_the_gradient_of_its_masked_coordinates_only():
    """Lemma 1: E[ĝ] = m ⊙ ∇L, m = |θ| ≤ h; the coordinates above h get exactly nothing."""
    model = Linear(torch.tensor([0.1, -0.2, 0.3, 5.0, -6.0, 0.05, 2.0, -0.4, 3.0, 1.5]), seed=1)
    samples, opt = estimates(model, "sparse-mezo", 4000, magnitude_sparsity=0.5)
    mask = (model.theta.detach().abs() <= opt.state[model.theta]["threshold"]).float()
    assert mask.sum() == 5  # ceil((1 − 0.5)·10) smallest magnitudes
    assert within(samples, mask * model.g)
    assert bool((samples[:, mask == 0] == 0).all())
    assert not within(samples, model.g)


def test_sparse_mezo_fixes_its_thresholds_at_the_first_step_and_recomputes_the_mask_every_step():
    model = Linear(torch.tensor([0.1, 0.2, 0.3, 5.0, 6.0]))
    opt = create_optimizer("sparse-mezo", [model.theta], model=model, lr=0.0, magnitude_sparsity=0.4)
    opt.step(model.loss)
    assert float(opt.state[model.theta]["threshold"]) == pytest.approx(0.3)
    assert opt.magnitude_masks(opt.trainable())[0].tolist() == [1, 1, 1, 0, 0]
    with torch.no_grad():  # one entry grows past the threshold, two shrink below it; the new quantile would be 0.25
        model.theta.copy_(torch.tensor([0.5, 0.2, 0.3, 0.25, 0.1]))
    opt.step(model.loss)
    assert float(opt.state[model.theta]["threshold"]) == pytest.approx(0.3)
    assert opt.magnitude_masks(opt.trainable())[0].tolist() == [0, 1, 1, 1, 1]


def test_a_tensor_of_one_magnitude_is_perturbed_dense():
    """AdaptFormer's zero up-projection has no small entries to choose: the quantile rule would give h = 0 and freeze it
    after its first move."""
    assert math.isinf(float(magnitude_threshold(torch.zeros(4, 3), 0.8)))
    model = Linear(torch.zeros(4, 3))
    samples, _ = estimates(model, "sparse-mezo", 3)
    assert bool((samples != 0).all())


def test_sparse_mezo_converges_where_its_mask_reaches():
    """On a separable quadratic whose minimum lies within the mask, the masked entries reach it and the others stay."""
    target = torch.tensor([0.05, -0.1, 0.0, 0.0])

    class Bowl(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.theta = torch.nn.Parameter(torch.tensor([0.2, -0.15, 4.0, -3.0]))

        def loss(self):
            return ((self.theta - target) ** 2).sum()

    model = Bowl()
    opt = create_optimizer("sparse-mezo", [model.theta], model=model, lr=0.05, magnitude_sparsity=0.5)
    for _ in range(300):
        opt.step(model.loss)
    theta = model.theta.detach()
    torch.testing.assert_close(theta[:2], target[:2], atol=2e-3, rtol=0)
    assert theta[2:].tolist() == [4.0, -3.0]
