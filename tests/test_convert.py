"""Real int8 conversions of tiny U-Nets trained for a few seconds on phantom data."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from convert.data import phantom_batch  # noqa: E402
from convert.quantize import QuantizeError, convert_int8, load_keras_model, quantize_to_bundle  # noqa: E402
from convert.unet import build_unet  # noqa: E402
from edge.preprocess import PreprocessSpec, to_float  # noqa: E402


def test_paper_size_unet_has_the_study_shape():
    m = build_unet()
    assert m.input_shape == (1, 256, 256, 1) and m.output_shape == (1, 256, 256, 3)
    assert 1.7e6 < m.count_params() < 2.2e6  # about 1.9 M parameters
    filters = [layer.filters for layer in m.layers if layer.name.endswith("_a") and hasattr(layer, "filters")]
    assert filters[:5] == [16, 32, 64, 128, 256]


def test_split_skip_equals_concatenation_in_float():
    a = build_unet(input_size=32, base_filters=4, depth=2, split_skip=False)
    b = build_unet(input_size=32, base_filters=4, depth=2, split_skip=True)
    # copy weights: split the kernel of each conv that follows a concatenation along input channels
    for la in a.layers:
        w = la.get_weights()
        if not w:
            continue
        if la.name.endswith("_a") and la.name.startswith("dec"):
            k, bias = w
            n_up = k.shape[2] // 2
            b.get_layer(la.name + "_up").set_weights([k[:, :, :n_up], bias])
            b.get_layer(la.name + "_skip").set_weights([k[:, :, n_up:]])
        else:
            b.get_layer(la.name).set_weights(w)
    x = np.random.default_rng(0).random((1, 32, 32, 1)).astype(np.float32)
    assert np.allclose(a(x).numpy(), b(x).numpy(), atol=1e-5)


def test_tiny_bundle_is_full_integer_with_fixed_batch(tiny_bundle, tiny_spec):
    m = tiny_bundle.manifest
    assert m["input"] == {**m["input"], "shape": [1, 64, 64, 1], "dtype": "int8"}
    assert m["output"]["shape"] == [1, 64, 64, 3] and m["output"]["dtype"] == "int8"
    assert m["input"]["scale"] == pytest.approx(1 / 255, rel=1e-3) and m["input"]["zero_point"] == -128
    dynamic = {"SHAPE", "STRIDED_SLICE", "PACK", "DEQUANTIZE", "QUANTIZE"} & set(m["ops"])
    assert not dynamic, f"dynamic-shape or float ops left in the graph: {dynamic}"
    assert m["preprocess"] == tiny_spec.to_dict()


def test_int8_agrees_with_float_on_unseen_phantoms(tiny_bundle, tiny_model_path, tiny_spec):
    from edge.segmenter import Segmenter

    model = load_keras_model(tiny_model_path)
    seg = Segmenter(tiny_bundle, 2)
    images, labels = phantom_batch(range(900, 916), tiny_spec)
    agree = []
    for img in images:
        f = np.argmax(model(to_float(img, tiny_spec)[None]).numpy()[0], -1)
        q = np.argmax(seg.infer(img), -1)
        agree.append((f == q).mean())
    assert np.mean(agree) > 0.97
    # and the tiny model has learnt something: better than always answering "below"
    q_all = np.stack([np.argmax(seg.infer(i), -1) for i in images])
    assert (q_all == labels).mean() > (labels == 2).mean()


def test_too_small_calibration_set_is_refused(tiny_model_path, tiny_spec, tmp_path):
    model = load_keras_model(tiny_model_path)
    with pytest.raises(QuantizeError, match="at least"):
        convert_int8(model, phantom_batch(range(3), tiny_spec)[0], tiny_spec)


def test_missing_or_bad_model_file_is_a_clear_error(tmp_path):
    with pytest.raises(QuantizeError, match="no model"):
        load_keras_model(tmp_path / "absent.keras")
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"not a zip")
    with pytest.raises(QuantizeError, match="cannot load"):
        load_keras_model(bad)


def test_quantize_cli_writes_a_bundle(tiny_model_path, tmp_path):
    from convert.cli import main
    from edge.bundle import load_bundle

    out = tmp_path / "b"
    assert main(["quantize", str(tiny_model_path), "--calib", "phantom", "--calib-n", "12", "--out", str(out)]) == 0
    assert load_bundle(out).manifest["calibration"]["images"] == 12
