"""The phantom's random fields have the distributions the B-mode model assumes: complex Gaussian
scatterers (so fully developed speckle has a Rayleigh envelope) and a fibre field that is a
Gaussian-blurred white noise of the requested correlation length."""

import math

import numpy as np
import pytest

import edge.sim.render
from edge.sim import phantom, texture


def test_complex_normal_is_circular_gaussian_with_unit_variance_per_part():
    z = texture.complex_normal(np.random.default_rng(3), (512, 512))
    assert z.dtype == np.complex64 and z.shape == (512, 512)
    re, im = z.real.astype(np.float64).ravel(), z.imag.astype(np.float64).ravel()
    n = re.size
    for part in (re, im):
        assert abs(part.mean()) < 5 / math.sqrt(n)
        assert part.var() == pytest.approx(1.0, abs=0.01)
        kurtosis = (part**4).mean() / part.var() ** 2
        assert kurtosis == pytest.approx(3.0, abs=0.05)  # a uniform field would give 1.8
        # Tail mass of a standard normal beyond 2 sigma: 4.55 %.
        assert (np.abs(part) > 2).mean() == pytest.approx(0.0455, abs=0.002)
    assert abs(np.corrcoef(re, im)[0, 1]) < 0.01
    # Neighbouring values are independent (white).
    assert abs(np.corrcoef(re[:-1], re[1:])[0, 1]) < 0.01
    # |z| is Rayleigh: mean / std of the magnitude is sqrt(pi / (4 - pi)) = 1.913.
    mag = np.abs(z.astype(np.complex128))
    assert mag.mean() / mag.std() == pytest.approx(1.913, abs=0.02)


def test_complex_normal_is_reproducible_and_fills_out():
    a = texture.complex_normal(np.random.default_rng(11), (64, 80))
    out = np.zeros((64, 80), np.complex64)
    b = texture.complex_normal(np.random.default_rng(11), (64, 80), out)
    assert b is out
    np.testing.assert_array_equal(a, b)
    c = texture.complex_normal(np.random.default_rng(12), (64, 80))
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("sig_x", [3.0, 16.0])
def test_fibre_field_has_unit_spread_and_the_gaussian_blur_correlation(sig_x):
    """White noise blurred by a Gaussian of sigma s has the autocorrelation exp(-d^2 / (4 s^2)) at a
    lag of d pixels; the decimated blur of long sigmas must keep it."""
    field = texture._fibre_field(np.random.default_rng(5), (256, 2048), (sig_x, 1.0))
    assert field.shape == (256, 2048) and field.dtype == np.float32
    field = field.astype(np.float64)
    assert field.std() == pytest.approx(1.0, abs=1e-3)
    for lag in (sig_x, 2 * sig_x):
        d = int(round(lag))
        r = np.corrcoef(field[:, :-d].ravel(), field[:, d:].ravel())[0, 1]
        assert r == pytest.approx(math.exp(-(d**2) / (4 * sig_x**2)), abs=0.04)
    # Axially the blur is short: one row apart, exp(-1/4) = 0.78.
    r = np.corrcoef(field[:-1].ravel(), field[1:].ravel())[0, 1]
    assert r == pytest.approx(math.exp(-0.25), abs=0.04)
    # Gaussian-like tails (the muscle's perimysium streaks sit beyond 1.5 sigma: 6.7 %).
    assert (field > 1.5).mean() == pytest.approx(0.0668, abs=0.015)


@pytest.mark.parametrize("sig_x", [4.0, 16.0])
def test_fibre_field_is_as_strong_at_the_image_edges_as_in_the_middle(sig_x):
    """A frame without a lateral margin (a new scene) must not blur its noise against a mirrored
    border: that counts the same noise twice and makes the edge columns brighter and streakier."""
    rng = np.random.default_rng(8)
    fields = np.concatenate([texture._fibre_field(rng, (32, 256), (sig_x, 1.0)) for _ in range(150)])
    spread = fields.std(axis=0)
    edge = max(4, int(sig_x))
    for side in (spread[:edge], spread[-edge:]):
        assert side.mean() / spread[96:160].mean() == pytest.approx(1.0, abs=0.08)


def test_single_frame_texture_is_only_as_wide_as_its_slide(monkeypatch):
    """A new scene draws no lateral margin unless its anatomy slides; a slid scene gets room for its
    whole slide (tissue and muscle), so its texture really moves instead of stopping at the edge."""
    pads = []
    original = texture.Texture

    def recording(*args, **kwargs):
        t = original(*args, **kwargs)
        pads.append(t.pad)
        return t

    monkeypatch.setattr(edge.sim.render, "Texture", recording)
    phantom.render(phantom.Anatomy(), seed=4)
    a = phantom.Anatomy(slide_mm=2.0, muscle_slide_mm=-1.0)
    phantom.render(a, seed=4)
    sx = a.width_mm / 256
    assert pads[0] == 0
    assert pads[1] >= math.ceil(3.0 / sx)
    phantom.render(phantom.Anatomy(slide_mm=500.0), seed=4)
    assert pads[2] == 128  # never more than half the width (the clip's margin)
