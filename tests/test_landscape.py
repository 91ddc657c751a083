import numpy as np
import pandas as pd
import pytest
import torch

from zeroflow_core.book import landscape
from zeroflow_core.book.landscape import FIGURE_3_PANELS, FIGURE_6_PANELS, TOY_HYPER, TwoTaskProblem, trajectory

PROBLEM = TwoTaskProblem()


def autograd_gradients(point):
    theta = torch.tensor(point, dtype=torch.float64, requires_grad=True)
    return [torch.autograd.grad(loss(theta), theta)[0].numpy()
            for loss in (PROBLEM.old_loss, PROBLEM.new_loss, PROBLEM.total_loss)]


def test_total_minimum_has_zero_gradient_and_each_task_minimum_is_its_own():
    minimum = PROBLEM.total_minimum()
    old, new = PROBLEM.task_gradients(minimum)
    np.testing.assert_allclose(old + new, 0.0, atol=1e-12)
    assert np.linalg.norm(old) > 0.5  # a real trade-off: neither task is at its own minimum
    np.testing.assert_allclose(autograd_gradients(minimum)[2], 0.0, atol=1e-12)
    # each Hessian is positive definite, so a and b are the strict minima of their own losses
    for hessian in (PROBLEM.h_old, PROBLEM.h_new):
        assert np.all(np.linalg.eigvalsh(hessian) > 0)
    np.testing.assert_allclose(PROBLEM.task_gradients(PROBLEM.a)[0], 0.0, atol=1e-12)
    np.testing.assert_allclose(PROBLEM.task_gradients(PROBLEM.b)[1], 0.0, atol=1e-12)
    points = np.random.default_rng(0).normal(size=(100, 2)) * 2
    old_losses, new_losses, total = PROBLEM.losses(points)
    assert np.all(old_losses > PROBLEM.losses(PROBLEM.a)[0]) and np.all(new_losses > PROBLEM.losses(PROBLEM.b)[1])
    assert np.all(total > PROBLEM.losses(minimum)[2])


def test_task_gradients_and_vectorised_losses_match_torch():
    points = np.random.default_rng(1).normal(size=(5, 2)) * 2
    old, new = PROBLEM.task_gradients(points)
    for k, point in enumerate(points):
        g_old, g_new, g_total = autograd_gradients(point)
        np.testing.assert_allclose(old[k], g_old, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(new[k], g_new, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(old[k] + new[k], g_total, rtol=1e-12, atol=1e-12)
    x, y, old_grid, new_grid, total_grid = PROBLEM.grid((-2, 2, -1, 1), n=7)
    assert x.shape == total_grid.shape == (7, 7)
    theta = torch.tensor([x[3, 5], y[3, 5]], dtype=torch.float64)
    assert total_grid[3, 5] == pytest.approx(float(PROBLEM.total_loss(theta)), rel=1e-12)
    assert old_grid[3, 5] + new_grid[3, 5] == pytest.approx(total_grid[3, 5])


def test_fo_sgd_from_the_old_minimum_converges_to_the_total_minimum():
    path = trajectory("fo-sgd", PROBLEM, **TOY_HYPER["sgd"])
    assert path.shape == (landscape.DEFAULT_STEPS + 1, 2)
    np.testing.assert_allclose(path[0], PROBLEM.a, atol=1e-6)
    assert np.linalg.norm(path[-1] - PROBLEM.total_minimum()) < 2e-3


def test_fo_sgd_trajectory_is_torch_sgd_with_momentum():
    """The trajectory comes from the registry's optimizer, which is stock SGD for FO."""
    theta = torch.nn.Parameter(torch.tensor(PROBLEM.a, dtype=torch.float32))
    reference = torch.optim.SGD([theta], lr=0.02, momentum=0.9)
    expected = [theta.detach().clone()]
    for _ in range(20):
        reference.zero_grad()
        PROBLEM.total_loss(theta).backward()
        reference.step()
        expected.append(theta.detach().clone())
    np.testing.assert_allclose(trajectory("fo-sgd", PROBLEM, steps=20, lr=0.02, weight_decay=0.0),
                               torch.stack(expected).double().numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="unknown setting 'q'"):
        trajectory("fo-sgd", PROBLEM, steps=1, q=4)


def test_zo_trajectory_is_reproducible_per_seed_and_differs_between_seeds():
    first = trajectory("zo-sgd", PROBLEM, steps=30, seed=3, **TOY_HYPER["sgd"])
    again = trajectory("zo-sgd", PROBLEM, steps=30, seed=3, **TOY_HYPER["sgd"])
    other = trajectory("zo-sgd", PROBLEM, steps=30, seed=4, **TOY_HYPER["sgd"])
    assert np.array_equal(first, again)
    assert np.abs(first[1:] - other[1:]).max() > 1e-2
    # FO takes no seed and ignores it
    assert np.array_equal(trajectory("fo-adam", PROBLEM, steps=10, seed=0, **TOY_HYPER["adam"]),
                          trajectory("fo-adam", PROBLEM, steps=10, seed=1, **TOY_HYPER["adam"]))


def test_the_figure_panels_are_the_papers_and_every_one_approaches_the_total_minimum():
    assert [p.letter for p in FIGURE_6_PANELS] == list("abcdefghij")
    assert [p.optimizer for p in FIGURE_6_PANELS] == [
        "fo-adam", "zo-adam", "zo-adam", "zo-adam-sign", "zo-adam-conserve",
        "fo-sgd", "zo-sgd", "zo-sgd", "zo-sgd-sign", "zo-sgd-conserve"]
    assert [p.hyper.get("q", 1) for p in FIGURE_6_PANELS] == [1, 1, 4, 1, 1] * 2
    assert {p.hyper["lr"] for p in FIGURE_6_PANELS[:5]} == {TOY_HYPER["adam"]["lr"]}
    assert {p.hyper["lr"] for p in FIGURE_6_PANELS[5:]} == {TOY_HYPER["sgd"]["lr"]}
    assert [p.optimizer for p in FIGURE_3_PANELS] == ["fo-sgd", "zo-sgd"]
    start = np.linalg.norm(PROBLEM.a - PROBLEM.total_minimum())
    for panel in FIGURE_6_PANELS:
        for seed in (0, 1):
            path = trajectory(panel.optimizer, PROBLEM, seed=seed, **panel.hyper)
            # at least 2x closer (Sign keeps its step size and only hovers near the minimum)
            assert np.linalg.norm(path[-1] - PROBLEM.total_minimum()) < start / 2, (panel.title, seed)


def test_four_queries_give_a_smoother_zo_sgd_path_than_one():
    # Over 100 seeds, the mean over 5 seeds was smaller with q=4 in every one of 20 disjoint groups.
    seeds = range(5)
    jitter = {q: np.mean([landscape.summarize(trajectory("zo-sgd", PROBLEM, seed=seed, q=q, **TOY_HYPER["sgd"]),
                                              PROBLEM)["jitter"] for seed in seeds])
              for q in (1, 4)}
    assert jitter[4] < jitter[1]


def test_trajectory_leaves_the_global_torch_rng_alone():
    torch.manual_seed(123)
    state = torch.get_rng_state()
    trajectory("zo-adam-conserve", PROBLEM, steps=5, seed=9, **TOY_HYPER["adam"])
    trajectory("zo-sgd", PROBLEM, steps=5, seed=9, q=4, **TOY_HYPER["sgd"])
    assert torch.equal(torch.get_rng_state(), state)


def test_summarize_on_known_paths():
    straight = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [2.0, 0.0]])
    stats = landscape.summarize(straight, PROBLEM)
    assert stats["path_length"] == pytest.approx(2.0)
    assert stats["jitter"] == pytest.approx(1.0)
    assert stats["turning"] == pytest.approx(0.0)
    assert stats["final_distance"] == pytest.approx(np.linalg.norm([2.0, 0.0] - PROBLEM.total_minimum()))
    assert stats["final_loss"] == pytest.approx(PROBLEM.losses([2.0, 0.0])[2])
    zigzag = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0], [3.0, 1.0], [4.0, 0.0]])
    stats = landscape.summarize(zigzag, PROBLEM)
    assert stats["jitter"] == pytest.approx(np.sqrt(2))
    assert stats["turning"] == pytest.approx(90.0)


def test_claims_are_called_only_beyond_the_spread_over_seeds():
    stats = pd.DataFrame([
        {"panel": panel, "title": panel.upper(), "optimizer": "x", "seed": seed, "final_distance": 0.0,
         "final_loss": 0.0, "path_length": 1.0, "jitter": jitter, "turning": 0.0}
        for panel, values in {"a": [1.0, 1.0], "b": [2.0, 2.2], "c": [1.0, 2.6], "d": [0.5, 0.5]}.items()
        for seed, jitter in enumerate(values)])
    summary = landscape.summary_table(stats)
    assert list(summary.panel) == ["a", "b", "c", "d"]
    assert summary.set_index("panel").at["b", "jitter_mean"] == pytest.approx(2.1)
    claims = [landscape.Claim("b rougher than a", "b", "a"), landscape.Claim("c rougher than a", "c", "a"),
              landscape.Claim("d rougher than a", "d", "a")]
    verdicts = landscape.check_claims(summary, claims, metrics=("jitter",))
    assert list(verdicts.outcome) == ["agrees", "within the spread", "disagrees"]
    one_seed = landscape.summary_table(stats[stats.seed == 0])
    assert set(landscape.check_claims(one_seed, claims, metrics=("jitter",)).outcome) == {"no spread (one seed)"}
    # every Figure 6 claim names two different Figure 6 panels
    letters = {p.letter for p in FIGURE_6_PANELS}
    assert all({c.rougher, c.smoother} <= letters and c.rougher != c.smoother for c in landscape.FIGURE_6_CLAIMS)
