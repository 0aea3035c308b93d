import numpy as np
import pytest

from edge.measure.metrics import confusion, scores


def test_scores_on_a_known_case():
    truth = np.array([[0, 0, 1, 1], [2, 2, 2, 2]])
    pred = np.array([[0, 1, 1, 1], [2, 2, 2, 0]])
    assert confusion(truth, pred, 3).tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 3]]
    s = scores(truth, pred, 3)
    assert s["pixel_accuracy"] == pytest.approx(6 / 8)
    assert s["iou"] == pytest.approx([1 / 3, 2 / 3, 3 / 4])
    assert s["dice"] == pytest.approx([2 / 4, 4 / 5, 6 / 7])
    assert s["mean_iou"] == pytest.approx(np.mean([1 / 3, 2 / 3, 3 / 4]))


def test_perfect_prediction():
    t = np.random.default_rng(0).integers(0, 3, (32, 32))
    s = scores(t, t, 3)
    assert s["mean_iou"] == 1.0 and s["pixel_accuracy"] == 1.0
