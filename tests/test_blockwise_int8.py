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


def test_one_output_channel_without_bias_is_rewritten_on_one_scale():
    converted = _model(keras.layers.Conv2DTranspose(1, 2, strides=2, padding="same", use_bias=False))
    rewritten, count = blockwise_transpose_convs(converted)
    assert count == 1 and "TRANSPOSE_CONV" not in op_names(rewritten)
    assert differing_outputs(converted, rewritten, check_inputs(converted)) == (0, 6)
    assert faster_int8_graph(converted).rewritten == 1


def test_a_kernel_two_ops_share_is_copied_for_each_not_edited_under_the_other():
    from ai_edge_litert import schema_py_generated as fb

    keras.utils.set_random_seed(0)
    x = keras.Input((8, 8, 1), batch_size=1)
    a = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    first, second = (keras.layers.Conv2DTranspose(4, 2, strides=2, padding="same") for _ in range(2))
    out = keras.layers.Conv2D(2, 1)(second(first(a)))
    second.set_weights(first.get_weights())  # the same kernel: its int8 codes are the same
    converted = int8_tflite(keras.Model(x, out))
    model = fb.ModelT.InitFromPackedBuf(converted, 0)
    graph = model.subgraphs[0]
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    ups = [op for op in graph.operators if codes[op.opcodeIndex] == fb.BuiltinOperator.TRANSPOSE_CONV]
    assert len(ups) == 2 and ups[0].inputs[1] == ups[1].inputs[1]  # the exporter gave both one kernel tensor
    shared = converted
    rewritten, count = blockwise_transpose_convs(shared)
    assert count == 2
    assert differing_outputs(shared, rewritten, check_inputs(shared)) == (0, 6)
    after = fb.ModelT.InitFromPackedBuf(rewritten, 0)
    tensors = after.subgraphs[0].tensors
    ones = [t for t in tensors if t.type == fb.TensorType.INT8 and list(t.shape) == [16, 1, 1, 4]]
    assert len(ones) == 2 and ones[0].buffer != ones[1].buffer  # each 1x1 kernel in a buffer of its own
    # the transposed kernel is reordered once for each: both hold the same reordered codes
    assert bytes(after.buffers[ones[0].buffer].data) == bytes(after.buffers[ones[1].buffer].data)


def test_a_graph_without_transposed_convolutions_is_returned_as_it_came():
    converted = _model(keras.layers.UpSampling2D(2, interpolation="bilinear"))
    assert blockwise_transpose_convs(converted) == (converted, 0)


def test_a_rewrite_whose_outputs_differ_is_not_kept(monkeypatch):
    converted = _model(keras.layers.Conv2DTranspose(4, 2, strides=2, padding="same"))
    other = _model(keras.layers.Conv2DTranspose(4, 2, strides=2, padding="same"), seed=5)  # same graph, other weights
    monkeypatch.setattr(blockwise, "blockwise_transpose_convs", lambda model_bytes: (other, 1))
    r = faster_int8_graph(converted)
    assert r.model_bytes is converted and r.rewritten == 0 and r.checked_inputs == 6
    assert "kept as converted" in r.note and "differed on 6 of 6 inputs" in r.note and "ai-edge-litert" in r.note


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
    from edge.ops import doctor

    hint = doctor.check_bundle(str(before.path))
    assert hint.ok and "`tlf-convert rewrite`" in hint.detail  # the cart's doctor says what would help
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
    assert "`tlf-convert rewrite`" not in doctor.check_bundle(str(before.path)).detail
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

    # stopped before the first rename: the bundle is as it was, and the next run rewrites it
    third = tmp_path / "third"
    shutil.copytree(tmp_path / "old", third)
    kept = write_bundle(third, converted, old)

    def stop_at_the_model(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", stop_at_the_model)
    assert main(["rewrite", str(third)]) == 130
    monkeypatch.setattr(os, "replace", real_replace)
    assert load_bundle(third).sha256 == kept.sha256 and (third / ".rewrite.part" / "manifest.json").is_file()
    assert main(["rewrite", str(third)]) == 0  # that staged manifest names another model: dropped
    assert load_bundle(third).manifest["export"]["transpose_conv_blockwise"] == 2
    assert not (third / ".rewrite.part").exists()


def test_tlf_convert_rewrite_refuses_a_damaged_bundle_and_bad_options_in_one_line(tmp_path, capsys):
    from convert.cli import main

    _, _, _, bundle = _tiny_unet_bundle(tmp_path)
    capsys.readouterr()
    assert main(["rewrite", str(bundle.path), "--n", "0"]) == 2
    assert capsys.readouterr().err == "tlf-convert: error: --n must be at least 1, not 0\n"
    manifest = json.loads((bundle.path / "manifest.json").read_text())
    manifest["tlf_class"] = 0
    (bundle.path / "manifest.json").write_text(json.dumps(manifest))
    capsys.readouterr()
    assert main(["rewrite", str(bundle.path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tlf-convert: error: ")



def test_quantize_says_when_transposed_convolutions_stay(tmp_path, capsys):
    from convert.quantize import quantize_to_bundle
    from edge.model.preprocess import PreprocessSpec

    keras.utils.set_random_seed(0)
    x = keras.Input((64, 64, 1))
    a = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    up = keras.layers.Conv2DTranspose(4, 3, strides=2, padding="same")(keras.layers.MaxPooling2D()(a))
    model = keras.Model(x, keras.layers.Conv2D(3, 1)(keras.layers.Concatenate()([a, up])))
    images = small_field_set(10, seed=2)[0]
    bundle = quantize_to_bundle(model, images, PreprocessSpec(64, 64, 1), tmp_path / "b", check_prediction=False,
                                check_preprocessing=False)
    assert "TRANSPOSE_CONV" in bundle.manifest["ops"] and bundle.manifest["export"]["transpose_conv_blockwise"] == 0
    assert any("1 TRANSPOSE_CONV op(s) stay" in n for n in bundle.manifest["conversion_notes"])
    assert "tlf-convert: note: 1 TRANSPOSE_CONV op(s) stay" in capsys.readouterr().err
