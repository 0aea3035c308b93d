"""A bundle's thickness response (edge.measure.thickness.ThicknessResponse): its inverse, its fit, its
place in the manifest, and its use by the device's measurement."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.model.bundle import DEMO_BUNDLE, load_bundle, write_manifest
from edge.errors import BundleError
from edge.frame import Frame
from edge.measure.thickness import (ThicknessResponse, band_edges, band_layering, fit_thickness_response,
                            measure_thickness)

CAL = ThicknessResponse(a=2.0, b=1.04, c=-7.7, d=-0.9, s_range=(0.117, 0.195), fitted_on="test")
LAYERED = ThicknessResponse(a=1.0, b=0.97, c=-8.6, d=-0.1, s_range=(0.117, 0.195), fitted_on="test", e=17.7)


def forward(cal, true, s, layering=0.0):
    return cal.a + cal.b * true + cal.c * s + cal.d * true * s + cal.e * layering


@given(true=st.floats(2.0, 40.0), s=st.floats(0.117, 0.195))
def test_correct_inverts_the_response_inside_the_fitted_range(true, s):
    assert CAL.correct(np.array([forward(CAL, true, s)]), s)[0] == pytest.approx(true, abs=1e-9)


@given(true=st.floats(2.0, 40.0), s=st.floats(0.117, 0.195), layering=st.floats(0.0, 0.08))
def test_correct_inverts_a_response_with_a_layering_term(true, s, layering):
    measured = forward(LAYERED, true, s, layering)
    assert LAYERED.correct(np.array([measured]), s, layering)[0] == pytest.approx(true, abs=1e-9)


def test_the_layering_term_travels_through_the_manifest_and_an_older_response_has_none():
    assert ThicknessResponse.from_dict(LAYERED.to_dict()) == LAYERED
    older = {k: v for k, v in CAL.to_dict().items() if k != "e"}
    assert ThicknessResponse.from_dict(older).e == 0.0


def test_pixel_sizes_outside_the_fitted_range_use_its_nearest_end():
    m = np.array([12.0])
    assert CAL.correct(m, 0.30)[0] == CAL.correct(m, 0.195)[0]
    assert CAL.correct(m, 0.05)[0] == CAL.correct(m, 0.117)[0]


def test_a_band_under_the_responses_intercept_is_corrected_to_zero_not_below():
    assert CAL.correct(np.array([0.5, np.nan]), 0.117).tolist()[0] == 0.0
    assert np.isnan(CAL.correct(np.array([0.5, np.nan]), 0.117)[1])  # unmeasured columns stay unmeasured


def test_the_fit_recovers_a_known_response_from_noisy_points():
    rng = np.random.default_rng(0)
    true = rng.uniform(3, 25, 3000)
    s = rng.uniform(0.117, 0.195, 3000)
    measured = forward(CAL, true, s) + rng.normal(0, 0.5, true.size)
    measured[::50] = np.nan  # unmeasured images are left out
    fit = fit_thickness_response(measured, true, s, fitted_on="synthetic")
    # c and d trade off against each other; the response they describe is what must come back.
    t, sg = np.meshgrid(np.linspace(3, 25, 12), np.linspace(0.117, 0.195, 6))
    assert np.abs(forward(fit, t, sg) - forward(CAL, t, sg)).max() < 0.1  # model rows
    assert fit.s_range[0] == pytest.approx(0.117, abs=1e-3) and fit.s_range[1] == pytest.approx(0.195, abs=1e-3)
    assert fit.fitted_on == "synthetic"
    with pytest.raises(ValueError, match="at least 8"):
        fit_thickness_response(measured[:5], true[:5], s[:5])


def test_the_fit_recovers_the_layering_term():
    rng = np.random.default_rng(1)
    true = rng.uniform(3, 25, 3000)
    s = rng.uniform(0.117, 0.195, 3000)
    layering = rng.uniform(0.005, 0.05, 3000)
    measured = forward(LAYERED, true, s, layering) + rng.normal(0, 0.3, true.size)
    fit = fit_thickness_response(measured, true, s, layering=layering)
    assert fit.e == pytest.approx(LAYERED.e, rel=0.05)
    assert fit_thickness_response(measured, true, s).e == 0.0  # without layering: the older form


def speckle_band(profile_of_u, seed=0, h=120, w=160, top=50.3, height=14.6):
    """A grey image (log-compressed speckle: grey levels with 12 levels of noise) with a band whose
    brightness follows profile_of_u(u), u from 0 at its top edge to 1 at its bottom edge, and its
    label map."""
    rng = np.random.default_rng(seed)
    rows = np.arange(h)[:, None] + 0.5
    u = (rows - top) / height
    inside = (u >= 0) & (u < 1)
    grey = np.where(inside, 200.0 * profile_of_u(np.clip(u, 0, 1)), 60.0) + rng.normal(0.0, 12.0, (h, w))
    labels = np.where(rows < top, 0, np.where(rows < top + height, 1, 2)).astype(np.uint8) * np.ones((1, w), np.uint8)
    return np.clip(grey, 0, 255).astype(np.uint8), labels


def test_band_layering_tells_bright_sublayers_from_a_uniform_band():
    def uniform(u):
        return np.ones_like(u)

    def three_sublayers(u):  # the phantom's bright sublayers with darker lines between them
        return 0.82 + 0.18 * np.cos(np.pi * 3 * u) ** 2

    win = slice(40, 120)
    values = {}
    for name, f in (("uniform", uniform), ("layered", three_sublayers)):
        image, labels = speckle_band(f)
        values[name] = band_layering(image, band_edges(labels), win)
    assert values["uniform"] < 0.02 < values["layered"] < 0.08
    colour = np.repeat(image[..., None], 3, axis=2)  # a three-channel model input: the same grey profile
    assert band_layering(colour, band_edges(labels), win) == pytest.approx(values["layered"], rel=1e-6)
    image, labels = speckle_band(uniform)
    assert np.isnan(band_layering(image, band_edges(np.zeros_like(labels)), win))  # no band: nothing to say


def test_a_response_with_a_layering_term_needs_the_model_image():
    image, labels = speckle_band(lambda u: np.ones_like(u))
    with pytest.raises(ValueError, match="model image"):
        measure_thickness(labels, None, (0.15, 0.15), response=LAYERED)
    with_image = measure_thickness(labels, None, (0.15, 0.15), response=LAYERED, image=image).value
    layering = band_layering(image, band_edges(labels), slice(40, 120))
    assert with_image == pytest.approx(LAYERED.correct(np.array([15.0]), 0.15, layering)[0] * 0.15, rel=1e-6)


@pytest.mark.parametrize("bad, message", [
    ({"a": 0, "b": 1, "c": 0, "d": 0}, "lacks"),
    ({"a": 0, "b": 0.2, "c": 0, "d": 0, "s_range": [0.1, 0.2]}, "slope"),
    ({"a": "x", "b": 1, "c": 0, "d": 0, "s_range": [0.1, 0.2]}, "thickness response"),
    ({"a": 0, "b": 1, "c": 0, "d": 0, "s_range": [0.2, 0.1]}, "s_range"),
    ({"a": float("nan"), "b": 1, "c": 0, "d": 0, "s_range": [0.1, 0.2]}, "finite"),
    ([1, 2], "object"),
    ({"a": 10**400, "b": 1, "c": 0, "d": 0, "s_range": [0.1, 0.2]}, "thickness response"),
])
def test_a_malformed_calibration_in_a_manifest_is_refused_in_one_line(tmp_path, bad, message):
    dst = tmp_path / "bundle"
    shutil.copytree(DEMO_BUNDLE, dst)
    m = json.loads((dst / "manifest.json").read_text())
    m["thickness_calibration"] = bad
    write_manifest(dst, m)
    with pytest.raises(BundleError, match=message) as e:
        load_bundle(dst)
    assert "\n" not in str(e.value)


def band(top=40, height=12, h=100, w=120):
    labels = np.zeros((h, w), np.uint8)
    labels[top : top + height] = 1
    labels[top + height :] = 2
    return labels


def test_measurement_inverts_the_response_in_mm_and_leaves_pixels_alone():
    labels = band(height=12)
    s = 0.16
    value = measure_thickness(labels, None, (s, s), response=CAL).value
    assert value == pytest.approx(CAL.correct(np.array([12.0]), s)[0] * s, rel=1e-6)
    assert value != pytest.approx(12 * s, abs=0.01)
    px = measure_thickness(labels, None, None, response=CAL)  # no scale: no calibration either
    assert px.unit == "px" and px.value == pytest.approx(12.0)


def test_the_device_measures_with_the_bundles_calibration():
    from edge.sim import phantom
    from edge.runtime.chain import measure
    from edge.model.segmenter import Segmenter
    from edge.measure.thickness import ThicknessOptions

    bundle = load_bundle(DEMO_BUNDLE)
    assert bundle.thickness_response is not None  # the demo bundle carries its phantom response
    seg = Segmenter(bundle, 1)
    scan = phantom.scan(3, (256, 256), "default", field_mm=(50.0, 40.0))
    s = seg.segment(Frame(scan.image, 0.0, 0, scan.spacing_mm))
    assert s.response == bundle.thickness_response
    device = measure(s, ThicknessOptions()).thickness
    kw = dict(logit_scale=s.logit_scale, tlf=bundle.tlf_class)
    with_image = measure_thickness(s.labels, s.logits, s.spacing_mm, response=s.response, image=s.image, **kw)
    assert device == with_image.value
    assert device != measure_thickness(s.labels, s.logits, s.spacing_mm, **kw).value
    assert bundle.thickness_response.e != 0  # the demo's response has the layering term: it needs the image
    with pytest.raises(ValueError, match="model image"):
        measure_thickness(s.labels, s.logits, s.spacing_mm, response=s.response, **kw)


@pytest.mark.parametrize("images, fitted_on", [("screens", "of 40 phantom scanner screens"),
                                               ("scans", "of 40 phantom scans")])
def test_thickness_response_fits_a_bundle_and_records_it_in_the_manifest(tmp_path, capsys, images, fitted_on):
    from convert.cli import main

    dst = tmp_path / "bundle"
    shutil.copytree(DEMO_BUNDLE, dst)
    m = json.loads((dst / "manifest.json").read_text())
    del m["thickness_calibration"]
    write_manifest(dst, m)
    assert load_bundle(dst).thickness_response is None
    assert main(["thickness-response", str(dst), "--n", "40", "--images", images]) == 0
    out = capsys.readouterr().out
    cal = load_bundle(dst).thickness_response
    recorded = load_bundle(dst).manifest["thickness_calibration"]
    assert fitted_on in cal.fitted_on and recorded["points"] >= 30 and cal.e != 0
    assert abs(recorded["bias_mm_after"]) < 0.01 < abs(recorded["bias_mm_before"])  # the fit removes its own bias
    assert 0.5 < cal.slope(cal.s_range[0]) < 1.5 and 0.5 < cal.slope(cal.s_range[1]) < 1.5
    assert "thickness response: measured rows" in out


def test_validation_applies_the_response_in_mm_only():
    """With spacings in native pixels (--native-px) the response, a function of mm per row, must
    not be applied; in mm it is, and the report adds the figures without it."""
    from convert.validate import compare
    from edge.sim import phantom
    from edge.model.preprocess import model_spacing, resize_labels, to_model_image
    from edge.model.segmenter import Segmenter

    bundle = load_bundle(DEMO_BUNDLE)
    seg = Segmenter(bundle, 1)
    spec = bundle.spec

    def float_model(x, training=False):  # the int8 model in float clothes: the comparison's mechanics only
        return seg.logits(seg.infer(np.round(x[0] / spec.scale).astype(np.uint8)))[None]

    scans = [phantom.scan(60 + i, (320, 256), "default", field_mm=(50.0, 40.0)) for i in range(3)]
    images = np.stack([to_model_image(s.image, spec) for s in scans])
    labels = np.stack([resize_labels(s.labels, spec) for s in scans])
    mm = [model_spacing(s.spacing_mm, s.image.shape, spec) for s in scans]
    px = [(320 / 256, 1.0)] * 3
    in_mm = compare(bundle, float_model, images, labels, mm, threads=1)
    in_px = compare(bundle, float_model, images, labels, px, threads=1, unit="px")
    drawn_px = [measure_thickness(np.argmax(seg.infer(im), -1).astype(np.uint8), seg.logits(seg.infer(im)), sp,
                                  logit_scale=seg.logit_scale).value for im, sp in zip(images, px)]
    np.testing.assert_allclose(in_px["frames"]["thickness_int8"], drawn_px)
    assert "int8_vs_truth_without_thickness_calibration" not in in_px["thickness"]
    assert "int8_vs_truth_without_thickness_calibration" in in_mm["thickness"]
    assert in_mm["thickness"]["int8_vs_truth"]["bias"] != in_mm["thickness"]["int8_vs_truth_without_thickness_calibration"]["bias"]
