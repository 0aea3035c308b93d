"""The learning-rate schedule of training: constant, or a cosine decay to a final rate."""

from __future__ import annotations

import pytest

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

    with pytest.raises(ValueError, match="final learning rate"):
        learning_rate_of(TrainOptions(learning_rate=1e-4, final_learning_rate=1e-3), steps=10)
