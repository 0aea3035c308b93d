"""The phantom as it renders by default is frozen: demo models are trained on it, their held-out
figures are measured on it and the demo runs on it. New realism must stay behind options that are
off by default.

Each case is compared with its stored reference (`tests/phantom_reference.py` says how it was
written) by what must not change on any CPU: the label maps and the analytic truth, and the image
to within the grey level or so that numpy's and OpenCV's SIMD code paths round differently (on
an AVX-512 CPU a handful of pixels per case differ by one level from an AVX2 CPU). If a case fails,
a default changed: undo that, do not write the reference again.
"""

from __future__ import annotations

import numpy as np
import pytest

from edge.sim import phantom
from phantom_reference import CASES, DIGESTS, REFERENCE, arrays, digest, load_reference

# What an image may differ by between CPUs: the share of pixels more than 2 grey levels off, the
# mean absolute difference, and each tissue class's mean and spread (grey levels).
MAX_SHARE_OFF = 1e-3
MAX_MEAN_ABS = 0.05
MAX_CLASS_SHIFT = 0.25
MAX_LABEL_SHARE = 1e-3  # label pixels that may flip where a boundary falls on a pixel edge
TRUTH_ATOL = 1e-4  # px and mm: float32 rounding of the analytic edges


@pytest.fixture(scope="module")
def reference():
    return load_reference()


def differences(got: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> list[str]:
    """What `got` changed against `ref` beyond what rounding on another CPU explains."""
    problems = []
    for f in ("image", "labels"):
        if got[f].shape != ref[f].shape or got[f].dtype != ref[f].dtype:
            return [f"{f} is {got[f].dtype}{got[f].shape}, reference {ref[f].dtype}{ref[f].shape}"]
    for f in ("thickness_mm", "top_px", "bottom_px", "spacing_mm"):
        if got[f].shape != ref[f].shape or not np.allclose(got[f], ref[f], rtol=0, atol=TRUTH_ATOL):
            problems.append(f"{f} differs (max {np.max(np.abs(got[f] - ref[f])) if got[f].shape == ref[f].shape else 'shape'})")
    flipped = float(np.mean(got["labels"] != ref["labels"]))
    if flipped > MAX_LABEL_SHARE:
        problems.append(f"labels differ in {flipped:.2%} of the pixels")
    d = np.abs(got["image"].astype(np.int16) - ref["image"].astype(np.int16))
    if np.mean(d > 2) > MAX_SHARE_OFF:
        problems.append(f"{np.mean(d > 2):.3%} of the pixels are more than 2 grey levels off")
    if d.mean() > MAX_MEAN_ABS:
        problems.append(f"mean absolute difference {d.mean():.3f} grey levels")
    for c in np.unique(ref["labels"]):
        a, b = got["image"][ref["labels"] == c].astype(float), ref["image"][ref["labels"] == c].astype(float)
        if abs(a.mean() - b.mean()) > MAX_CLASS_SHIFT or abs(a.std() - b.std()) > MAX_CLASS_SHIFT:
            problems.append(f"class {c}: mean {a.mean():.2f} vs {b.mean():.2f}, spread {a.std():.2f} vs {b.std():.2f}")
    return problems


def test_the_stored_reference_is_the_frozen_phantom(reference):
    """The reference file holds exactly what the phantom rendered when it was frozen."""
    assert REFERENCE.stat().st_size < 2_000_000
    assert {case: digest(scans) for case, scans in reference.items()} == DIGESTS


@pytest.mark.parametrize("name", sorted(CASES))
def test_default_output_matches_the_frozen_phantom(name, reference):
    scans = [arrays(s) for s in CASES[name]()]
    assert len(scans) == len(reference[name])
    for i, (got, ref) in enumerate(zip(scans, reference[name])):
        assert differences(got, ref) == [], f"{name} scan {i}"


@pytest.mark.parametrize("change", [
    {"gain_db": 0.5},                 # half a decibel of gain
    {"dynamic_range_db": 51.0},       # one decibel more dynamic range
    {"axial_psf_mm": 0.125},          # a slightly blurrier pulse
])
def test_a_small_change_of_the_default_look_is_caught(change, reference):
    """The comparison is tight enough to see a changed default, not only a broken renderer."""
    ref = reference["render"][0]
    got = arrays(phantom.render(phantom.Anatomy(), phantom.Machine(**change)))
    assert differences(got, ref) != []


def test_the_comparison_accepts_rounding_noise_only(reference):
    """One grey level on a few pixels passes; the label map moved by one row does not."""
    ref = reference["scan"][0]
    noisy = {k: v.copy() for k, v in ref.items()}
    rng = np.random.default_rng(0)
    idx = rng.choice(noisy["image"].size, 40, replace=False)
    flat = noisy["image"].reshape(-1)
    flat[idx] = np.where(flat[idx] < 255, flat[idx] + 1, flat[idx] - 1)
    assert differences(noisy, ref) == []
    shifted = {k: v.copy() for k, v in ref.items()}
    shifted["labels"] = np.roll(ref["labels"], 1, axis=0)
    assert differences(shifted, ref) != []


def test_original_presets_are_unchanged():
    M = phantom.Machine
    assert phantom.PRESETS["default"] == M()
    assert phantom.PRESETS["bright"] == M(gain_db=6.0, dynamic_range_db=55.0, contrast=1.1)
    assert phantom.PRESETS["soft"] == M(
        gain_db=-4.0, dynamic_range_db=65.0, axial_psf_mm=0.16, lateral_psf_mm=0.40, contrast=0.8
    )
    assert phantom.PRESETS["lowfreq"] == M(axial_psf_mm=0.22, lateral_psf_mm=0.50, attenuation_db_mm=0.07, noise=0.002)
    assert phantom.PRESETS["noisy"] == M(gain_db=3.0, noise=0.004, dynamic_range_db=45.0)
