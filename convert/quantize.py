"""Full-integer int8 conversion with a calibration set, packaged as a model bundle."""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf
import keras

import edge
from edge.bundle import Bundle, write_bundle
from edge.preprocess import PreprocessSpec, to_float
from edge.segmenter import interpreter_class

DEFAULT_CLASSES = ["above", "tlf", "below"]
MIN_CALIBRATION = 8


class QuantizeError(Exception):
    """The model or its calibration set cannot make a trustworthy int8 model."""


def load_keras_model(path: str | Path) -> keras.Model:
    """Load a .keras/.h5 model without running code from the file (safe mode)."""
    path = Path(path)
    if not path.exists():
        raise QuantizeError(f"no model at {str(path)!r}")
    try:
        return keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as e:  # keras raises many types for a bad file
        raise QuantizeError(f"cannot load Keras model {str(path)!r}: {e}") from e


def with_fixed_batch(model: keras.Model) -> keras.Model:
    """The same model and weights with its batch fixed to 1 (no dynamic-shape ops after export)."""
    if model.input_shape[0] == 1:
        return model
    inp = keras.Input(batch_shape=(1, *model.input_shape[1:]), name=model.inputs[0].name.split(":")[0])
    clone = keras.models.clone_model(model, input_tensors=inp)
    clone.set_weights(model.get_weights())
    return clone


def convert_int8(model: keras.Model, calibration: np.ndarray, spec: PreprocessSpec) -> bytes:
    """int8 TFLite bytes (int8 input and output, per-channel weights) with a fixed batch of 1.

    calibration: uint8 (N, H, W, C) model images, preprocessed by the device's code.
    """
    if len(calibration) < MIN_CALIBRATION:
        raise QuantizeError(f"calibration set has {len(calibration)} images; at least {MIN_CALIBRATION} are needed")
    converter = tf.lite.TFLiteConverter.from_keras_model(with_fixed_batch(model))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]

    def representative():
        for image in calibration:
            yield [to_float(image, spec)[None]]

    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert()


def tensor_contract(model_bytes: bytes) -> tuple[dict, dict, list[str]]:
    """Input and output details of a TFLite model as manifest entries, plus its op names."""
    cls, _ = interpreter_class()
    interp = cls(model_content=model_bytes)
    interp.allocate_tensors()

    def entry(d):
        scale, zero = d["quantization"]
        return {"shape": [int(v) for v in d["shape"]], "dtype": np.dtype(d["dtype"]).name, "scale": float(scale), "zero_point": int(zero)}

    ops = sorted({op["op_name"] for op in interp._get_ops_details()} - {"DELEGATE"})
    return entry(interp.get_input_details()[0]), entry(interp.get_output_details()[0]), ops


def tool_versions() -> dict:
    return {
        "tlf-edge": edge.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
    }


def quantize_to_bundle(
    model: keras.Model,
    calibration: np.ndarray,
    spec: PreprocessSpec,
    out_dir: str | Path,
    classes: list[str] | None = None,
    tlf_class: int = 1,
    output_kind: str = "logits",
    extra: dict | None = None,
) -> Bundle:
    """Convert `model` to int8 with `calibration` and write a verified bundle to `out_dir`."""
    model_bytes = convert_int8(model, calibration, spec)
    inp, out, ops = tensor_contract(model_bytes)
    n_classes = out["shape"][-1]
    classes = classes or (DEFAULT_CLASSES if n_classes == 3 else [f"class{i}" for i in range(n_classes)])
    if len(classes) != n_classes:
        raise QuantizeError(f"{len(classes)} class names given for a model with {n_classes} outputs")
    manifest = {
        "input": inp,
        "output": {**out, "layout": "NHWC", "kind": output_kind},
        "classes": classes,
        "tlf_class": tlf_class,
        "preprocess": spec.to_dict(),
        "ops": ops,
        "calibration": {"images": int(len(calibration))},
        "created_by": tool_versions(),
        **(extra or {}),
    }
    return write_bundle(out_dir, model_bytes, manifest)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use: tlf-convert quantize")
