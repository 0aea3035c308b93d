"""Pixel spacing: config, DICOM regions, the on-screen scales (phantom truth, real screenshots),
and the live Calibrator that notices a depth change."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from edge import phantom_screen as ps
from edge.calibration import Calibrator, from_config, from_dicom_region, from_screen, read_scale
from edge.errors import ConfigError
from edge.roi import detect_roi

from conftest import APO_FEW, DICOM_DIR

APO = APO_FEW / "images"
DICOM = DICOM_DIR


def rel_err(found, truth):
    return max(abs(a / b - 1) for a, b in zip(found, truth))


def test_config_spacing_is_validated():
    assert from_config(0.1).spacing_mm == (0.1, 0.1)
    assert from_config("0.1", 0.12).spacing_mm == (0.1, 0.12)
    for bad in (0, -0.1, float("nan"), 50):
        with pytest.raises(ConfigError, match="out of range"):
            from_config(bad)
    with pytest.raises(ConfigError, match="not two numbers"):
        from_config("thin")


@pytest.mark.parametrize("size", ps.SIZES)
@pytest.mark.parametrize("seed,depth", [(1, 40.0), (2, 50.0), (3, 35.0)])
def test_scales_on_phantom_screens_within_1_percent(size, seed, depth):
    shot = ps.screen(seed, size, depth_mm=depth, machine="default")
    cal, readings = from_screen(shot.image, detect_roi(shot.image))
    assert cal.source == "screen" and cal.note == "depth and lateral scales"
    assert rel_err(cal.spacing_mm, shot.spacing_mm) < 0.01
    depth_scale = readings[0]
    assert depth_scale.axis == "depth" and depth_scale.mm_per_tick in (5.0, 10.0)


def test_depth_scale_alone_gives_square_pixels_and_says_so():
    shot = ps.screen(4, (1280, 720), lateral_scale=False)
    cal, readings = from_screen(shot.image, shot.roi)
    assert len(readings) == 1 and "square pixels" in cal.note
    assert rel_err(cal.spacing_mm, shot.spacing_mm) < 0.01
    strict, _ = from_screen(shot.image, shot.roi, square_pixels=False)
    assert strict.spacing_mm is None


def test_scale_survives_video_compression(tmp_path):
    path = tmp_path / "screen.avi"
    truth = ps.write_clip(path, 6, frames=1, size=(1024, 768), depths=(45.0,))[0]
    ok, img = cv2.VideoCapture(str(path)).read()
    cal, _ = from_screen(img, truth["roi"])
    assert rel_err(cal.spacing_mm, truth["spacing_mm"]) < 0.01


def test_no_scale_means_no_spacing_never_an_invented_one():
    shot = ps.screen(4, (640, 480))
    img = shot.image.copy()
    x, y, w, h = shot.roi
    img[:, x + w + 1 :] = img[0, -1]  # paint over everything right of the image
    img[y + h + 1 :, :] = img[-1, 0]  # and under it
    cal, readings = from_screen(img, shot.roi)
    assert cal.spacing_mm is None and cal.source == "none" and readings == ()
    assert read_scale(img, shot.roi, "lateral") is None


def test_read_scale_rejects_an_unknown_axis():
    with pytest.raises(ConfigError, match="axis"):
        read_scale(np.zeros((100, 100), np.uint8), (10, 10, 50, 50), "diagonal")


def test_calibrator_reports_a_depth_change_and_recalibrates():
    changes = []
    cal = Calibrator(on_change=changes.append)
    readings = 0
    for shot in ps.screen_clip(2, frames=8, size=(1280, 720), depths=(40.0, 50.0), change_at=5):
        roi = shot.roi  # the ROI stage's result; this test looks at the scale alone
        current, change = cal.update(shot.image, roi, roi_changed=shot.index == 5, seq=shot.index)
        readings += change is not None
        assert rel_err(current.spacing_mm, shot.spacing_mm) < 0.01, shot.index
    assert [c.seq for c in changes] == [0, 5] and readings == 2
    assert changes[1].reason == "ROI changed"
    assert changes[1].new.spacing_mm[0] == pytest.approx(changes[1].old.spacing_mm[0] * 50 / 40, rel=0.01)


def test_calibrator_notices_a_scale_change_with_the_same_roi():
    shot = ps.screen(1, (640, 480), depth_mm=40.0, lateral_scale=False)
    cal = Calibrator()
    first, _ = cal.update(shot.image, shot.roi, seq=0)
    assert cal.update(shot.image, shot.roi, seq=1) == (first, None)
    # Zoom to 30 mm in the same rectangle: the scale is redrawn with its ticks further apart.
    lay = ps.layout((640, 480), 40.0, seed=1, lateral_scale=False)
    x, y, w, h = lay.roi
    row_mm = 30.0 / h
    ticks = tuple((y + int(k * 5.0 / row_mm), k % 2 == 0) for k in range(7))
    zoomed = ps.chrome(replace(lay, depth_mm=30.0, spacing_mm=(row_mm, 30.0 / w), depth_ticks=ticks), 1)
    zoomed[y : y + h, x : x + w] = shot.image[y : y + h, x : x + w]
    new, change = cal.update(zoomed, lay.roi, seq=2)
    assert change is not None and change.reason == "scale changed" and change.old == first
    assert new.spacing_mm[0] == pytest.approx(row_mm, rel=0.01)


def test_fixed_calibration_is_used_as_is():
    fixed = from_config(0.08)
    cal = Calibrator(fixed=fixed)
    got, change = cal.update(np.zeros((10, 10), np.uint8), (0, 0, 5, 5), seq=0)
    assert got is fixed and change.reason == "fixed"
    assert cal.update(np.zeros((10, 10), np.uint8), (0, 0, 5, 5), seq=1) == (fixed, None)


def test_calibrator_rejects_a_strange_tick_spacing():
    with pytest.raises(ConfigError, match="tick spacing"):
        Calibrator(tick_mm=3)


def test_real_screenshot_depth_scale_reads_50_mm_where_the_screen_says_50():
    img = cv2.imread(str(APO / "img_00003.tif"), cv2.IMREAD_COLOR)
    roi = detect_roi(img)
    cal, readings = from_screen(img, roi)
    # This scanner prints "0" at the top of its depth scale and "50" at the bottom (mm).
    assert 48.0 <= roi.h * cal.spacing_mm[0] <= 53.0
    assert len(readings[0].positions) >= 5


def test_real_screenshot_depth_and_lateral_scales_agree():
    img = cv2.imread(str(APO / "img_00001.tif"), cv2.IMREAD_COLOR)
    cal, readings = from_screen(img, detect_roi(img))
    assert cal.note == "depth and lateral scales"
    row_mm, col_mm = cal.spacing_mm
    assert abs(row_mm / col_mm - 1) < 0.01  # a linear probe's screen has square pixels
    assert all(r.mm_per_tick == 5.0 for r in readings)  # long and short ticks: cm and half cm


def test_spacing_from_a_real_dicom_region():
    pydicom = pytest.importorskip("pydicom")
    ds = pydicom.dcmread(DICOM / "JPGLosslessP14SV1_1s_1f_8b.dcm", stop_before_pixels=True)
    cal = from_dicom_region(ds.SequenceOfUltrasoundRegions[0])
    assert cal.source == "dicom"
    assert cal.spacing_mm == pytest.approx((0.25476696592378157, 0.25476696592378157))
    ds2 = pydicom.dcmread(DICOM / "OBXXXX1A.dcm", stop_before_pixels=True)
    doppler = ds2.SequenceOfUltrasoundRegions[1]  # a spectral region: seconds and cm/s, not cm
    assert from_dicom_region(doppler).spacing_mm is None


@pytest.mark.parametrize("delta_cm, spacing", [(10.0, None), (0.0, None), ("x", None), (0.02, (0.2, 0.2))])
def test_a_dicom_spacing_no_scanner_has_is_not_used(delta_cm, spacing):
    region = {"PhysicalUnitsXDirection": 3, "PhysicalUnitsYDirection": 3, "PhysicalDeltaX": delta_cm,
              "PhysicalDeltaY": delta_cm}
    cal = from_dicom_region(region)
    assert cal.spacing_mm == (pytest.approx(spacing) if spacing else None)
    if delta_cm == 10.0:
        assert cal.note == "dicom spacing 100 x 100 mm per pixel is outside 0.001-10 mm: not used"


def test_calibrator_without_a_roi_knows_no_spacing():
    shot = ps.screen(3, (640, 480))
    cal = Calibrator()
    none, change = cal.update(shot.image, None, seq=0)
    assert none.spacing_mm is None and change.reason == "no ROI"
    assert cal.update(shot.image, None, seq=1) == (none, None)
    found, change = cal.update(shot.image, shot.roi, roi_changed=True, seq=2)
    assert change.reason == "ROI changed" and rel_err(found.spacing_mm, shot.spacing_mm) < 0.01
