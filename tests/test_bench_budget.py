"""The MAC count of a .tflite file and the int8 peak model tlf-edge bench measures the machine with.

No figure here depends on the machine's speed or load: the tests check structure, units and
consistency (a stage's thread CPU never exceeds its wall time, the ratio is the rates' ratio),
and the MAC count against a count made by hand."""

from __future__ import annotations

import fnmatch
import math
from pathlib import Path

import pytest

from edge.model.macs import count_macs, op_macs
from edge.ops.peak import PEAK_FILTERS, PEAK_INPUT, PEAK_KERNEL, PEAK_MODEL
from edge.runtime.config import tomllib

REPO = Path(__file__).resolve().parents[1]


def op_table(path: Path) -> list[tuple]:
    """(operator, its tensors' shapes and dtypes) of every operator of a .tflite file."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    tensors = {t["index"]: (tuple(int(v) for v in t["shape"]), t["dtype"].__name__) for t in interp.get_tensor_details()}
    return [(op["op_name"], [tensors[i] for i in op["inputs"] if i >= 0], [tensors[i] for i in op["outputs"]])
            for op in interp._get_ops_details()]


# The MAC counter


def test_operator_macs_from_shapes():
    assert op_macs("CONV_2D", [(1, 8, 8, 3), (16, 3, 3, 3), (16,)], [(1, 8, 8, 16)]) == 8 * 8 * 16 * 3 * 3 * 3
    assert op_macs("DEPTHWISE_CONV_2D", [(1, 8, 8, 4), (1, 3, 3, 8), (8,)], [(1, 4, 4, 8)]) == 4 * 4 * 8 * 9
    assert op_macs("TRANSPOSE_CONV", [(4,), (6, 2, 2, 4), (1, 5, 5, 4)], [(1, 10, 10, 6)]) == 5 * 5 * 4 * 2 * 2 * 6
    assert op_macs("FULLY_CONNECTED", [(2, 7), (3, 7), (3,)], [(2, 3)]) == 2 * 3 * 7
    assert op_macs("MAX_POOL_2D", [(1, 8, 8, 4)], [(1, 4, 4, 4)]) == 0


def test_mac_count_of_a_tiny_model_equals_the_hand_count(tmp_path):
    tf = pytest.importorskip("tensorflow")
    keras = tf.keras
    x = keras.Input((12, 10, 3), batch_size=1)
    y = keras.layers.Conv2D(8, 3, padding="same")(x)  # 12*10*8 outputs of 3*3*3
    y = keras.layers.DepthwiseConv2D(3, strides=2, padding="same")(y)  # 6*5*8 outputs of 3*3
    y = keras.layers.Conv2DTranspose(4, 2, strides=2)(y)  # 6*5*8 inputs spread over 2*2*4
    y = keras.layers.GlobalAveragePooling2D()(y)
    y = keras.layers.Dense(5)(y)  # 4 -> 5
    model = keras.Model(x, y)
    path = tmp_path / "tiny.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    want = {"CONV_2D": 12 * 10 * 8 * 27, "DEPTHWISE_CONV_2D": 6 * 5 * 8 * 9, "TRANSPOSE_CONV": 6 * 5 * 8 * 16,
            "FULLY_CONNECTED": 4 * 5}
    got = count_macs(path)
    assert got.by_op == want and got.total == sum(want.values())
    assert got.ops == dict.fromkeys(want, 1)


# The peak model


def test_the_shipped_peak_model_is_what_the_command_makes(tmp_path):
    pytest.importorskip("tensorflow")
    from convert.cli import main

    made = tmp_path / "peak.tflite"
    assert main(["peak-model", "--out", str(made)]) == 0
    assert op_table(PEAK_MODEL) == op_table(made)
    (op,) = op_table(PEAK_MODEL)
    h, w = PEAK_KERNEL
    assert op == ("CONV_2D", [(PEAK_INPUT, "int8"), ((PEAK_FILTERS, h, w, PEAK_INPUT[-1]), "int8"),
                              ((PEAK_FILTERS,), "int32")], [((*PEAK_INPUT[:3], PEAK_FILTERS), "int8")])
    assert count_macs(PEAK_MODEL).total == math.prod(PEAK_INPUT[:3]) * PEAK_FILTERS * h * w * PEAK_INPUT[-1]
    assert PEAK_MODEL.stat().st_size < 300_000


def test_the_peak_model_is_package_data():
    data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["edge"]
    inside = PEAK_MODEL.relative_to(REPO / "edge").as_posix()
    assert any(fnmatch.fnmatch(inside, pattern) for pattern in data)
