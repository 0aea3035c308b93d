"""Multiply-accumulates per invoke of a .tflite model, counted from the file at run time.

LiteRT's interpreter lists the model's operators and the shapes of their tensors (no TensorFlow
needed); the MACs of the operators that do the arithmetic follow from those shapes:

  CONV_2D            output [N, Ho, Wo, Co], filter [Co, Kh, Kw, Ci]:  N*Ho*Wo*Co * Kh*Kw*Ci
  DEPTHWISE_CONV_2D  output [N, Ho, Wo, Co], filter [1, Kh, Kw, Co]:   N*Ho*Wo*Co * Kh*Kw
  TRANSPOSE_CONV     input [N, H, W, Ci], filter [Co, Kh, Kw, Ci]:     N*H*W*Ci * Kh*Kw*Co
                     (every input pixel is spread over a Kh x Kw patch of every output channel)
  FULLY_CONNECTED    filter [units, in], output [..., units]:          rows * units * in

A grouped CONV_2D (filter channels fewer than the input's) counts with the filter's channels, as
it computes. Every other operator (pooling, additions, activations, resizes) is not counted: it
is cheap beside these and does no multiply-accumulate.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.errors import BundleError

COUNTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED")


@dataclass(frozen=True)
class MacCount:
    """MACs per invoke: `total`, and per counted operator type (`by_op`, with `ops` operators each)."""

    total: int
    by_op: dict[str, int]
    ops: dict[str, int]

    @property
    def gmac(self) -> float:
        return self.total / 1e9


def _interpreter(model_path: Path):
    """An interpreter that lists the file's own operators (no delegate folding them into one node)."""
    from edge.model.segmenter import interpreter_class

    cls, _ = interpreter_class()
    resolver = getattr(importlib.import_module(cls.__module__), "OpResolverType", None)
    kwargs = {}
    if resolver is not None:
        kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        return cls(model_path=str(model_path), **kwargs)
    except (ValueError, RuntimeError) as e:
        raise BundleError(f"LiteRT cannot load {str(model_path)!r}: {e}") from e


def op_macs(op: str, inputs: list[tuple[int, ...]], outputs: list[tuple[int, ...]]) -> int:
    """The MACs of one operator from the shapes of its input and output tensors (0 for an
    operator that is not counted)."""
    if op == "CONV_2D":
        _, kh, kw, ci = inputs[1]
        return int(np.prod(outputs[0], dtype=np.int64)) * kh * kw * ci
    if op == "DEPTHWISE_CONV_2D":
        _, kh, kw, _ = inputs[1]
        return int(np.prod(outputs[0], dtype=np.int64)) * kh * kw
    if op == "TRANSPOSE_CONV":  # inputs: output shape, filter, input, (bias)
        co, kh, kw, _ = inputs[1]
        return int(np.prod(inputs[2], dtype=np.int64)) * kh * kw * co
    if op == "FULLY_CONNECTED":
        units, depth = inputs[1]
        rows = int(np.prod(outputs[0], dtype=np.int64)) // units
        return rows * units * depth
    return 0


def count_macs(model_path: str | Path) -> MacCount:
    """The MACs one invoke of the model at `model_path` performs (see the module docstring)."""
    interp = _interpreter(Path(model_path))
    shapes = {int(t["index"]): tuple(int(v) for v in t["shape"]) for t in interp.get_tensor_details()}

    def shape(i: int) -> tuple[int, ...]:
        return shapes.get(int(i), ()) if i >= 0 else ()  # -1: an optional input left out

    by_op: dict[str, int] = {}
    ops: dict[str, int] = {}
    for op in interp._get_ops_details():
        name = op["op_name"]
        if name not in COUNTED:
            continue
        macs = op_macs(name, [shape(i) for i in op["inputs"]], [shape(i) for i in op["outputs"]])
        by_op[name] = by_op.get(name, 0) + macs
        ops[name] = ops.get(name, 0) + 1
    return MacCount(sum(by_op.values()), by_op, ops)
