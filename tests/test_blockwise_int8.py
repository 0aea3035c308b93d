"""The int8 graph's transposed convolutions of kernel = stride as a 1x1 convolution and a
depth-to-space (convert.blockwise): the same int8 outputs, in real TFLite conversions of small
models; what it leaves alone; the check that keeps a model as converted; `tlf-convert quantize`
doing it by default and `tlf-convert rewrite` doing it to a bundle in place."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")
sys.path.insert(0, str(Path(__file__).parent))

import keras  # noqa: E402
from conftest import small_field_set  # noqa: E402

from convert import blockwise  # noqa: E402
from convert.blockwise import (  # noqa: E402
    blockwise_transpose_convs,
    check_inputs,
    differing_outputs,
    faster_int8_graph,
)
from convert.peak import int8_tflite  # noqa: E402
from edge.model.segmenter import interpreter_class  # noqa: E402


def op_names(model_bytes: bytes) -> list[str]:
    """The graph's own ops, in order (without the default delegate)."""
    cls, _ = interpreter_class()
    resolver = sys.modules[cls.__module__].OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interp = cls(model_content=model_bytes, experimental_op_resolver_type=resolver)
    return [op["op_name"] for op in interp._get_ops_details()]


def _model(up: keras.layers.Layer, side: int = 12, channels: int = 3, seed: int = 0) -> bytes:
    keras.utils.set_random_seed(seed)
    x = keras.Input((side, side, 1), batch_size=1)
    a = keras.layers.Conv2D(channels, 3, padding="same", activation="relu")(x)
    down = keras.layers.MaxPooling2D()(a)
    return int8_tflite(keras.Model(x, keras.layers.Conv2D(2, 1)(up(down))))


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("activation,use_bias", [(None, True), ("relu", True), (None, False)])
def test_the_rewritten_graph_gives_the_same_int8_outputs(k, padding, activation, use_bias):
    side = 12 if k == 2 else 18
    up = keras.layers.Conv2DTranspose(5, k, strides=k, padding=padding, activation=activation, use_bias=use_bias)
    converted = _model(up, side)
    assert op_names(converted).count("TRANSPOSE_CONV") == 1
    rewritten, count = blockwise_transpose_convs(converted)
    assert count == 1
    ops = op_names(rewritten)
    assert "TRANSPOSE_CONV" not in ops and ops.count("DEPTH_TO_SPACE") == 1
    at = ops.index("DEPTH_TO_SPACE")
    assert ops[at - 1] == "CONV_2D"  # the 1x1 convolution feeds it
    inputs = check_inputs(converted)
    assert len(inputs) == 6 and inputs[-2].min() == -128 and inputs[-1].max() == 127
    for threads in (1, 2):
        assert differing_outputs(converted, rewritten, inputs, threads) == (0, 6)
    # and it is not the identity of a model with any other weights: the check can tell them apart
    other = _model(
        keras.layers.Conv2DTranspose(5, k, strides=k, padding=padding, activation=activation, use_bias=use_bias),
        side,
        seed=1,
    )
    assert differing_outputs(converted, other, inputs)[0] > 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kernel_size": 3, "strides": 2, "padding": "same"},  # overlapping blocks
        {"kernel_size": 2, "strides": 1, "padding": "same"},  # no upsampling
    ],
)
def test_other_transposed_convolutions_stay(kwargs):
    converted = _model(keras.layers.Conv2DTranspose(4, **kwargs))
    assert "TRANSPOSE_CONV" in op_names(converted)
    assert blockwise_transpose_convs(converted) == (converted, 0)
    r = faster_int8_graph(converted)
    assert r.model_bytes is converted and r.rewritten == 0 and r.note == ""


def test_a_graph_without_transposed_convolutions_is_returned_as_it_came():
    converted = _model(keras.layers.UpSampling2D(2, interpolation="bilinear"))
    assert blockwise_transpose_convs(converted) == (converted, 0)


def test_a_rewrite_whose_outputs_differ_is_not_kept(monkeypatch):
    converted = _model(keras.layers.Conv2DTranspose(4, 2, strides=2, padding="same"))
    other = _model(keras.layers.Conv2DTranspose(4, 2, strides=2, padding="same"), seed=5)  # same graph, other weights
    monkeypatch.setattr(blockwise, "blockwise_transpose_convs", lambda model_bytes: (other, 1))
    r = faster_int8_graph(converted)
    assert r.model_bytes is converted and r.rewritten == 0 and r.checked_inputs == 6
    assert "kept" in r.note and "differed here on" in r.note


def _tiny_unet_bundle(tmp_path: Path):
    from convert.quantize import quantize_to_bundle
    from convert.unet import build_unet
    from edge.model.preprocess import PreprocessSpec

    keras.utils.set_random_seed(3)
    model = build_unet(input_size=64, base_filters=4, depth=2)
    images = small_field_set(12, seed=7)[0]
    spec = PreprocessSpec(64, 64, 1)
    bundle = quantize_to_bundle(model, images, spec, tmp_path / "b", check_prediction=False, check_preprocessing=False)
    return model, images, spec, bundle


def test_quantize_rewrites_by_default_and_records_it(tmp_path, capsys):
    from convert.quantize import convert_int8
    from edge.frame import Frame
    from edge.model.preprocess import to_float
    from edge.model.segmenter import Segmenter

    model, images, spec, bundle = _tiny_unet_bundle(tmp_path)
    m = bundle.manifest
    assert "TRANSPOSE_CONV" not in m["ops"] and "DEPTH_TO_SPACE" in m["ops"] and m["delegate_partitions"] == 1
    assert m["export"] == {"transpose_as_depth_to_space": False, "transpose_conv_blockwise": 2}
    assert any(
        "2 TRANSPOSE_CONV op(s)" in n and "same int8 outputs on all 14 inputs" in n for n in m["conversion_notes"]
    )
    assert "TRANSPOSE_CONV" not in capsys.readouterr().err  # recorded, not said: nothing went otherwise
    # the same integers as the converter's own graph on the calibration images
    converted = convert_int8(model, images, spec)
    assert "TRANSPOSE_CONV" in op_names(converted)
    assert differing_outputs(converted, bundle.model_path.read_bytes(), check_inputs(converted, images, spec)) == (
        0,
        18,
    )
    seg = Segmenter(bundle, 1)
    want = np.argmax(model.predict(np.stack([to_float(im, spec) for im in images]), verbose=0), axis=-1)
    got = np.stack([seg.segment(Frame(im[..., 0], 0.0, i)).labels for i, im in enumerate(images)])
    assert float((got == want).mean()) > 0.9


def test_tlf_convert_rewrite_makes_an_older_bundle_faster_in_place(tmp_path, capsys, monkeypatch):
    from convert.cli import main
    from convert.quantize import convert_int8
    from edge.model.bundle import load_bundle, write_bundle

    model, images, spec, made = _tiny_unet_bundle(tmp_path)
    converted = convert_int8(model, images, spec)
    # a bundle as quantize wrote it before the rewrite: the converter's graph, its manifest without the entry
    old = {
        k: v
        for k, v in made.manifest.items()
        if k not in ("schema", "model_file", "sha256", "manifest_sha256", "conversion_notes")
    }
    old.update(ops=sorted(set(op_names(converted))), export={"transpose_as_depth_to_space": False})
    before = write_bundle(tmp_path / "old", converted, old)
    assert "TRANSPOSE_CONV" in before.manifest["ops"]
    capsys.readouterr()
    assert main(["rewrite", str(before.path)]) == 0
    out = capsys.readouterr().out
    assert "2 TRANSPOSE_CONV op(s)" in out and "ms before" in out and "ms now" in out
    after = load_bundle(before.path)
    assert after.sha256 != before.sha256 and "TRANSPOSE_CONV" not in after.manifest["ops"]
    assert after.manifest["export"] == {"transpose_as_depth_to_space": False, "transpose_conv_blockwise": 2}
    for key in ("domain", "validation", "training", "calibration", "input", "output"):
        assert after.manifest.get(key) == before.manifest.get(key)
    assert differing_outputs(converted, after.model_path.read_bytes(), check_inputs(converted, images, spec))[0] == 0
    assert sorted(p.name for p in after.path.iterdir()) == sorted(p.name for p in before.path.iterdir())
    # a second run has nothing to do
    assert main(["rewrite", str(before.path)]) == 0
    assert "unchanged" in capsys.readouterr().out

    # stopped between its two renames (the model renamed, the manifest not): the next run completes it
    again = tmp_path / "again"
    shutil.copytree(tmp_path / "old", again)
    write_bundle(again, converted, old)  # back to the converter's graph
    real_replace, calls = os.replace, []

    def stop_at_the_manifest(src, dst):
        calls.append(Path(dst).name)
        if Path(dst).name == "manifest.json":
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", stop_at_the_manifest)
    assert main(["rewrite", str(again)]) == 130
    monkeypatch.setattr(os, "replace", real_replace)
    assert calls == ["model.tflite", "manifest.json"]
    assert main(["rewrite", str(again)]) == 0  # the manifest put in place, then nothing left to rewrite
    assert "unchanged" in capsys.readouterr().out
    assert load_bundle(again).manifest["export"]["transpose_conv_blockwise"] == 2
    assert not (again / ".rewrite.part").exists()


def test_tlf_convert_rewrite_refuses_a_damaged_bundle_in_one_line(tmp_path, capsys):
    from convert.cli import main

    _, _, _, bundle = _tiny_unet_bundle(tmp_path)
    manifest = json.loads((bundle.path / "manifest.json").read_text())
    manifest["tlf_class"] = 0
    (bundle.path / "manifest.json").write_text(json.dumps(manifest))
    capsys.readouterr()
    assert main(["rewrite", str(bundle.path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tlf-convert: error: ")


def test_the_demo_bundle_runs_the_rewritten_graph():
    from edge.model.bundle import DEMO_BUNDLE, load_bundle

    bundle = load_bundle(DEMO_BUNDLE)
    ops = op_names(bundle.model_path.read_bytes())
    assert "TRANSPOSE_CONV" not in ops and ops.count("DEPTH_TO_SPACE") == 4
    assert bundle.manifest["export"]["transpose_conv_blockwise"] == 4 and sorted(set(ops)) == bundle.manifest["ops"]
    assert blockwise_transpose_convs(bundle.model_path.read_bytes())[1] == 0
