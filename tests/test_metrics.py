import math

import numpy as np
import pytest

from zeroflow_core.run.metrics import (
                                       MetricsError,
                                       accuracy,
                                       average_accuracy,
                                       backward_transfer,
                                       empty_acc_matrix,
                                       forgetting,
                                       last_accuracy,
                                       summarize,
                                       task_accuracies,
                                       )

NAN = float("nan")
# task 0 peaks after task 1 (80), not right after being learnt (70)
A3 = [[70.0, 80.0, 65.0],
      [NAN, 85.0, 60.0],
      [NAN, NAN, 75.0]]
SEEN3 = [70.0, 82.0, 68.0]


def test_hand_computed_3x3():
    assert average_accuracy(SEEN3) == pytest.approx((70 + 82 + 68) / 3)
    assert last_accuracy(SEEN3) == 68.0
    # task 0: max(70, 80) - 65 = 15; task 1: 85 - 60 = 25
    assert forgetting(A3) == pytest.approx(20.0)
    # task 0: 65 - 70 = -5; task 1: 60 - 85 = -25
    assert backward_transfer(A3) == pytest.approx(-15.0)
    s = summarize(A3, SEEN3)
    assert set(s) == {"avg_acc", "last_acc", "forgetting", "bwt"}
    assert s["avg_acc"] == pytest.approx(220 / 3) and s["last_acc"] == 68.0
    assert s["forgetting"] == pytest.approx(20.0) and s["bwt"] == pytest.approx(-15.0)
    assert all(isinstance(v, float) for v in s.values())


def test_lower_triangle_is_ignored():
    a = np.array(A3)
    a[np.tril_indices(3, -1)] = 999.0
    assert forgetting(a) == forgetting(A3)
    assert backward_transfer(a) == backward_transfer(A3)


def test_positive_transfer_is_no_forgetting_in_pilots_formula():
    a = [[50.0, 60.0], [NAN, 70.0]]
    assert forgetting(a) == 0.0  # PILOT: max(50, 60) - 60
    assert forgetting(a, "before_final") == pytest.approx(-10.0)
    assert backward_transfer(a) == pytest.approx(10.0)


def test_single_task_is_zero_not_nan():
    s = summarize([[42.0]], [42.0])
    assert s == {"avg_acc": 42.0, "last_acc": 42.0, "forgetting": 0.0, "bwt": 0.0}
    assert not math.isnan(forgetting(np.array([[1.0]])))


def test_forgetting_takes_pilots_max_over_every_column():
    a = [[90.0, 40.0, 95.0], [NAN, 60.0, 30.0], [NAN, NAN, 50.0]]
    # PILOT (trainer.py): task 0: max(90, 40, 95) - 95 = 0; task 1: max(60, 30) - 30 = 30
    assert forgetting(a) == pytest.approx(15.0)
    # before the end only: task 0: 90 - 95 = -5; task 1: 60 - 30 = 30
    assert forgetting(a, "before_final") == pytest.approx(12.5)
    with pytest.raises(MetricsError, match="formula"):
        forgetting(a, "pilots")


@pytest.mark.parametrize("bad", [np.zeros((2, 3)), np.zeros(3), np.zeros((0, 0)),
                                 [[1.0, NAN], [NAN, 2.0]]])
def test_bad_matrix_raises(bad):
    with pytest.raises(MetricsError):
        forgetting(bad)


def test_summarize_checks_lengths():
    with pytest.raises(MetricsError, match="3 x 3"):
        summarize(A3, [1.0, 2.0])
    with pytest.raises(MetricsError):
        average_accuracy([])
    with pytest.raises(MetricsError):
        last_accuracy([[1.0]])


def test_task_accuracies_and_empty_matrix():
    y_true = np.array([0, 1, 2, 3, 4, 5])
    y_pred = np.array([0, 0, 2, 3, 1, 5])
    per_task, seen = task_accuracies(y_true, y_pred, classes_per_task=2, n_tasks_seen=3)
    np.testing.assert_allclose(per_task, [50.0, 100.0, 50.0])
    assert seen == pytest.approx(400 / 6)
    assert accuracy([1, 2], [1, 3]) == 50.0
    assert math.isnan(accuracy([], []))
    with pytest.raises(MetricsError):
        accuracy([1, 2], [1])
    m = empty_acc_matrix(3)
    assert m.shape == (3, 3) and np.isnan(m).all()
