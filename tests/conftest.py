"""Shared fixtures: a tiny U-Net trained for a few seconds on phantom data and converted to a
real int8 bundle, used wherever a test needs a model of its own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
REALDATA = REPO.parent / "shared" / "realdata"


@pytest.fixture(scope="session")
def tiny_spec():
    from edge.preprocess import PreprocessSpec

    return PreprocessSpec(height=64, width=64)


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory, tiny_spec):
    pytest.importorskip("tensorflow")
    from convert.train import TrainOptions, train

    out = tmp_path_factory.mktemp("tiny_train")
    opts = TrainOptions(epochs=4, batch_size=8, base_filters=4, depth=2, seed=3, patience=4, learning_rate=3e-3)
    return train(out, tiny_spec, opts, phantom_steps=12, verbose=0)


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory, tiny_model_path, tiny_spec):
    from convert.data import phantom_batch
    from convert.quantize import load_keras_model, quantize_to_bundle

    model = load_keras_model(tiny_model_path)
    calib = phantom_batch(range(500, 532), tiny_spec)[0]
    return quantize_to_bundle(model, calib, tiny_spec, tmp_path_factory.mktemp("tiny_bundle"))
