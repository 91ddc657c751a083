"""Continual-learning metrics: pure functions on numpy arrays.

Conventions (accuracies in percent):
- `acc_matrix[i, t]`: accuracy on task i's classes after training task t; entries with
  i > t (tasks not yet seen) are ignored and are usually NaN.
- `acc_seen[t]`: accuracy on all classes seen so far, after training task t.
"""

from __future__ import annotations

import numpy as np


class MetricsError(ValueError):
    """An accuracy matrix or vector has the wrong shape or missing entries."""


def _matrix(acc_matrix) -> np.ndarray:
    a = np.asarray(acc_matrix, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] == 0:
        raise MetricsError(f"acc_matrix must be a non-empty square T x T array, got shape {a.shape}")
    upper = a[np.triu_indices(a.shape[0])]
    if not np.all(np.isfinite(upper)):
        raise MetricsError("acc_matrix[i, t] must be finite for every t >= i (seen tasks)")
    return a


def _seen(acc_seen) -> np.ndarray:
    v = np.asarray(acc_seen, dtype=np.float64)
    if v.ndim != 1 or v.size == 0:
        raise MetricsError(f"acc_seen must be a non-empty 1-D array, got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise MetricsError("acc_seen must be finite")
    return v


def empty_acc_matrix(n_tasks: int) -> np.ndarray:
    """A T x T matrix of NaN, to be filled column by column as tasks are trained."""
    return np.full((n_tasks, n_tasks), np.nan)


def accuracy(y_true, y_pred) -> float:
    """Percent of equal entries; NaN for empty input."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise MetricsError(f"y_true {y_true.shape} and y_pred {y_pred.shape} differ in shape")
    if y_true.size == 0:
        return float("nan")
    return float(100.0 * np.mean(y_true == y_pred))


def task_accuracies(y_true, y_pred, classes_per_task: int, n_tasks_seen: int
                    ) -> tuple[np.ndarray, float]:
    """(accuracy on each seen task's classes, accuracy on all seen classes).

    Labels follow the scenario's remapping (task t holds [t * k, (t + 1) * k)); the first
    value fills column `n_tasks_seen - 1` of the accuracy matrix, the second `acc_seen`.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    task = y_true // classes_per_task
    per_task = np.array([accuracy(y_true[task == i], y_pred[task == i])
                         for i in range(n_tasks_seen)])
    return per_task, accuracy(y_true, y_pred)


def average_accuracy(acc_seen) -> float:
    """Mean over tasks of the accuracy on all seen classes."""
    return float(np.mean(_seen(acc_seen)))


def last_accuracy(acc_seen) -> float:
    """Accuracy on all classes after the last task."""
    return float(_seen(acc_seen)[-1])


# pilot: PILOT's and INFTY's trainer, max over every column, the final one included, so no drop is negative;
# before_final: the best accuracy before the end (this companion's formula before 2026-12), which lets
# positive backward transfer show as negative forgetting. The book's "official code vs ours" page shows both.
FORGETTING_FORMULAS = ("pilot", "before_final")


def forgetting(acc_matrix, formula: str = "pilot") -> float:
    """Mean over tasks i < T-1 of (best accuracy on i − final accuracy on i); see FORGETTING_FORMULAS."""
    if formula not in FORGETTING_FORMULAS:
        raise MetricsError(f"unknown forgetting formula {formula!r}; known: {', '.join(FORGETTING_FORMULAS)}")
    a = _matrix(acc_matrix)
    n = a.shape[0]
    if n == 1:
        return 0.0
    last = n if formula == "pilot" else n - 1
    drops = [np.max(a[i, i:last]) - a[i, n - 1] for i in range(n - 1)]
    return float(np.mean(drops))


def backward_transfer(acc_matrix) -> float:
    """Mean over tasks i < T-1 of (final accuracy on i − accuracy on i right after learning it)."""
    a = _matrix(acc_matrix)
    n = a.shape[0]
    if n == 1:
        return 0.0
    return float(np.mean([a[i, n - 1] - a[i, i] for i in range(n - 1)]))


# the share of a task's steps averaged at each end of its loss curve: one step's mini-batch loss is too noisy
LOSS_DROP_SHARE = 0.1


def loss_drop(curve) -> float | None:
    """How far one task's training loss fell: the mean of its first tenth of steps minus the mean of its last
    tenth (at least one step each); None for a task without steps (nothing trained, or a method that trains
    only some tasks)."""
    c = np.asarray(curve, dtype=np.float64)
    if c.size == 0:
        return None
    k = max(1, int(round(LOSS_DROP_SHARE * c.size)))
    return float(c[:k].mean() - c[-k:].mean())


def mean_loss_drop(loss_curves) -> float | None:
    """The mean of `loss_drop` over the tasks that trained; None when none did."""
    drops = [d for d in (loss_drop(c) for c in loss_curves) if d is not None]
    return float(np.mean(drops)) if drops else None


def summarize(acc_matrix, acc_seen) -> dict[str, float]:
    """avg_acc, last_acc, forgetting and bwt of one run."""
    a = _matrix(acc_matrix)
    v = _seen(acc_seen)
    if len(v) != a.shape[0]:
        raise MetricsError(f"acc_seen has {len(v)} entries but acc_matrix is "
                           f"{a.shape[0]} x {a.shape[1]}")
    return {
        "avg_acc": average_accuracy(v),
        "last_acc": last_accuracy(v),
        "forgetting": forgetting(a),
        "bwt": backward_transfer(a),
    }
