"""Validation (convert) and the bench measure a bundle's int8 output exactly as the runtime does
(issue #4): a softmax bundle on log-probabilities, on the float side too, and the true masks of
any class count with that class count.

The softmax bundle is the shared tiny U-Net (conftest: trained for a few seconds on small-field
phantom scans, where its bands are measurable) rebuilt by convert.unet with a softmax output
around the same weights and converted by the real int8 path. Log-probability differences are
logit differences, so its float thickness is the logits model's. Measured on raw probabilities
instead, every float frame fails the margin rule and the int8 thickness moves by up to 0.06 mm
(a model pixel here is 0.25 mm); every test but the first fails on the code before the fix.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("tensorflow")
import keras  # noqa: E402
from keras import layers  # noqa: E402

from conftest import small_field_set  # noqa: E402
from convert.quantize import load_keras_model, quantize_to_bundle  # noqa: E402
from convert.unet import build_unet  # noqa: E402
from convert.validate import compare, gate  # noqa: E402
from edge.ops.bench import accuracy_pass, stage_pass  # noqa: E402
from edge.data.dataset import LabelledFrame, labelled_frames, phantom_dataset_config, write_dataset  # noqa: E402
from edge.frame import Frame  # noqa: E402
from edge.runtime.chain import measure  # noqa: E402
from edge.model.preprocess import to_float  # noqa: E402
from edge.model.segmenter import Segmenter  # noqa: E402
from edge.sinks.base import Sink  # noqa: E402
from edge.measure.thickness import ThicknessOptions, measure_thickness  # noqa: E402


@pytest.fixture(scope="module")
def logits_model(tiny_model_path):
    return load_keras_model(tiny_model_path)


@pytest.fixture(scope="module")
def softmax_model(logits_model, tiny_model_path, tiny_spec):
    """The tiny model's weights in convert.unet's softmax-output U-Net of the same shape."""
    o = json.loads((tiny_model_path.parent / "train.json").read_text())["options"]
    model = build_unet(input_size=tiny_spec.height, channels=tiny_spec.channels, classes=o["classes"],
                       base_filters=o["base_filters"], depth=o["depth"], batch_size=None, output="softmax")
    model.set_weights(logits_model.get_weights())
    return model


@pytest.fixture(scope="module")
def softmax_bundle(softmax_model, tiny_spec, tmp_path_factory):
    calib = small_field_set(32, seed=5)[0]
    return quantize_to_bundle(softmax_model, calib, tiny_spec, tmp_path_factory.mktemp("softmax_bundle"))


@pytest.fixture(scope="module")
def report(softmax_bundle, softmax_model, tiny_val):
    return compare(softmax_bundle, softmax_model, *tiny_val)


def runtime_thickness(segmenter: Segmenter, image: np.ndarray, spacing, seq: int = 0) -> float:
    """What the runtime measures on one frame: Segmenter.segment, then the pipeline's measure."""
    frame = Frame(image[..., 0] if image.ndim == 3 else image, 0.0, seq, spacing)
    return measure(segmenter.segment(frame), ThicknessOptions(), segmenter.bundle.tlf_class).thickness


def test_the_bundle_outputs_int8_probabilities_scored_as_log_probabilities(softmax_bundle):
    seg = Segmenter(softmax_bundle, 1)
    assert softmax_bundle.output_kind == "softmax" and softmax_bundle.manifest["output"]["dtype"] == "int8"
    assert seg.logit_scale == 1.0


def test_validate_measures_float_and_int8_on_the_same_frames_with_a_small_bias(report):
    f = np.asarray(report["frames"]["thickness_float"])
    q = np.asarray(report["frames"]["thickness_int8"])
    assert np.array_equal(np.isnan(f), np.isnan(q))
    measured = int((~np.isnan(f)).sum())
    assert measured >= 12  # of 16
    vs = report["thickness"]["int8_vs_float"]
    assert vs["n"] == measured
    assert abs(vs["bias"]) < 0.01 and vs["mae"] < 0.025  # mm (0.002 and 0.013 when written)
    assert report["int8"]["mean_iou"] > 0.9 and gate(report) == []


def test_validate_float_thickness_is_the_logits_models(report, logits_model, tiny_val, softmax_bundle):
    """Log-softmax and logits differ per pixel by a constant, which edges and margins cancel."""
    images, _, spacings = tiny_val
    want = []
    for img, sp in zip(images, spacings):
        z = np.asarray(logits_model(to_float(img, softmax_bundle.spec)[None], training=False))[0]
        want.append(measure_thickness(np.argmax(z, -1).astype(np.uint8), z, sp, tlf=softmax_bundle.tlf_class).value)
    got = np.asarray(report["frames"]["thickness_float"])
    assert np.allclose(got, want, rtol=0, atol=1e-4, equal_nan=True)


def test_validate_int8_thickness_is_the_runtimes(report, softmax_bundle, tiny_val):
    images, _, spacings = tiny_val
    seg = Segmenter(softmax_bundle, 2)  # compare's thread count
    want = [runtime_thickness(seg, img, sp) for img, sp in zip(images, spacings)]
    assert np.array_equal(report["frames"]["thickness_int8"], want, equal_nan=True)


def test_bench_accuracy_pass_measures_a_softmax_bundle_as_the_runtime(softmax_bundle, tiny_val, tmp_path):
    images, labels, spacings = tiny_val
    write_dataset(tmp_path, [i[..., 0] for i in images], labels, phantom_dataset_config(spacing_mm=spacings[0]))
    frames = list(labelled_frames(tmp_path))
    seg = Segmenter(softmax_bundle, 1)
    device = np.asarray([runtime_thickness(seg, f.image, f.spacing_mm) for f in frames])
    truth = np.asarray([measure_thickness(f.labels, None, f.spacing_mm, tlf=softmax_bundle.tlf_class).value
                        for f in frames])
    pooled = accuracy_pass(seg, frames, "tiny")["thickness"]
    assert pooled["unit"] == "mm" and pooled["device_rejected"] == int(np.isnan(device).sum())
    assert pooled["vs_mask"]["n"] == int((~np.isnan(device - truth)).sum()) >= 12
    # Frame by frame: a one-image pass's bias is that image's device thickness minus the mask's.
    for f, d, t in zip(frames, device, truth):
        vs = accuracy_pass(seg, [f], f.stem)["thickness"]["vs_mask"]
        if np.isnan(d - t):
            assert vs["n"] == 0
        else:
            assert vs["bias"] == pytest.approx(d - t, abs=1e-4), f.stem


class _Keep(Sink):
    name = "keep"

    def __init__(self):
        self.got = []

    def write(self, measurement, segmentation):
        self.got.append((measurement, segmentation))


def test_bench_stage_pass_gives_the_sinks_the_runtimes_segmentation(softmax_bundle):
    seg, keep = Segmenter(softmax_bundle, 1), _Keep()
    stage_pass(seg, "phantom://clip?seed=3&frames=3&size=64x64", 3, [keep])
    assert len(keep.got) == 3
    for m, s in keep.got:
        want = seg.segment(s.frame)
        assert s.logits.dtype == np.float32 and np.array_equal(s.logits, want.logits)
        assert np.array_equal(s.labels, want.labels) and s.logit_scale == want.logit_scale == 1.0
        assert np.array_equal(m.thickness, measure(want, ThicknessOptions(), softmax_bundle.tlf_class).thickness,
                              equal_nan=True)


def test_true_masks_of_five_classes_are_measured_with_five(tiny_spec, tiny_val, tmp_path):
    """Classes 2-4 all lie below the band: measured as a three-class mask, 3 and 4 were out of
    order and no true thickness was measured, in validation nor in the bench."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((tiny_spec.height, tiny_spec.width, 1))
    model = keras.Model(inp, layers.Conv2D(5, 1)(layers.Conv2D(4, 3, padding="same", activation="relu")(inp)))
    bundle = quantize_to_bundle(model, small_field_set(16, seed=5)[0], tiny_spec, tmp_path / "b", check_prediction=False)
    images, labels, spacings = (v[:4] for v in tiny_val)
    rows = np.arange(labels.shape[1])[None, :, None]
    labels5 = np.where((labels == 2) & (rows >= 44), 3 + (rows >= 54), labels).astype(np.uint8)
    assert set(np.unique(labels5)) == {0, 1, 2, 3, 4}
    want = [measure_thickness(lab, None, sp).value for lab, sp in zip(labels, spacings)]  # the band is the same
    assert not np.isnan(want).any()
    report = compare(bundle, model, images, labels5, spacings)
    assert np.allclose(report["frames"]["thickness_truth"], want)
    frames = [LabelledFrame(str(i), img[..., 0], lab, sp) for i, (img, lab, sp) in enumerate(zip(images, labels5, spacings))]
    assert accuracy_pass(Segmenter(bundle, 1), frames, "five")["thickness"]["truth_unmeasurable"] == 0
