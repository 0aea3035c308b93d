import math

import numpy as np
import pytest

from edge.sim import phantom
from edge.measure.quality import Quality
from edge.measure.thickness import ThicknessOptions, band_edges, measure_thickness


def band_labels(h=100, w=120, top=None, thickness=8):
    top = np.full(w, 40.0) if top is None else top
    rows = np.arange(h)[:, None]
    labels = np.full((h, w), 2, np.uint8)
    labels[rows < top + thickness] = 1
    labels[rows < top] = 0
    return labels


def test_flat_band_in_mm_and_px():
    labels = band_labels(thickness=8)
    r = measure_thickness(labels, spacing_mm=(0.1, 0.1))
    assert r.value == pytest.approx(0.8) and r.unit == "mm" and r.flags == 0 and r.spread == 0
    r = measure_thickness(labels)
    assert r.value == pytest.approx(8) and r.unit == "px" and r.flags == Quality.UNCALIBRATED


def test_tilted_band_is_measured_perpendicular_with_anisotropic_spacing():
    # 20 degree tilt in mm with 0.1 mm rows and 0.2 mm columns: rows per column = tan(20)*0.2/0.1
    w = 200
    slope_rows = math.tan(math.radians(20)) * 0.2 / 0.1
    top = 20 + slope_rows * np.arange(w)
    vertical = 12
    labels = band_labels(h=200, w=w, top=np.round(top), thickness=vertical)
    r = measure_thickness(labels, spacing_mm=(0.1, 0.2))
    angle = math.atan(slope_rows * 0.1 / 0.2)
    assert r.value == pytest.approx(vertical * 0.1 * math.cos(angle), rel=0.02)


def test_subpixel_edges_from_logits():
    h, w = 60, 40
    true_top, true_bottom = 20.3, 27.8
    rows = np.arange(h)[:, None] + 0.5
    logits = np.zeros((h, w, 3), np.float32)
    # each class's logit rises linearly into its region; boundaries where two cross
    logits[..., 0] = np.broadcast_to(true_top - rows, (h, w))
    logits[..., 2] = np.broadcast_to(rows - true_bottom, (h, w))
    logits[..., 1] = 0.0
    labels = np.argmax(logits, -1).astype(np.uint8)
    e = band_edges(labels, logits)
    assert np.allclose(e.top, true_top, atol=1e-4) and np.allclose(e.bottom, true_bottom, atol=1e-4)
    coarse = band_edges(labels)
    assert np.allclose(coarse.top, 20) and np.allclose(coarse.bottom, 28)


def test_missing_band_is_flagged_and_not_measured():
    labels = np.zeros((50, 50), np.uint8)
    labels[30:] = 2
    r = measure_thickness(labels, spacing_mm=(0.1, 0.1))
    assert r.flags & Quality.NO_BAND and math.isnan(r.value)


def test_wrong_anatomical_order_is_flagged():
    labels = band_labels()
    labels[5:10] = 2  # tissue "below" above the band
    r = measure_thickness(labels, spacing_mm=(0.1, 0.1))
    assert r.flags & Quality.ORDER and math.isnan(r.value)


def test_split_band_is_flagged_fragmented():
    labels = band_labels(thickness=10)
    labels[44:46] = 0
    r = measure_thickness(labels, spacing_mm=(0.1, 0.1))
    assert r.flags & (Quality.FRAGMENTED | Quality.ORDER) and math.isnan(r.value)


def test_low_margin_logits_flag_low_confidence():
    labels = band_labels()
    logits = np.zeros(labels.shape + (3,), np.float32)
    logits[np.arange(labels.shape[0])[:, None], np.arange(labels.shape[1]), labels] = 0.2
    r = measure_thickness(labels, logits, (0.1, 0.1), ThicknessOptions(min_margin=1.0))
    assert r.flags & Quality.LOW_CONFIDENCE


def test_phantom_ground_truth_labels_measure_their_true_thickness():
    for seed in range(8):
        s = phantom.scan(seed)
        r = measure_thickness(s.labels, spacing_mm=s.spacing_mm)
        w = s.labels.shape[1]
        truth = np.median(s.thickness_mm[w // 4 : 3 * w // 4])
        assert abs(r.value - truth) <= s.spacing_mm[0]  # pixel quantization only


def _band_logits(labels: np.ndarray, classes: int, blur: float = 1.5) -> np.ndarray:
    """Smooth per-class logits whose argmax is `labels` (a soft one-hot)."""
    import cv2

    onehot = np.stack([(labels == c).astype(np.float32) for c in range(classes)], -1)
    soft = np.stack([cv2.GaussianBlur(onehot[..., c], (0, 0), blur) for c in range(classes)], -1)
    return np.log(soft + 1e-3) * 2.0


def test_two_class_band_has_background_on_both_sides_and_subpixel_edges():
    from edge.measure.thickness import measure_thickness, neighbours

    assert neighbours(1, 2) == ((0,), (0,))
    assert neighbours(0, 2) == ((1,), (1,))
    labels = np.zeros((64, 48), np.uint8)
    labels[20:31] = 1
    logits = _band_logits(labels, 2)
    assert (np.argmax(logits, -1) == labels).all()
    r = measure_thickness(labels, logits, (0.1, 0.1), tlf=1)
    assert r.flags == 0 and r.value == pytest.approx(1.1, abs=0.02)
    assert measure_thickness(labels, None, None, tlf=1, classes=2).value == pytest.approx(11.0)


def test_two_bands_in_a_column_are_fragmented_not_measured():
    from edge.measure.quality import Quality
    from edge.measure.thickness import measure_thickness

    labels = np.zeros((64, 48), np.uint8)
    labels[10:16] = 1
    labels[40:48] = 1
    r = measure_thickness(labels, _band_logits(labels, 2), (0.1, 0.1), tlf=1)
    assert r.flags & Quality.FRAGMENTED and np.isnan(r.value)


def test_many_classes_keep_the_order_from_the_probe_down():
    from edge.measure.quality import Quality
    from edge.measure.thickness import measure_thickness, neighbours

    assert neighbours(2, 5) == ((0, 1), (3, 4))
    labels = np.zeros((80, 40), np.uint8)
    labels[10:25], labels[25:33], labels[33:60], labels[60:] = 1, 2, 3, 4
    logits = _band_logits(labels, 5)
    ok = measure_thickness(labels, logits, (0.1, 0.1), tlf=2)
    assert ok.flags == 0 and ok.value == pytest.approx(0.8, abs=0.03)
    swapped = labels.copy()
    swapped[:10] = 3  # a class of below the band above it
    bad = measure_thickness(swapped, _band_logits(swapped, 5), (0.1, 0.1), tlf=2)
    assert bad.flags & Quality.ORDER


def test_a_band_class_outside_the_classes_is_an_error():
    from edge.measure.thickness import measure_thickness

    with pytest.raises(ValueError, match="band class"):
        measure_thickness(np.zeros((8, 8), np.uint8), np.zeros((8, 8, 2), np.float32), tlf=2)
