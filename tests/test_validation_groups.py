"""The validation report per group of images (the demo bundle's held-out set: one group per preset)."""

from __future__ import annotations

import numpy as np
import pytest



def test_compare_gives_each_group_its_own_scores_and_thickness(tiny_bundle, tiny_model_path, tiny_val):
    from convert.quantize import load_keras_model
    from convert.report import markdown
    from convert.validate import compare
    from edge.measure.metrics import scores

    images, labels, spacings = tiny_val
    groups = ["a" if i % 3 else "b" for i in range(len(images))]
    report = compare(tiny_bundle, load_keras_model(tiny_model_path), images, labels, spacings, groups=groups)
    assert sorted(report["groups"]) == ["a", "b"]
    sel = np.array(groups) == "b"
    b = report["groups"]["b"]
    assert b["images"] == int(sel.sum())
    expected = scores(labels[sel], report["frames"]["int8_pred"][sel], len(tiny_bundle.classes))
    assert b["int8_mean_iou"] == pytest.approx(expected["mean_iou"], abs=1e-4)
    q, t = (np.asarray(report["frames"][k])[sel] for k in ("thickness_int8", "thickness_truth"))
    ok = ~(np.isnan(q) | np.isnan(t))
    assert b["int8_vs_truth"]["n"] == int(ok.sum())
    if ok.any():
        assert b["int8_vs_truth"]["mae"] == pytest.approx(float(np.abs(q[ok] - t[ok]).mean()), abs=1e-4)
    text = markdown({**{k: v for k, v in report.items() if k != "frames"}, "gate": {"passed": True, "failures": []}})
    assert "| int8 by group |" in text and "\n| b | " in text


def test_phantom_validation_set_cycles_the_presets_on_held_out_seeds():
    from convert.inputs import phantom_validation_set
    from edge.sim.recipes import PHANTOM_DATA_SEEDS
    from convert.data import phantom_sample
    from edge.sim import phantom
    from edge.model.preprocess import PreprocessSpec

    spec = PreprocessSpec(height=64, width=64)
    n = len(phantom.PRESETS) + 1
    images, labels, spacings, looks = phantom_validation_set(n, spec)
    assert looks[: len(phantom.PRESETS)] == sorted(phantom.PRESETS) and looks[-1] == looks[0]
    img, lab, _ = phantom_sample(PHANTOM_DATA_SEEDS + 3, spec, phantom.PRESETS[looks[3]])
    assert np.array_equal(images[3], img) and np.array_equal(labels[3], lab)
    assert len(spacings) == n and all(s[0] > 0 for s in spacings)


def test_phantom_data_on_the_device_is_convert_s_validation_set():
    """'phantom[:N]' (tlf-edge bench --data, edge.data.dataset) holds the same held-out scenes, in the same
    looks, as tlf-convert's validation set: on-device accuracy and the gate score the same images."""
    from convert.inputs import phantom_validation_set
    from edge.ops.bench import labelled_data
    from edge.model.preprocess import PreprocessSpec, resize_labels, to_model_image

    spec = PreprocessSpec(height=64, width=64)
    n = 4
    images, labels, _, looks = phantom_validation_set(n, spec)
    frames = list(labelled_data(f"phantom:{n}"))
    assert len(frames) == n
    for i, f in enumerate(frames):
        assert f.stem.endswith(f"-{looks[i]}")
        assert np.array_equal(to_model_image(f.image, spec), images[i])
        assert np.array_equal(resize_labels(f.labels, spec), labels[i])
