"""The learning-rate schedule of training: constant, or a cosine decay to a final rate."""

from __future__ import annotations

import numpy as np
import pytest

from convert.errors import ConvertError  # noqa: E402

pytest.importorskip("tensorflow")


def test_constant_rate_without_a_final_rate():
    from convert.train import TrainOptions, learning_rate_of

    assert learning_rate_of(TrainOptions(learning_rate=2e-3), steps=25) == 2e-3


def test_cosine_decay_runs_from_the_rate_to_the_final_rate_over_all_epochs():
    from convert.train import TrainOptions, learning_rate_of, steps_per_epoch

    opts = TrainOptions(epochs=8, learning_rate=3e-4, final_learning_rate=3e-5)
    steps = steps_per_epoch(None, 25, 16)
    schedule = learning_rate_of(opts, steps)
    assert float(schedule(0)) == pytest.approx(3e-4)
    assert float(schedule(4 * steps)) == pytest.approx((3e-4 + 3e-5) / 2, rel=1e-3)
    assert float(schedule(8 * steps)) == pytest.approx(3e-5)
    assert steps_per_epoch((list(range(33)), None), 25, 16) == 3


def test_a_final_rate_above_the_rate_is_refused():
    from convert.train import TrainOptions, learning_rate_of

    with pytest.raises(ConvertError, match="final learning rate"):
        learning_rate_of(TrainOptions(learning_rate=1e-4, final_learning_rate=1e-3), steps=10)


def _weighted_smoothed_loss(p, q, w, e):
    """Expected class-weighted, label-smoothed cross-entropy of prediction p where the truth is q."""
    k = len(p)
    targets = (1 - e) * np.eye(k) + e / k
    logp = np.log(np.maximum(p, 1e-300))
    return float(sum(q[c] * w[c] * -(targets[c] * logp)[targets[c] > 0].sum() for c in range(k) if q[c] > 0))


@pytest.mark.parametrize("e", [0.0, 0.1, 0.2])
def test_the_class_weight_shift_puts_the_boundary_back_where_the_true_posteriors_cross(e):
    from convert.train import class_weight_shift

    w, q = np.array([1.0, 6.0, 1.0]), np.array([0.5, 0.5, 0.0])  # at the top edge of the band
    # The loss's minimiser over the simplex (checked against random nearby predictions).
    p = (1 - e) * w * q + e / 3 * (w * q).sum()
    p /= p.sum()
    rng = np.random.default_rng(0)
    for _ in range(200):
        other = np.abs(p + rng.normal(0, 0.02, 3)) + 1e-9
        assert _weighted_smoothed_loss(p, q, w, e) <= _weighted_smoothed_loss(other / other.sum(), q, w, e) + 1e-12
    corrected = np.log(np.maximum(p, 1e-300)) - class_weight_shift(w, e)
    assert corrected[0] == pytest.approx(corrected[1], abs=1e-6)  # a tie: the boundary is unbiased
    if e == 0.0:
        assert class_weight_shift(w, e)[1] == pytest.approx(np.log(6.0))
    else:
        assert class_weight_shift(w, e)[1] < np.log(6.0)
