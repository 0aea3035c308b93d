"""The int8 peak model `tlf-edge bench` measures the machine's limit with (edge.ops.peak): one
3x3 convolution of edge.ops.peak's shape, converted like the U-Net (full-integer int8, per-channel
weights, int8 input and output, a fixed batch of 1), from seeded weights and a seeded
representative set."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from convert.quiet import export_announcement_hidden
from edge.ops.peak import PEAK_FILTERS, PEAK_INPUT, PEAK_KERNEL

CALIBRATION_SAMPLES = 8


def peak_keras(seed: int = 0) -> keras.Model:
    """The float convolution: PEAK_INPUT -> 3x3, PEAK_FILTERS channels, same padding, ReLU."""
    keras.utils.set_random_seed(seed)
    batch, height, width, channels = PEAK_INPUT
    x = keras.Input((height, width, channels), batch_size=batch)
    y = keras.layers.Conv2D(PEAK_FILTERS, PEAK_KERNEL, padding="same", activation="relu")(x)
    return keras.Model(x, y)


def peak_tflite(seed: int = 0) -> bytes:
    """The int8 .tflite bytes of `peak_keras(seed)`, calibrated on seeded normal noise."""
    return int8_tflite(peak_keras(seed), seed)


def int8_tflite(model: keras.Model, seed: int = 0) -> bytes:
    """The full-integer int8 .tflite bytes of a Keras model of one fixed-shape input, as the
    U-Net is converted (per-channel weights, int8 input and output), calibrated on seeded normal
    noise."""
    shape = tuple(int(v) for v in model.inputs[0].shape)
    rng = np.random.default_rng(seed)

    def representative():
        for _ in range(CALIBRATION_SAMPLES):
            yield [rng.standard_normal(shape).astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    with export_announcement_hidden():
        return converter.convert()


def write_peak_model(out: str | Path, seed: int = 0) -> Path:
    """Write the peak model to `out` (its folder made when missing); the path written."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(peak_tflite(seed))
    return out
