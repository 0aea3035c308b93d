"""Full-integer int8 conversion with a calibration set, packaged as a model bundle."""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf
import keras

import edge
from convert.calibration import check_calibration
from convert.unet import split_skip_connections
from edge.bundle import Bundle, write_bundle
from edge.preprocess import PreprocessSpec, to_float
from edge.segmenter import interpreter_class

DEFAULT_CLASSES = ["above", "tlf", "below"]


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


def int8_converter(model: keras.Model, calibration: np.ndarray, spec: PreprocessSpec, int8_io: bool = True, progress: bool = False):
    """A TFLite converter set for full-integer int8 with per-channel weights and a fixed batch of 1."""
    if len(calibration) == 0:
        raise QuantizeError("calibration set is empty")
    converter = tf.lite.TFLiteConverter.from_keras_model(with_fixed_batch(model))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]

    def representative():
        bar = keras.utils.Progbar(len(calibration), unit_name="calibration image") if progress else None
        for i, image in enumerate(calibration):
            yield [to_float(image, spec)[None]]
            if bar:
                bar.update(i + 1)

    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if int8_io:
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter


def convert_int8(model: keras.Model, calibration: np.ndarray, spec: PreprocessSpec, progress: bool = False) -> bytes:
    """int8 TFLite bytes (int8 input and output, per-channel weights) with a fixed batch of 1.

    calibration: uint8 (N, H, W, C) model images, preprocessed by the device's code.
    """
    return int8_converter(model, calibration, spec, progress=progress).convert()


def _snr_db(f, q, scale, zero_point) -> float:
    f = np.asarray(f[0], np.float64)
    deq = (np.asarray(q[0]).astype(np.int32) - zero_point) * scale
    noise = ((f - deq) ** 2).sum()
    return float(10 * np.log10((f**2).sum() / noise)) if noise > 0 else float("inf")


def _levels_used(f, q, scale, zero_point) -> float:
    return float(np.unique(np.asarray(q[0])).size)


def layer_report(model: keras.Model, calibration: np.ndarray, spec: PreprocessSpec, samples: int = 8) -> list[dict]:
    """Per-layer int8 error: signal-to-quantization-noise ratio (dB) and int8 levels used, worst first.

    A layer whose output uses only a few of the 256 levels, or whose SNR is low, is where int8
    loses precision (typically a concatenation that forces a small branch onto a large scale).
    """
    converter = int8_converter(model, calibration, spec, int8_io=False)
    options = tf.lite.experimental.QuantizationDebugOptions(
        layer_direct_compare_metrics={"snr_db": _snr_db, "levels_used": _levels_used}
    )

    def dataset():
        for image in calibration[:samples]:
            yield [to_float(image, spec)[None]]

    debugger = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=dataset, debug_options=options)
    debugger.run()
    rows = [
        {"tensor": name, "snr_db": round(float(st["snr_db"]), 2), "levels_used": int(st["levels_used"])}
        for name, st in debugger.layer_statistics.items()
    ]
    return sorted(rows, key=lambda r: r["snr_db"])


def output_kind_of(model: keras.Model) -> str:
    """'softmax' when the model ends in a softmax, else 'logits'."""
    last = model.layers[-1]
    act = getattr(last, "activation", None)
    is_softmax = isinstance(last, keras.layers.Softmax) or getattr(act, "__name__", "") == "softmax"
    return "softmax" if is_softmax else "logits"


# Ops that XNNPACK runs in int8 (the subset a U-Net of this family uses).
XNNPACK_INT8_OPS = {
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED",
    "MAX_POOL_2D", "MUL", "PAD", "RESHAPE", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "SUB",
    "TRANSPOSE_CONV", "LEAKY_RELU", "HARD_SWISH", "TANH", "LOGISTIC", "ELU",
}
# Ops that mean the graph kept dynamic shapes or float islands.
DYNAMIC_OPS = {"SHAPE", "STRIDED_SLICE", "PACK", "UNPACK", "GATHER", "FILL", "RANGE", "DEQUANTIZE", "QUANTIZE"}


def graph_report(model_bytes: bytes) -> dict:
    """Input/output tensor contract, op names and XNNPACK delegation of a TFLite model."""
    cls, _ = interpreter_class()
    interp = cls(model_content=model_bytes, num_threads=1)
    interp.allocate_tensors()

    def entry(d):
        scale, zero = d["quantization"]
        return {"shape": [int(v) for v in d["shape"]], "dtype": np.dtype(d["dtype"]).name, "scale": float(scale), "zero_point": int(zero)}

    names = [op["op_name"] for op in interp._get_ops_details()]
    ops = [n for n in names if n != "DELEGATE"]
    return {
        "input": entry(interp.get_input_details()[0]),
        "output": entry(interp.get_output_details()[0]),
        "ops": sorted(set(ops)),
        "delegate_partitions": names.count("DELEGATE"),
        "undelegated_ops": sorted(set(ops) - XNNPACK_INT8_OPS),
    }


def check_graph(report: dict, allow: set[str] = frozenset()) -> None:
    """Refuse a graph with dynamic-shape ops or one that XNNPACK does not take whole."""
    dynamic = sorted(set(report["ops"]) & DYNAMIC_OPS)
    if dynamic:
        raise QuantizeError(f"converted graph keeps dynamic-shape or float ops {dynamic}: fix the batch to 1 and the input to int8")
    outside = sorted(set(report["undelegated_ops"]) - set(allow))
    if report["delegate_partitions"] != 1 or outside:
        raise QuantizeError(
            f"XNNPACK takes the graph in {report['delegate_partitions']} partition(s), ops outside it: {outside}; "
            "export logits (no softmax or argmax layer) to keep one partition"
        )


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
    output_kind: str | None = None,
    extra: dict | None = None,
    reference: np.ndarray | None = None,
    check_calibration_set: bool = True,
    progress: bool = False,
) -> Bundle:
    """Convert `model` to int8 with `calibration` and write a verified bundle to `out_dir`.

    The calibration set is checked first (see convert.calibration); `reference` is validation
    data it must resemble. `check_calibration_set=False` exists only to build deliberately bad
    models for testing the validation gate.
    """
    output_kind = output_kind or output_kind_of(model)
    model = split_skip_connections(model)
    calib_stats = check_calibration(calibration, reference) if check_calibration_set else {"images": int(len(calibration))}
    model_bytes = convert_int8(model, calibration, spec, progress=progress)
    graph = graph_report(model_bytes)
    check_graph(graph, allow={"SOFTMAX"} if output_kind == "softmax" else set())
    inp, out = graph["input"], graph["output"]
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
        "ops": graph["ops"],
        "delegate_partitions": graph["delegate_partitions"],
        "calibration": calib_stats,
        "created_by": tool_versions(),
        **(extra or {}),
    }
    return write_bundle(out_dir, model_bytes, manifest)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use: tlf-convert quantize")
