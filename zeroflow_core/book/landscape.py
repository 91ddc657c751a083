"""The optimisation trajectories of the paper's Figures 3 and 6, on a two-task toy problem.

The paper draws these figures for a loss landscape it does not specify. Here the landscape is a
known one, so a trajectory can be measured rather than only looked at: two anisotropic quadratic
bowls in a 2-D parameter space, the old task's with its minimum at a and the new task's at b, with
different curvatures and orientations. Continual learning wants both, so the optimisers minimise
the total loss L_old + L_new, whose minimum has a closed form. Every trajectory starts where a
model that has learned the old task stands (at a) and is made by the benchmark's own optimisers
(`zeroflow_core.optim`), so the figures show the registry's FO, ZO, Sign and Conserve steps.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from torch import nn

from zeroflow_core.book.report import aggregate, bullets, format_mean_std, verdict
from zeroflow_core.optim import create_optimizer, optimizer_spec

DEFAULT_STEPS = 150

# One learning rate per family, shared by FO and every ZO variant so the panels of a family differ only
# in how the step is estimated. Chosen on this problem (total-loss Hessian eigenvalues ≈ 0.85 and 4.4, a
# to the total minimum ≈ 1.67): SGD 0.02 with the registry's momentum 0.9 has lr·λ in [0.017, 0.088],
# above (1 − √0.9)² ≈ 0.003 and far below the stability limit 2(1 + 0.9), so FO-SGD spirals in at the
# heavy-ball rate √0.9 per step (≈ 4e-4 of the start distance left after 150 steps) and Sign, whose
# steps keep their size, hovers within ≈ 0.3 of the minimum; Adam's step is ≈ lr per coordinate whatever
# the gradient's size, so 0.05 reaches the minimum in ~40 steps and leaves the rest to settle.
# Weight decay is 0 (the registry's 5e-4 would move the minimum away from the closed form); momentum,
# betas, zo_eps = 1e-3 and q = 1 keep the registry's defaults.
TOY_HYPER = {"sgd": {"lr": 0.02, "weight_decay": 0.0}, "adam": {"lr": 0.05, "weight_decay": 0.0}}


def bowl_hessian(curvatures: tuple[float, float], angle_deg: float) -> np.ndarray:
    """R diag(curvatures) Rᵀ: a positive definite 2×2 Hessian whose first axis is rotated by angle_deg."""
    angle = math.radians(angle_deg)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return rotation @ np.diag(curvatures) @ rotation.T


@dataclass(frozen=True)
class TwoTaskProblem:
    """L_old(θ) = ½(θ − a)ᵀH_old(θ − a), L_new(θ) = ½(θ − b)ᵀH_new(θ − b), L_total = L_old + L_new.

    Each Hessian has the given curvatures along axes rotated by the given angle (degrees).
    """

    old_minimum: tuple[float, float] = (-1.0, 1.0)
    new_minimum: tuple[float, float] = (1.5, -0.5)
    old_curvatures: tuple[float, float] = (3.0, 0.5)
    old_angle_deg: float = 20.0
    new_curvatures: tuple[float, float] = (1.5, 0.25)
    new_angle_deg: float = 0.0

    @property
    def a(self) -> np.ndarray:
        return np.asarray(self.old_minimum, dtype=np.float64)

    @property
    def b(self) -> np.ndarray:
        return np.asarray(self.new_minimum, dtype=np.float64)

    @property
    def h_old(self) -> np.ndarray:
        return bowl_hessian(self.old_curvatures, self.old_angle_deg)

    @property
    def h_new(self) -> np.ndarray:
        return bowl_hessian(self.new_curvatures, self.new_angle_deg)

    def total_minimum(self) -> np.ndarray:
        """argmin L_total = (H_old + H_new)⁻¹ (H_old a + H_new b)."""
        return np.linalg.solve(self.h_old + self.h_new, self.h_old @ self.a + self.h_new @ self.b)

    # -- losses on a parameter tensor of shape (2,) (float32 like a model's weights) ---------------
    def old_loss(self, theta: torch.Tensor) -> torch.Tensor:
        return _bowl(theta, self.a, self.h_old)

    def new_loss(self, theta: torch.Tensor) -> torch.Tensor:
        return _bowl(theta, self.b, self.h_new)

    def total_loss(self, theta: torch.Tensor) -> torch.Tensor:
        return self.old_loss(theta) + self.new_loss(theta)

    # -- vectorised, in float64, for contours and arrows -----------------------------------------
    def losses(self, points) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(old, new, total) losses at points of shape (..., 2)."""
        points = np.asarray(points, dtype=np.float64)
        old = 0.5 * np.einsum("...i,ij,...j->...", points - self.a, self.h_old, points - self.a)
        new = 0.5 * np.einsum("...i,ij,...j->...", points - self.b, self.h_new, points - self.b)
        return old, new, old + new

    def grid(self, extent: tuple[float, float, float, float], n: int = 200):
        """X, Y (meshgrid over extent = (xmin, xmax, ymin, ymax), n per axis) and the old, new, total losses."""
        x, y = np.meshgrid(np.linspace(extent[0], extent[1], n), np.linspace(extent[2], extent[3], n))
        old, new, total = self.losses(np.stack([x, y], axis=-1))
        return x, y, old, new, total

    def task_gradients(self, points) -> tuple[np.ndarray, np.ndarray]:
        """The exact ∇L_old and ∇L_new at points of shape (..., 2) (the arrows of Figure 3 are their negatives)."""
        points = np.asarray(points, dtype=np.float64)
        return (points - self.a) @ self.h_old.T, (points - self.b) @ self.h_new.T


def _bowl(theta: torch.Tensor, centre: np.ndarray, hessian: np.ndarray) -> torch.Tensor:
    offset = theta - torch.as_tensor(centre, dtype=theta.dtype, device=theta.device)
    return 0.5 * offset @ torch.as_tensor(hessian, dtype=theta.dtype, device=theta.device) @ offset


def trajectory(optimizer: str, problem: TwoTaskProblem | None = None, start=None, steps: int = DEFAULT_STEPS,
               seed: int = 0, **hyper) -> np.ndarray:
    """θ_0 … θ_steps, shape (steps + 1, 2), of a registry optimizer minimising the total loss from `start`.

    start defaults to the old task's minimum a. `seed` goes to the optimizers that take one (the ZO
    family); the others are deterministic. Directions come from the optimizer's private generators,
    so the global torch RNG is left as it was.
    """
    problem = problem or TwoTaskProblem()
    start = problem.a if start is None else np.asarray(start, dtype=np.float64)
    theta = nn.Parameter(torch.tensor(start, dtype=torch.float32))
    if "seed" in optimizer_spec(optimizer).hyper:
        hyper = {**hyper, "seed": seed}
    opt = create_optimizer(optimizer, [theta], model=None, **hyper)

    def closure() -> torch.Tensor:  # no backward: FO optimizers call it, ZO ones run this under no_grad
        return problem.total_loss(theta)

    path = [theta.detach().clone()]
    for _ in range(steps):
        opt.step(closure)
        path.append(theta.detach().clone())
    return torch.stack(path).double().numpy()


class Panel(NamedTuple):
    """One subplot: its letter in the paper, its title, the registry optimizer and its toy hyper-parameters."""

    letter: str
    title: str
    optimizer: str
    hyper: dict


def _family_panels(family: str, letters: str) -> list[Panel]:
    name = {"sgd": "SGD", "adam": "Adam"}[family]
    toy = TOY_HYPER[family]
    variants = [("FO", f"fo-{family}", {}), ("ZO", f"zo-{family}", {}), ("ZO q=4", f"zo-{family}", {"q": 4}),
                ("Sign", f"zo-{family}-sign", {}), ("Conserve", f"zo-{family}-conserve", {})]
    return [Panel(letter, f"{name}: {strategy}", optimizer, {**toy, **extra})
            for letter, (strategy, optimizer, extra) in zip(letters, variants)]


# Figure 6 in the paper's order: (a–e) Adam, (f–j) SGD, each FO, ZO, ZO q=4, Sign, Conserve.
FIGURE_6_PANELS = _family_panels("adam", "abcde") + _family_panels("sgd", "fghij")
# Figure 3: FO and ZO on the same problem, side by side (the SGD family).
FIGURE_3_PANELS = [FIGURE_6_PANELS[5]._replace(letter="a", title="FO-SGD"),
                   FIGURE_6_PANELS[6]._replace(letter="b", title="ZO-SGD")]


def run_panels(panels, problem: TwoTaskProblem | None = None, steps: int = DEFAULT_STEPS,
               seeds=(0,)) -> dict[str, list[np.ndarray]]:
    """panel letter → one trajectory per seed, in seed order."""
    return {panel.letter: [trajectory(panel.optimizer, problem, steps=steps, seed=seed, **panel.hyper)
                           for seed in seeds]
            for panel in panels}


def summarize(path: np.ndarray, problem: TwoTaskProblem | None = None) -> dict[str, float]:
    """What a table can say about one trajectory θ_0 … θ_T.

    final_distance: ‖θ_T − θ*‖ to the total minimum; final_loss: L_total(θ_T); path_length: Σ‖Δ_t‖ with
    Δ_t = θ_t+1 − θ_t; jitter: path_length / ‖θ_T − θ_0‖, 1 for a straight path and larger the more the
    path wanders or oscillates; turning: the mean angle in degrees between consecutive steps Δ_t, Δ_t+1,
    weighted by min(‖Δ_t‖, ‖Δ_t+1‖) so that the tiny steps near convergence (and steps not taken) do
    not count; it measures the "frequent direction adjustments" that jitter averages away.
    """
    problem = problem or TwoTaskProblem()
    path = np.asarray(path, dtype=np.float64)
    steps = np.diff(path, axis=0)
    lengths = np.linalg.norm(steps, axis=1)
    weights = np.minimum(lengths[:-1], lengths[1:])
    moved = weights > 0
    cosines = np.einsum("ij,ij->i", steps[:-1][moved], steps[1:][moved]) / (lengths[:-1] * lengths[1:])[moved]
    angles = np.degrees(np.arccos(np.clip(cosines, -1.0, 1.0)))
    return {"final_distance": float(np.linalg.norm(path[-1] - problem.total_minimum())),
            "final_loss": float(problem.losses(path[-1])[2]),
            "path_length": float(lengths.sum()),
            "jitter": float(lengths.sum() / np.linalg.norm(path[-1] - path[0])),
            "turning": float((angles * weights[moved]).sum() / weights[moved].sum()) if moved.any() else 0.0}


STATISTICS = ("final_distance", "final_loss", "path_length", "jitter", "turning")


def statistics(panels, paths: dict[str, list[np.ndarray]], seeds,
               problem: TwoTaskProblem | None = None) -> pd.DataFrame:
    """One row per (panel, seed): the panel's letter, title, optimizer and `summarize`'s numbers."""
    rows = [{"panel": panel.letter, "title": panel.title, "optimizer": panel.optimizer, "seed": seed,
             **summarize(path, problem)}
            for panel in panels for seed, path in zip(seeds, paths[panel.letter])]
    return pd.DataFrame(rows)


def summary_table(stats: pd.DataFrame) -> pd.DataFrame:
    """Mean and sample std (ddof=1; NaN for one seed) of every statistic per panel, in panel order."""
    return aggregate(stats, metrics=STATISTICS, by=("panel", "title", "optimizer"))


class Figure(NamedTuple):
    """One trajectory figure computed: its problem, panels, the paths of every panel and seed, their
    statistics (a row per panel and seed) and the summary (a row per panel)."""

    problem: TwoTaskProblem
    panels: list
    paths: dict
    stats: pd.DataFrame
    summary: pd.DataFrame


def run_figure(panels, steps: int, seeds) -> Figure:
    """Every panel's trajectories on the toy problem, each seed, with their statistics."""
    problem = TwoTaskProblem()
    paths = run_panels(panels, problem, steps, seeds)
    stats = statistics(panels, paths, seeds, problem)
    return Figure(problem, panels, paths, stats, summary_table(stats))


class Claim(NamedTuple):
    """A statement of the paper's Section 5 as a comparison: panel `rougher` has the larger jitter (turning)."""

    text: str
    rougher: str
    smoother: str


def _family_claims(adam: str, sgd: str) -> list[Claim]:
    """adam, sgd: the five letters FO, ZO, ZO q=4, Sign, Conserve of each family."""
    claims = []
    for name, (fo, zo, q4, sign, conserve) in (("Adam", adam), ("SGD", sgd)):
        claims += [Claim(f"FO is smoother than ZO ({name})", zo, fo),
                   Claim(f"q=4 is smoother than q=1 ({name})", zo, q4),
                   Claim(f"Sign oscillates more than ZO ({name})", sign, zo),
                   Claim(f"Conserve is more stable than ZO ({name})", zo, conserve)]
    strategies = ("FO", "ZO", "ZO q=4", "Sign", "Conserve")
    claims += [Claim(f"Adam oscillates more than SGD ({strategy})", a, s)
               for strategy, a, s in zip(strategies, adam, sgd)]
    return claims


FIGURE_6_CLAIMS = _family_claims("abcde", "fghij")
FIGURE_3_CLAIMS = [Claim("FO is smoother than ZO (SGD)", "b", "a")]


def check_claims(summary: pd.DataFrame, claims, metrics=("jitter", "turning")) -> pd.DataFrame:
    """One row per (claim, metric): the two panels' mean ± std over seeds and the outcome.

    rougher / smoother are the panels as the claim orders them. The outcome is "agrees" or "disagrees"
    only where |mean_rougher − mean_smoother| exceeds std_rougher + std_smoother (the book's one rule,
    `report.verdict`), else "within the spread"; with one seed there is no spread to compare with
    ("no spread (one seed)"). A deterministic panel (FO) has std 0 over several seeds.
    """
    panels = summary.set_index("panel")
    rows = []
    for claim in claims:
        for metric in metrics:
            (r_mean, r_std), (s_mean, s_std) = ((float(panels.at[p, f"{metric}_mean"]),
                                                 float(panels.at[p, f"{metric}_std"]))
                                                for p in (claim.rougher, claim.smoother))
            if math.isnan(r_std) or math.isnan(s_std):
                outcome = "no spread (one seed)"
            else:
                outcome = {"better": "agrees", "worse": "disagrees"}.get(verdict(r_mean, r_std, s_mean, s_std),
                                                                        "within the spread")
            rows.append({"claim": claim.text, "metric": metric,
                         "rougher": panels.at[claim.rougher, "title"], "rougher_mean": r_mean, "rougher_std": r_std,
                         "smoother": panels.at[claim.smoother, "title"], "smoother_mean": s_mean,
                         "smoother_std": s_std, "outcome": outcome})
    return pd.DataFrame(rows)


__all__ = ["DEFAULT_STEPS", "TOY_HYPER", "TwoTaskProblem", "bowl_hessian", "trajectory", "Panel",
           "FIGURE_6_PANELS", "FIGURE_3_PANELS", "run_panels", "summarize", "STATISTICS", "statistics",
           "summary_table", "Claim", "FIGURE_6_CLAIMS", "FIGURE_3_CLAIMS", "check_claims"]


# ------------------------------------------------------------------------------- Figures 3 and 6
# landscape.summary_table's statistics as shown, with the digits each needs.
TRAJECTORY_COLUMNS = {"final_distance": ("final distance to θ*", 3), "final_loss": ("final total loss", 3),
                      "path_length": ("path length", 3), "jitter": ("jitter", 3), "turning": ("turning (°)", 1)}


def toy_problem_text(problem, panels) -> str:
    """The toy problem's minima and each panel's optimizer and hyper-parameters (landscape.TwoTaskProblem,
    landscape.Panel)."""
    lines = [f"old-task minimum a = {problem.a}, new-task minimum b = {problem.b}, "
             f"total minimum θ* = {problem.total_minimum().round(3)}; every trajectory starts at a"]
    lines += [f"({panel.letter}) {panel.title}: {panel.optimizer}, "
              + ", ".join(f"{key}={value}" for key, value in panel.hyper.items()) for panel in panels]
    return "\n".join(lines)


def trajectory_table(summary: pd.DataFrame) -> pd.DataFrame:
    """landscape.summary_table as shown: each statistic's mean ± std over seeds."""
    shown = summary[["panel", "title", "optimizer", "n_seeds"]].copy()
    for name, (label, digits) in TRAJECTORY_COLUMNS.items():
        shown[label] = [format_mean_std(mean, std, digits)
                        for mean, std in zip(summary[f"{name}_mean"], summary[f"{name}_std"])]
    return shown


def trajectory_claims(convergence: str, problem, stats: pd.DataFrame, summary: pd.DataFrame,
                      verdicts: pd.DataFrame) -> str:
    """The trajectory figures' claims (Markdown): the `convergence` claim, judged by every panel ending within
    10% of the start distance from θ* in every seed (landscape.statistics), then landscape.check_claims'
    verdicts, one line per claim, and their count."""
    start = float(np.linalg.norm(problem.a - problem.total_minimum()))
    reached = stats.groupby("panel", sort=False).final_distance.max() < 0.1 * start
    titles = summary.set_index("panel").title
    missed = [titles[letter] for letter, ok in reached.items() if not ok]
    outcome = "agrees" if reached.all() else "disagrees" if not reached.any() else "partly"
    lines = [f"{convergence} — ours: **{outcome}**: {reached.sum()} of {len(reached)} panels end within 10% of "
             f"the start distance from θ\\* ({start:.2f}) in every seed"
             + (f"; not {', '.join(missed)}" if missed else "")]

    def mean_std(mean, std, metric):
        return format_mean_std(mean, std, 1 if metric == "turning" else 2)

    for claim, rows in verdicts.groupby("claim", sort=False):
        parts = [f"{row.metric} **{row.outcome}** ({row.rougher} "
                 f"{mean_std(row.rougher_mean, row.rougher_std, row.metric)} vs {row.smoother} "
                 f"{mean_std(row.smoother_mean, row.smoother_std, row.metric)})"
                 for row in rows.itertuples()]
        lines.append(f"{claim} — ours: " + "; ".join(parts))
    counts = verdicts.outcome.value_counts()
    return (bullets(lines) + f"\n\nOver all {len(verdicts)} comparisons: "
            + ", ".join(f"{n} {o}" for o, n in counts.items()))
