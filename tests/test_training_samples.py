"""Phantom training samples: coverage targets (each class's fraction of a model pixel, from the scan's
analytic band edges), images enlarged as on a scanner screen, and loss weights at class edges."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from convert.data import DISPLAY_ZOOM, coverage_targets, displayed, edge_weights, phantom_coverage_batch, phantom_sample
from edge.sim.recipes import phantom_scan
from edge.sim import phantom
from edge.model.preprocess import PreprocessSpec, to_model_image


@pytest.mark.parametrize("seed", [3, 40, 4116001])
def test_fractions_sum_to_one_and_agree_with_the_label_map_away_from_the_edges(seed):
    spec = PreprocessSpec(interpolation="cubic")
    _, labels, scan = phantom_sample(seed, spec)
    c = coverage_targets(scan, spec)
    assert c.shape == (256, 256, 3) and c.dtype == np.float32
    assert np.allclose(c.sum(-1), 1.0, atol=1e-6) and c.min() >= 0.0
    whole = c.max(-1) == 1.0  # pixels no edge runs through
    assert whole.mean() > 0.95
    assert np.array_equal(c.argmax(-1)[whole], labels[whole])
    # Each column holds one partial pixel per edge at most.
    partial = (c[..., 1] > 0) & (c[..., 1] < 1)
    assert partial.sum(0).max() <= 2


def test_the_band_fraction_of_a_column_is_the_analytic_thickness_in_model_rows():
    spec = PreprocessSpec()
    scan = phantom.render(phantom.random_anatomy(np.random.default_rng(5)), phantom.PRESETS["default"], (400, 320), seed=5)
    c = coverage_targets(scan, spec)
    native = (np.arange(256) + 0.5) * 320 / 256 - 0.5
    rows = np.interp(native, np.arange(320), scan.bottom_px - scan.top_px) * 256 / 400
    assert np.allclose(c[..., 1].sum(0), rows, atol=1e-4)
    # A one-hot map rounds each edge to a pixel boundary; the fractions keep where it runs.
    one_hot = (scan.labels == 1).sum(0)
    assert not np.allclose(c[..., 1].sum(0), np.interp(native, np.arange(320), one_hot) * 256 / 400, atol=0.05)


def test_a_pixel_the_top_edge_halves_is_half_above_half_band():
    scan = phantom.render(phantom.random_anatomy(np.random.default_rng(8)), phantom.PRESETS["default"], (256, 256), seed=8)
    top = np.full(256, 100.5)
    scan = phantom.Scan(scan.image, scan.labels, scan.thickness_mm, scan.spacing_mm, top, top + 10.25)
    c = coverage_targets(scan, PreprocessSpec())
    assert np.allclose(c[100, :, :2], 0.5) and c[100, 0, 2] == 0
    assert np.allclose(c[110, :], [0.0, 0.75, 0.25])
    assert np.all(c[:100, :, 0] == 1) and np.all(c[111:, :, 2] == 1)


def test_a_coverage_batch_stacks_images_and_fractions():
    spec = PreprocessSpec(height=64, width=64)
    x, y = phantom_coverage_batch([1, 2, 3], spec)
    assert x.shape == (3, 64, 64, 1) and x.dtype == np.uint8
    assert y.shape == (3, 64, 64, 3) and np.allclose(y.sum(-1), 1.0, atol=1e-6)


def test_a_displayed_image_is_an_enlargement_of_the_whole_field():
    image = phantom_scan(12).image
    zooms = []
    for seed in range(20):
        big = displayed(image, seed)
        zy, zx = big.shape[0] / image.shape[0], big.shape[1] / image.shape[1]
        assert abs(zy - zx) < 0.01 and DISPLAY_ZOOM[0] - 0.01 <= zy <= DISPLAY_ZOOM[1] + 0.01
        zooms.append(zy)
        back = cv2.resize(big, image.shape[::-1], interpolation=cv2.INTER_AREA)
        assert np.abs(back.astype(int) - image).mean() < 12  # the same picture, only softer
    assert np.ptp(zooms) > 0.8  # factors spread over the range
    assert np.array_equal(displayed(image, 3), displayed(image, 3))


def test_display_share_picks_images_by_seed_and_keeps_labels():
    spec = PreprocessSpec(interpolation="cubic")
    seeds = range(100, 140)
    changed = 0
    for seed in seeds:
        plain_img, plain_lab, scan = phantom_sample(seed, spec)
        assert np.array_equal(plain_img, to_model_image(scan.image, spec))  # display=0: the device's reduction only
        img, lab, _ = phantom_sample(seed, spec, display=0.5)
        assert np.array_equal(lab, plain_lab)
        changed += not np.array_equal(img, plain_img)
        assert np.array_equal(phantom_sample(seed, spec, display=1.0)[0], to_model_image(displayed(scan.image, seed), spec))
    assert 10 <= changed <= 30  # about half of 40


def test_edge_weights_peak_at_the_class_boundaries_and_fade_with_distance():
    labels = np.zeros((40, 5), np.uint8)
    labels[10:30] = 1
    labels[30:] = 2
    w = edge_weights(labels, 4.0, sigma_px=1.0)
    assert w.shape == labels.shape and w.dtype == np.float32
    col = w[:, 2]
    assert np.all(w == col[:, None])  # a level boundary weighs every column alike
    half = 1.0 + 4.0 * np.exp(-0.125)  # the rows on either side of a boundary lie half a row from it
    assert np.allclose(col[[9, 10, 29, 30]], half)
    assert np.allclose(col[[8, 11]], 1.0 + 4.0 * np.exp(-1.125))
    assert np.all(col[:5] == 1.0) and np.all(col[15:25] == 1.0) and np.all(col[35:] == 1.0)
    # Two boundaries one row apart add up, to no more than 1 + weight.
    thin = np.zeros((20, 1), np.uint8)
    thin[10] = 1
    thin[11:] = 2
    assert edge_weights(thin, 4.0).max() == pytest.approx(5.0)
    # A batch is weighted image by image; a lower band moves its weights with it.
    lower = np.zeros_like(labels)
    lower[13:33] = 1
    lower[33:] = 2
    wb = edge_weights(np.stack([labels, lower]), 2.0, sigma_px=1.5)
    assert wb.shape == (2, 40, 5) and np.allclose(wb[1, 3:], wb[0, :-3]) and np.all(wb[1, :3] == 1.0)
    assert np.all(edge_weights(labels, 0.0) == 1.0)


def test_edge_weights_follow_a_phantom_band_column_by_column():
    spec = PreprocessSpec(interpolation="cubic")
    _, labels, _ = phantom_sample(77, spec)
    w = edge_weights(labels, 4.0)
    top = np.argmax(labels == 1, axis=0)
    cols = np.arange(labels.shape[1])
    assert np.allclose(w[top, cols], 1.0 + 4.0 * np.exp(-0.125), atol=0.05)  # just inside the top edge
    assert np.allclose(w[top - 1, cols], 1.0 + 4.0 * np.exp(-0.125), atol=0.05)  # just above it
    assert np.all(w[top - 6, cols] == 1.0)
