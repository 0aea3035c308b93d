"""benchmarks/layer_rates.py on a tiny int8 model: it finds each convolution shape, times each
alone through LiteRT, and its layers' MACs add up to the model's."""

import json
from collections import Counter

import pytest
from benchmark_module import load

pytest.importorskip("tensorflow")

import keras  # noqa: E402

from convert.peak import int8_tflite  # noqa: E402
from edge.model.macs import count_macs  # noqa: E402

lr = load("layer_rates")


def _tiny(path):
    keras.utils.set_random_seed(0)
    x = keras.Input((64, 64, 1), batch_size=1)
    a = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    b = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(a)
    c = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(b)
    down = keras.layers.MaxPooling2D()(c)
    up = keras.layers.Conv2DTranspose(2, 2, strides=2, padding="same")(down)
    path.write_bytes(int8_tflite(keras.Model(x, keras.layers.Conv2D(3, 1)(up))))
    return path


def test_each_convolution_shape_is_found_and_timed_and_the_macs_add_up(tmp_path):
    model = _tiny(tmp_path / "model.tflite")
    assert lr.conv_shapes(model) == Counter(
        {
            ("CONV_2D", (1, 64, 64, 1), (3, 3), 4, 1): 1,
            ("CONV_2D", (1, 64, 64, 4), (3, 3), 4, 1): 2,
            ("TRANSPOSE_CONV", (1, 32, 32, 4), (2, 2), 2, 2): 1,
            ("CONV_2D", (1, 64, 64, 2), (1, 1), 3, 1): 1,
        }
    )
    out = tmp_path / "rates.json"
    assert lr.main(["--bundle", str(tmp_path), "--threads", "1", "--runs", "2", "--json", str(out)]) == 0
    (block,) = json.loads(out.read_text())["rows"]
    assert block["threads"] == 1 and len(block["layers"]) == 4
    assert [r["count"] for r in block["layers"]] == [1, 2, 1, 1]
    assert all(r["ms_p50"] > 0 for r in block["layers"])
    assert sum(r["macs"] * r["count"] for r in block["layers"]) == block["model"]["macs"] == count_macs(model).total
    assert sum(r["share"] for r in block["layers"]) == pytest.approx(1.0, abs=0.01)
