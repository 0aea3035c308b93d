"""A Conv2DTranspose whose kernel equals its stride is exported, when asked
(`tlf-convert quantize --transpose-as-depth-to-space`), as a 1x1 convolution and a depth-to-space
(convert.unet.export_ready): the same function in float, taken whole by XNNPACK in int8, with no
TRANSPOSE_CONV left in the graph; by default it stays."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")
sys.path.insert(0, str(Path(__file__).parent))

import keras  # noqa: E402
from conftest import small_field_set  # noqa: E402

from convert.unet import build_unet, export_ready  # noqa: E402


def _with_random_weights(model: keras.Model, seed: int) -> keras.Model:
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        layer.set_weights([rng.standard_normal(w.shape).astype(np.float32) for w in layer.get_weights()])
    return model


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("activation,use_bias", [(None, True), ("relu", True), ("sigmoid", False)])
def test_the_rewrite_is_the_same_function(k, padding, activation, use_bias):
    inp = keras.Input((7, 5, 3))
    up = keras.layers.Conv2DTranspose(4, k, strides=k, padding=padding, activation=activation, use_bias=use_bias)
    model = _with_random_weights(keras.Model(inp, up(inp)), seed=k)
    assert export_ready(model) is model  # not by default
    ready = export_ready(model, blockwise_transpose=True)
    kinds = [type(layer).__name__ for layer in ready.layers]
    assert "Conv2DTranspose" not in kinds and "DepthToSpace" in kinds
    x = np.random.default_rng(0).standard_normal((2, 7, 5, 3)).astype(np.float32)
    want, got = model.predict(x, verbose=0), ready.predict(x, verbose=0)
    assert got.shape == want.shape == (2, 7 * k, 5 * k, 4)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kernel_size": 3, "strides": 2, "padding": "same"},  # overlapping blocks
        {"kernel_size": 2, "strides": 1, "padding": "same"},  # no upsampling
        {"kernel_size": (2, 1), "strides": (2, 1), "padding": "same"},  # not square
    ],
)
def test_other_transposed_convolutions_stay(kwargs):
    inp = keras.Input((8, 8, 2))
    model = keras.Model(inp, keras.layers.Conv2DTranspose(3, **kwargs)(inp))
    assert export_ready(model, blockwise_transpose=True) is model


def test_a_unet_converts_whole_without_transpose_conv_and_agrees_with_float(tmp_path):
    from convert.quantize import quantize_to_bundle
    from edge.frame import Frame
    from edge.model.preprocess import PreprocessSpec, to_float
    from edge.model.segmenter import Segmenter

    keras.utils.set_random_seed(3)
    model = build_unet(input_size=64, base_filters=4, depth=2)
    images = small_field_set(12, seed=7)[0]
    spec = PreprocessSpec(64, 64, 1)
    bundle = quantize_to_bundle(
        model,
        images,
        spec,
        tmp_path / "b",
        check_prediction=False,
        check_preprocessing=False,
        transpose_as_depth_to_space=True,
    )
    ops = bundle.manifest["ops"]
    assert "TRANSPOSE_CONV" not in ops and "DEPTH_TO_SPACE" in ops
    assert bundle.manifest["delegate_partitions"] == 1
    assert bundle.manifest["export"] == {"transpose_as_depth_to_space": True, "transpose_conv_blockwise": 0}
    seg = Segmenter(bundle, 1)
    want = np.argmax(model.predict(np.stack([to_float(im, spec) for im in images]), verbose=0), axis=-1)
    got = np.stack([seg.segment(Frame(im[..., 0], 0.0, i)).labels for i, im in enumerate(images)])
    agreement = float((got == want).mean())
    assert agreement > 0.9


def test_asking_for_the_keras_rewrite_of_a_model_without_up_convolutions_records_none(tmp_path, capsys):
    from convert.quantize import quantize_to_bundle
    from edge.model.preprocess import PreprocessSpec

    inp = keras.Input((64, 64, 1))
    model = keras.Model(inp, keras.layers.Conv2D(3, 1)(keras.layers.Conv2D(4, 3, padding="same")(inp)))
    images = small_field_set(8, seed=7)[0]
    bundle = quantize_to_bundle(
        model,
        images,
        PreprocessSpec(64, 64, 1),
        tmp_path / "b",
        check_prediction=False,
        check_preprocessing=False,
        transpose_as_depth_to_space=True,
    )
    assert bundle.manifest["export"]["transpose_as_depth_to_space"] is False
    assert "nothing was rewritten in Keras" in capsys.readouterr().err
