"""Pixel spacing: config, DICOM regions, the depth setting, two points, the on-screen scales
(real DICOM screen captures with their own spacing withheld, real screenshots, phantom truth),
what happens without OCR, and the live Calibrator that notices a depth change."""

from __future__ import annotations

import os
from dataclasses import replace

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.screen import ocr
from edge.sim import phantom_screen as ps
from edge.screen import scale_reader as sr
from edge.screen.spacing import (Calibration, Calibrator, from_config, from_depth, from_dicom_region, from_points,
                              from_screen, from_source, read_scale)
from edge.errors import ConfigError
from edge.screen.roi import Roi, detect_roi, manual_roi

from conftest import APO_FEW, DICOM_DIR, REALDATA, SHARED_ABSENT

APO = APO_FEW / "images"
DICOM = DICOM_DIR
AGREE = 0.02


def rel_err(found, truth):
    return max(abs(a / b - 1) for a, b in zip(found, truth))


@pytest.fixture
def without_ocr(monkeypatch):
    monkeypatch.setattr(ocr, "available", lambda: "OCR switched off for this test")


def dicom_screen(name: str):
    """A real DICOM screen capture as the cart would see it (BGR), its tissue region as a
    rectangle, and the file's own row spacing (mm), which the reader does not get."""
    pydicom = pytest.importorskip("pydicom")
    from edge.sources.dicom import to_display

    ds = pydicom.dcmread(DICOM / name)
    arr = ds.pixel_array
    img = to_display(arr[0] if arr.ndim == 4 or (arr.ndim == 3 and ds.get("NumberOfFrames", 1) > 1) else arr,
                     ds, ds.PhotometricInterpretation)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    r = ds.SequenceOfUltrasoundRegions[0]
    H, W = img.shape[:2]
    x0, y0 = int(r.RegionLocationMinX0), int(r.RegionLocationMinY0)
    x1, y1 = min(int(r.RegionLocationMaxX1), W - 1), min(int(r.RegionLocationMaxY1), H - 1)
    return img, manual_roi(x0, y0, x1 - x0 + 1, y1 - y0 + 1), float(r.PhysicalDeltaY) * 10.0


def test_config_spacing_is_validated():
    assert from_config(0.1).spacing_mm == (0.1, 0.1)
    assert from_config("0.1", 0.12).spacing_mm == (0.1, 0.12)
    for bad in (0, -0.1, float("nan"), 50):
        with pytest.raises(ConfigError, match="out of range"):
            from_config(bad)
    with pytest.raises(ConfigError, match="not two numbers"):
        from_config("thin")


def test_depth_setting_and_two_points():
    cal = from_depth(40.0, 500, 400)
    assert cal.source == "depth_mm" and cal.spacing_mm == (0.08, 0.08)
    assert from_depth(40.0, 500, 400, width_mm=38.0).spacing_mm == (0.08, 0.095)
    assert from_points((10, 20), (10, 145), 10.0) == pytest.approx(0.08)
    assert from_points((0, 0), (30, 40), 5.0) == pytest.approx(0.1)
    with pytest.raises(ConfigError, match="at least 10 px"):
        from_points((5, 5), (8, 9), 10.0)
    with pytest.raises(ConfigError, match="out of range"):
        from_points((0, 0), (0, 100), -1.0)


# --- real screens ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["OBXXXX1A.dcm", "OBXXXX1A_rle.dcm", "OBXXXX1A_2frame.dcm"])
def test_philips_linear_screen_ticks_confirmed_by_its_11cm_readout(name, needs_ocr):
    """Ticks every cm (a longer blue one each 5 cm) down the right edge, no labels, "11cm" in the
    text panel: read with the file's PhysicalDeltaY withheld, within 2 % of it."""
    img, roi, truth = dicom_screen(name)
    cal, readings = from_screen(img, roi)
    assert cal.source == "screen", cal.note
    assert abs(cal.spacing_mm[0] / truth - 1) < AGREE
    assert readings[0].mm_per_tick == 10.0 and "readout 110 mm" in readings[0].note


def test_philips_sector_dots_confirmed_by_its_16cm_readout(needs_ocr):
    """A phased-array sector: a dot per cm from the virtual apex down the sector's right edge,
    "16cm" printed: the dots' pitch along their line, within 2 % of PhysicalDeltaY."""
    img, _, truth = dicom_screen("JPGLosslessP14SV1_1s_1f_8b.dcm")
    roi = detect_roi(img)
    cal, readings = from_screen(img, roi)
    assert cal.source == "screen", cal.note
    assert readings[0].kind == "dots" and readings[0].mm_per_tick == 10.0
    assert abs(cal.spacing_mm[0] / truth - 1) < AGREE


def test_aloka_markers_are_no_scale_without_numbers():
    """Green ticks each 26 px with a long one every 5 (2 mm or 1 cm steps alike) and focus
    triangles 103 px apart, no readout: no mm unless within 2 % of the file's spacing."""
    img, roi, truth = dicom_screen("gdcm-US-ALOKA-16.dcm")
    for r in (roi, detect_roi(img)):
        cal, _ = from_screen(img, r)
        if cal.spacing_mm is not None:
            assert abs(cal.spacing_mm[0] / truth - 1) < AGREE
        else:
            assert cal.source in ("refused", "none")


def test_ge_screen_reports_nothing_it_cannot_check():
    pydicom = pytest.importorskip("pydicom")
    from edge.sources.dicom import to_display

    ds = pydicom.dcmread(DICOM / "US1_UNCR.dcm")
    img = to_display(ds.pixel_array, ds, ds.PhotometricInterpretation)
    cal, _ = from_screen(img, detect_roi(img))
    if cal.spacing_mm is not None:  # no spacing in the file: only plausibility can be checked
        assert 10.0 <= detect_roi(img).h * cal.spacing_mm[0] <= 300.0


def test_real_screenshot_depth_scale_reads_50_mm_where_the_screen_says_50(needs_ocr):
    img = cv2.imread(str(APO / "img_00003.tif"), cv2.IMREAD_COLOR)
    roi = detect_roi(img)
    cal, readings = from_screen(img, roi)
    # This scanner prints "0" at the top of its depth scale and "50" at the bottom (mm), mirrored.
    assert cal.source == "screen" and "labels ['0', '50']" in cal.note
    assert 48.0 <= roi.h * cal.spacing_mm[0] <= 53.0
    assert len(readings[0].positions) >= 5


def check_screenshot(img) -> str:
    """What the reader says of one real screenshot, checked: a spacing only when plausible and
    confirmed by labels whose pitch agrees with the ticks'; else a refusal."""
    roi = detect_roi(img)
    if roi is None:
        return "no roi"
    cal, readings = from_screen(img, roi)
    if cal.spacing_mm is None:
        assert cal.source in ("none", "refused")
        return cal.source
    depth = readings[0]
    assert 10.0 <= roi.h * cal.spacing_mm[0] <= 300.0
    assert "labels" in depth.note or "readout" in depth.note
    return "read"


def test_real_screenshots_are_read_or_refused(needs_ocr):
    got = {p.name: check_screenshot(cv2.imread(str(p), cv2.IMREAD_COLOR)) for p in sorted(APO.glob("*.tif"))}
    # The 688x1234 and 556x660 layouts print 0 and the depth in mm; the others print no number.
    assert got["img_00003.tif"] == "read" and got["img_00519.tif"] == "read"
    assert got["img_00001.tif"] == "refused" and got["img_00002.tif"] == "refused"


@pytest.mark.skipif(not (REALDATA / "dltrack_apo" / "images").is_dir(), reason=SHARED_ABSENT)
def test_more_real_screenshots_are_read_or_refused(needs_ocr):
    paths = sorted((REALDATA / "dltrack_apo" / "images").glob("*.tif"))[::6]
    numbered, plain = [], []  # the 556x660 and 688x1234 screens print 0 and the depth in mm
    for p in paths:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        (numbered if img.shape[1] in (660, 1234) else plain).append(check_screenshot(img))
    assert numbered.count("read") >= len(numbered) // 2, numbered
    assert "read" not in plain, plain  # no number on those screens: nothing may confirm a scale


# --- phantom screens ---------------------------------------------------------------------------


@pytest.mark.parametrize("size,seed,depth", [((1280, 720), 1, 40.0), ((1920, 1080), 2, 50.0),
                                             ((1024, 768), 3, 35.0), ((640, 480), 1, 40.0)])
def test_scales_on_phantom_screens_within_1_percent(size, seed, depth, needs_ocr):
    shot = ps.screen(seed, size, depth_mm=depth, machine="default")
    cal, readings = from_screen(shot.image, detect_roi(shot.image))
    assert cal.source == "screen" and cal.note.startswith("depth and lateral scales")
    assert rel_err(cal.spacing_mm, shot.spacing_mm) < 0.01
    assert readings[0].axis == "depth" and readings[0].mm_per_tick == 5.0


def test_depth_scale_alone_gives_square_pixels_and_says_so(needs_ocr):
    shot = ps.screen(4, (1280, 720), lateral_scale=False)
    cal, readings = from_screen(shot.image, shot.roi)
    assert len(readings) == 1 and "square pixels" in cal.note
    assert rel_err(cal.spacing_mm, shot.spacing_mm) < 0.01
    strict, _ = from_screen(shot.image, shot.roi, square_pixels=False)
    assert strict.spacing_mm is None


def test_scale_survives_video_compression(tmp_path, needs_ocr):
    path = tmp_path / "screen.avi"
    truth = ps.write_clip(path, 6, frames=1, size=(1024, 768), depths=(45.0,))[0]
    ok, img = cv2.VideoCapture(str(path)).read()
    cal, _ = from_screen(img, truth["roi"])
    assert rel_err(cal.spacing_mm, truth["spacing_mm"]) < 0.01


def test_without_ocr_ticks_alone_are_refused_with_the_reason(without_ocr):
    shot = ps.screen(2, (1024, 768), depth_mm=40.0)
    cal, readings = from_screen(shot.image, shot.roi)
    assert cal.spacing_mm is None and cal.source == "refused"
    assert "no number on screen" in cal.note and "OCR switched off" in cal.note
    assert readings[0].mm_per_px is None
    # The operator's word for the tick spacing confirms the ticks like a number would.
    told, _ = from_screen(shot.image, shot.roi, tick_mm=5.0)
    assert told.source == "screen" and rel_err(told.spacing_mm, shot.spacing_mm) < 0.01


def test_no_scale_means_no_spacing_never_an_invented_one():
    shot = ps.screen(4, (640, 480))
    img = shot.image.copy()
    x, y, w, h = shot.roi
    img[:, x + w + 1 :] = img[0, -1]  # paint over everything right of the image
    img[y + h + 1 :, :] = img[-1, 0]  # and under it
    cal, readings = from_screen(img, shot.roi)
    assert cal.spacing_mm is None and cal.source == "none" and readings == ()
    assert read_scale(img, shot.roi) is None


def test_read_scale_rejects_an_unknown_axis():
    with pytest.raises(ConfigError, match="axis"):
        read_scale(np.zeros((100, 100), np.uint8), (10, 10, 50, 50), "diagonal")


# --- the rules, on mark rows with known numbers ------------------------------------------------


def row(n=9, pitch=50.0, period=2):
    idx = np.arange(n)
    long = (idx % period == 0) if period else np.zeros(n, bool)
    pts = np.stack([np.full(n, 600.0), 100.0 + pitch * idx], axis=1)
    return sr.MarkRow("ticks", pts, idx, pitch, (0.0, 1.0), long, period, (595, 98, 10, int(pitch * (n - 1)) + 4))


def every_pixels_extent(row_, roi):
    """extent_px measured over every image pixel of the ROI, as it was before outlines."""
    ys, xs = np.nonzero(roi.mask)
    (ux, uy), p0 = row_.direction, row_.points[0]
    return float(((xs + roi.x + 0.5 - p0[0]) * ux + (ys + roi.y + 0.5 - p0[1]) * uy).max())


@settings(max_examples=120, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.0, 2 * np.pi), st.floats(-300.0, 900.0), st.floats(-300.0, 900.0))
def test_extent_from_the_outlines_is_that_of_every_pixel(seed, angle, px, py):
    """The farthest image pixel along any direction, from any first mark, read off the mask's
    outlines: the same number as over every pixel, on masks of several pieces, with holes, ragged
    edges and single pixels (to rounding: points on the outline's farthest edge are equally far,
    each rounded its own way)."""
    rng = np.random.default_rng(seed)
    h, w = (int(v) for v in rng.integers(1, 90, 2))
    mask = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(1, 5))):
        cx, cy, ax, ay = (int(v) for v in rng.integers(0, 90, 4))
        cv2.ellipse(mask, (cx, cy), (ax // 2, ay // 3), float(rng.uniform(0, 180)), 0, 360, 1, -1)
    mask[rng.random((h, w)) < rng.uniform(0, 0.3)] ^= 1  # holes and stray pixels
    if not mask.any():
        mask[int(rng.integers(h)), int(rng.integers(w))] = 1
    roi = Roi(int(rng.integers(0, 700)), int(rng.integers(0, 400)), w, h, mask.astype(bool))
    r = replace(row(), points=np.array([[px, py], [px, py + 1.0]]), direction=(float(np.cos(angle)), float(np.sin(angle))))
    assert sr.extent_px(r, roi) == pytest.approx(every_pixels_extent(r, roi), rel=1e-12, abs=1e-9)


def test_extent_of_a_real_sector_is_that_of_every_pixel():
    """A real phased-array sector's detected mask (a fan with a curved bottom), along its dots' row."""
    img, _, _ = dicom_screen("JPGLosslessP14SV1_1s_1f_8b.dcm")
    roi = detect_roi(img)
    assert roi.mask.mean() < 0.95  # a fan, not a rectangle
    for angle in np.linspace(0, 2 * np.pi, 17):
        r = replace(row(), direction=(float(np.cos(angle)), float(np.sin(angle))))
        assert sr.extent_px(r, roi) == pytest.approx(every_pixels_extent(r, roi), rel=1e-12)


def test_labels_pick_the_step_and_a_whole_factor_off_is_refused():
    cm_every_4 = row(n=17, pitch=25.0, period=4)  # 2.5 mm ticks, cm labels 0 1 2 3 4: 400 px = 40 mm
    v = sr.interpret(cm_every_4, [(0, 0), (1, 4), (2, 8), (3, 12), (4, 16)], (), 400.0)
    assert v.step_mm == 2.5 and v.mm_per_px == pytest.approx(0.1)
    # Labels that say 1 cm per 4 ticks on marks whose pattern allows only 5 or 10 mm: refused,
    # never read as 10 mm per tick (4x) or 5 mm (2x).
    v = sr.interpret(row(n=17, pitch=25.0, period=2), [(0, 0), (1, 4), (2, 8)], (), 400.0)
    assert v.step_mm is None and "no step" in v.reason
    # Labels that disagree with each other are no scale.
    v = sr.interpret(cm_every_4, [(0, 0), (1, 4), (7, 8)], (), 400.0)
    assert v.step_mm is None


def test_readout_must_agree_within_2_percent():
    r = row(n=9, pitch=50.0, period=2)  # 5 mm ticks, 8 steps over 400 px: 40 mm
    assert sr.interpret(r, (), (40.0,), 400.0, roi_h=400).step_mm == 5.0
    assert sr.interpret(r, (), (40.5,), 400.0, roi_h=400).step_mm == 5.0  # 1.25 %
    for wrong in (20.0, 44.0, 60.0):  # a factor 2 off, 10 % off, a factor 1.5 off
        v = sr.interpret(r, (), (wrong,), 400.0, roi_h=400)
        assert v.step_mm is None and "readout" in v.reason
    # Labels and a readout that disagree: refused.
    v = sr.interpret(r, [(0, 0), (1, 2), (2, 4)], (80.0,), 400.0, roi_h=400)
    assert v.step_mm is None


def test_marks_alone_or_an_ambiguous_step_are_refused():
    alike = row(n=6, pitch=80.0, period=None)
    v = sr.interpret(alike, (), (), 400.0)
    assert v.step_mm is None and "no number on screen" in v.reason
    five = row(n=16, pitch=26.0, period=5)  # 2 mm ticks with cm long ones, or 1 cm with 5 cm ones
    assert sr.candidate_steps(five) == (2.0, 10.0)
    assert sr.interpret(five, (), (), 390.0).step_mm is None
    # A readout of 80 mm makes 1 cm ticks with 2 cm long ones of the same marks: unique again.
    assert sr.interpret(row(n=9, pitch=50.0, period=2), (), (80.0,), 400.0, roi_h=400).step_mm == 10.0
    # Labels whose only unit gives a depth outside 1-30 cm are refused: 0 5 10 mm a step apart
    # over a 100 px image would be 5 mm deep (and 50 mm steps in cm are no scale).
    tiny = sr.interpret(row(n=5, pitch=100.0, period=None), [(0, 0), (5, 1), (10, 2)], (), 100.0)
    assert tiny.step_mm is None and "no step" in tiny.reason


def test_a_fine_pitch_on_a_small_screen_is_not_taken_for_every_other_mark():
    """2 mm ticks 9.4 px apart (a 640x480 screen at 80 mm): a pair 9 px apart proposes the grid;
    refitted only through the marks near it, then further out, it holds all 41, where a grid of
    every other mark (18.8 px, a 4 mm step no such scale has) would once win."""
    pos = 49.5 + 9.4 * np.arange(41)
    pos = np.floor(pos) + 0.5  # marks on whole rows, as a screen draws them
    keep = sr._evenly_spaced(pos)
    assert keep.all()
    index, pitch = sr._fit_pitch(pos[keep])
    assert pitch == pytest.approx(9.4, rel=0.005) and index[-1] == 40


def test_fine_ticks_of_a_small_screen_read_within_1_percent(needs_ocr):
    shot = ps.screen(11, (640, 480), depth_mm=80.0, style="green_2mm")  # once read 18.9 px a step: refused
    cal, readings = from_screen(shot.image, detect_roi(shot.image))
    assert cal.source == "screen", cal.note
    assert rel_err(cal.spacing_mm, shot.spacing_mm) < 0.01 and readings[0].mm_per_tick == 2.0


def test_labels_read_straight_or_mirrored_the_one_that_makes_a_scale_counts():
    ends = row(n=7, pitch=60.0, period=None)  # 1 cm ticks, 0 and 60 (mm) at the ends: 360 px = 60 mm
    # "60" read straight, its mirror read as "0" (once kept for having more numbers: no scale);
    # the "0" at the top reads the same either way and joins the straight reading.
    readings = sr._orientations({6: 60.0}, {0: 0.0, 6: 0.0})
    assert ((0.0, 0), (60.0, 6)) in readings
    v = sr._one_orientation([sr.interpret(ends, lab, (), 360.0) for lab in readings])
    assert v.step_mm == 10.0
    # Both readings make a scale but of different steps (10 mm and 2 mm a tick): refused.
    both = [sr.interpret(ends, lab, (), 360.0) for lab in (((0.0, 0), (6.0, 6)), ((0.0, 0), (1.2, 6)))]
    assert [b.step_mm for b in both] == [10.0, 2.0]
    v = sr._one_orientation(both)
    assert v.step_mm is None and "straight and mirrored" in v.reason


def test_a_label_with_a_leading_zero_is_a_misread():
    """The mirror of "60" read as "03" made the mirrored labels 0 and 3, a scale of 5 mm steps
    beside the straight one's 10 mm: refused. No scale writes "03": that reading is no label."""
    assert [ocr.number(t) for t in ("0", "03", "05", "00", "60", "0.5", "O", "l0")] == [0.0, None, None, None, 60.0,
                                                                                       0.5, 0.0, 10.0]
    ends = row(n=7, pitch=60.0, period=None)  # 1 cm ticks, 0 and 60 (mm) at the ends
    straight = {6: ocr.number("60")}
    flipped = {k: v for k, v in ((0, ocr.number("0")), (6, ocr.number("03"))) if v is not None}
    v = sr._one_orientation([sr.interpret(ends, lab, (), 360.0) for lab in sr._orientations(straight, flipped)])
    assert v.step_mm == 10.0, v.reason


@pytest.mark.parametrize("size,seed,depth", [((640, 480), 52177, 45.0), ((1920, 1080), 455132, 65.0),
                                             ((1024, 768), 278768, 75.0), ((1280, 720), 807834, 70.0)])
def test_0_and_the_depth_in_mm_at_the_ends_are_read(size, seed, depth, needs_ocr):
    """Screens of that style once refused: image speckle beside a tick taken for a label, the
    mirrored reading of the labels ("0", "0") kept over the straight one ("60"), or the labels'
    height guessed from image speckle (6 px for 10 px labels), so that they were not cut."""
    shot = ps.screen(seed, size, depth_mm=depth, style="mm_ends")
    cal, readings = from_screen(shot.image, detect_roi(shot.image))
    assert cal.source == "screen", cal.note
    assert rel_err(cal.spacing_mm, shot.spacing_mm) < 0.01 and readings[0].mm_per_tick == 10.0
    assert f"labels ['0', '{10 * int(depth // 10)}']" in cal.note  # the last whole cm


@pytest.mark.parametrize("size,seed,depth", [((640, 480), 69585, 110.0), ((800, 600), 229818, 115.0),
                                             ((640, 480), 624040, 125.0)])
def test_a_sector_scale_starts_at_its_apex_not_at_a_letter_above_it(size, seed, depth, needs_ocr):
    """Sector screens once refused ("readout 110 mm ... 12 steps"): a piece of the title's
    letters lies on the dots' line one step above the virtual apex and was counted as a dot.
    The scale starts at the apex (where the fan's edges meet): no mark before it counts."""
    shot = ps.screen(seed, size, depth_mm=depth, style="sector_dots")
    cal, readings = from_screen(shot.image, detect_roi(shot.image))
    assert cal.source == "screen", cal.note
    assert rel_err(cal.spacing_mm, shot.spacing_mm) < 0.01 and readings[0].mm_per_tick == 10.0
    assert len(readings[0].positions) == int(depth // 10) + 1  # a dot at each cm from 0 at the apex

@pytest.mark.parametrize("conf,used", [((34.0, 60.0), True), ((60.0, 34.0), True), ((34.0, 34.0), False)])
def test_a_readout_read_the_same_twice_counts_at_the_surer_reading(conf, used, monkeypatch):
    """Two readings of a readout line at two enlargements ("11cm" on the Philips CX50 once read
    at 34 and 60): the same depth twice counts when either reading is sure; both unsure, not."""
    shot = ps.screen(3, (1024, 768), depth_mm=110.0, style="cm_blue")
    monkeypatch.setattr(ocr, "available", lambda: None)

    def read_words(crops, text_px, whitelist=None, in_line=False):
        half = len(crops) // 2  # each cut is given twice: first and second reading
        return [ocr.Word("11cm", j, (0.0, 0.0, 10.0, 5.0), conf[j >= half]) for j in range(len(crops))]

    monkeypatch.setattr(ocr, "read_words", read_words)
    _, readouts, _ = sr.read_numbers(shot.image, shot.roi, [])
    assert readouts == ((110.0,) if used else ())


# --- DICOM regions and the live calibrator -----------------------------------------------------


# --- decimal points Tesseract drops ---------------------------------------------------------


def text_line(text: str, scale: float, font: int) -> np.ndarray:
    """A line of screen text, bright on dark chrome, through a JPEG encode as a capture holds it."""
    img = np.full((40, 200, 3), 14, np.uint8)
    cv2.putText(img, text, (6, 28), font, scale, (220, 220, 220), 1, cv2.LINE_AA)
    return cv2.imdecode(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])[1], cv2.IMREAD_COLOR)


@pytest.mark.parametrize("font", [cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX])
@pytest.mark.parametrize("scale", [0.5, 1.0])  # digits 9 and 17 px high
def test_a_decimal_point_is_seen_where_the_screen_draws_one(font, scale):
    for text, point in (("7.5cm", (1, 1)), ("Depth 2.5 cm", (1, 1)), ("12.5cm", (2, 1)), ("4.0 cm", (1, 1))):
        assert sr.decimal_point(text_line(text, scale, font)) == point, text
    for plain in ("16cm", "11cm", "Depth 40 mm", "D 4cm", "10:23:00"):  # no point, and a colon is none
        assert sr.decimal_point(text_line(plain, scale, font)) is None, plain


def test_a_dropped_decimal_point_is_put_back_only_where_the_digits_fit():
    assert ocr.depth_readout("75cm") is None  # 75 cm: no B-mode is that deep
    assert ocr.depth_readout("75cm", (1, 1)) == 75.0
    assert ocr.depth_readout("Depth 25cm", (1, 1)) == 25.0
    assert ocr.depth_readout("125cm", (2, 1)) == 125.0
    assert ocr.depth_readout("7.5cm", (1, 1)) == 75.0  # read with its point: as it is
    assert ocr.depth_readout("Depth 40 mm", (1, 1)) is None  # 4.0 mm, no depth
    # Digits that do not match the point's (three read, one and one seen): as read.
    assert ocr.depth_readout("160cm", (1, 1)) is None and ocr.depth_readout("16cm", (2, 1)) == 160.0


@pytest.mark.parametrize("seed,depth", [(374696, 75.0), (335620, 75.0)])
def test_a_sector_readout_whose_point_tesseract_drops_is_read(seed, depth, tmp_path, needs_ocr):
    """640x480 sector screens through MJPEG once refused: their "7.5cm" read as "75cm" (no depth)."""
    shot = ps.screen(seed, (640, 480), depth_mm=depth, style="sector_dots")
    path = tmp_path / "sector.avi"
    ps.write_video(path, iter([shot]), fourcc="MJPG")
    ok, img = cv2.VideoCapture(str(path)).read()
    assert ok
    cal, readings = from_screen(img, detect_roi(img))
    assert cal.source == "screen", cal.note
    assert rel_err(cal.spacing_mm, shot.spacing_mm) < 0.01 and "readout 75 mm" in cal.note


def test_a_point_that_leaves_two_steps_is_refused(monkeypatch):
    """A speck taken for a point would make "16cm" 1.6 cm: 16 dots a cm apart would be 1 mm apart.
    When the readout as Tesseract read it confirms another step, the screen is refused."""
    shot = ps.screen(3, (1024, 768), depth_mm=160.0, style="sector_dots")
    roi = detect_roi(shot.image)
    numbers = {"pointed": (16.0,), "as read": (160.0,)}
    monkeypatch.setattr(sr, "read_numbers", lambda img, roi, rows: ([((),) for _ in rows], numbers["pointed"],
                                                                     numbers["as read"]))
    v, _ = sr.read_depth_scale(shot.image, roi)
    assert v.step_mm is None and "decimal point" in v.reason and "1 or 10 mm" in v.reason
    # Each alone confirms its step: 16 mm on 1 mm dots, 160 mm on 1 cm dots.
    numbers["as read"] = numbers["pointed"]
    assert sr.read_depth_scale(shot.image, roi)[0].step_mm == 1.0
    numbers["pointed"] = numbers["as read"] = (160.0,)
    v, _ = sr.read_depth_scale(shot.image, roi)
    assert v.step_mm == 10.0 and rel_err((v.mm_per_px,), shot.spacing_mm[:1]) < 0.01


def test_spacing_from_a_real_dicom_region():
    pydicom = pytest.importorskip("pydicom")
    ds = pydicom.dcmread(DICOM / "JPGLosslessP14SV1_1s_1f_8b.dcm", stop_before_pixels=True)
    cal = from_dicom_region(ds.SequenceOfUltrasoundRegions[0])
    assert cal.source == "dicom"
    assert cal.spacing_mm == pytest.approx((0.25476696592378157, 0.25476696592378157))
    ds2 = pydicom.dcmread(DICOM / "OBXXXX1A.dcm", stop_before_pixels=True)
    doppler = ds2.SequenceOfUltrasoundRegions[1]  # a spectral region: seconds and cm/s, not cm
    assert from_dicom_region(doppler).spacing_mm is None


def test_calibrator_reports_a_depth_change_and_recalibrates(needs_ocr):
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


def test_calibrator_notices_a_scale_change_with_the_same_roi(needs_ocr):
    shot = ps.screen(1, (1024, 768), depth_mm=40.0, lateral_scale=False)
    cal = Calibrator()
    first, _ = cal.update(shot.image, shot.roi, seq=0)
    assert first.source == "screen"
    assert cal.update(shot.image, shot.roi, seq=1) == (first, None)
    # Zoom to 30 mm in the same rectangle: the scale is redrawn with its ticks further apart.
    lay = ps.layout((1024, 768), 40.0, seed=1, lateral_scale=False)
    x, y, w, h = lay.roi
    row_mm = 30.0 / h
    ticks = tuple((y + int(k * 5.0 / row_mm), k % 2 == 0) for k in range(7))
    zoomed = ps.chrome(replace(lay, depth_mm=30.0, spacing_mm=(row_mm, 30.0 / w), depth_ticks=ticks), 1)
    zoomed[y : y + h, x : x + w] = shot.image[y : y + h, x : x + w]
    new, change = cal.update(zoomed, lay.roi, seq=2)
    assert change is not None and change.reason == "scale changed" and change.old == first
    assert new.spacing_mm[0] == pytest.approx(row_mm, rel=0.01)


def test_calibrator_with_the_depth_setting_follows_the_roi():
    cal = Calibrator(depth_mm=40.0)
    img = np.zeros((600, 800, 3), np.uint8)
    first, change = cal.update(img, (100, 50, 400, 500), seq=0)
    assert first.source == "depth_mm" and first.spacing_mm == (0.08, 0.08) and change.reason == "first frame"
    assert cal.update(img, (100, 50, 400, 500), seq=1) == (first, None)
    second, change = cal.update(img, (100, 50, 320, 400), roi_changed=True, seq=2)
    assert second.spacing_mm == (0.1, 0.1) and change.reason == "ROI changed"


def test_a_refused_scale_is_not_read_again_until_it_changes(without_ocr, monkeypatch):
    shot = ps.screen(3, (640, 480))
    calls = []
    real = sr.read_numbers
    monkeypatch.setattr(sr, "read_numbers", lambda *a: calls.append(1) or real(*a))
    cal = Calibrator(retry_every=2)
    for seq in range(6):
        got, _ = cal.update(shot.image, shot.roi, seq=seq)
        assert got.source == "refused"
    assert len(calls) == 1


def test_fixed_calibration_is_used_as_is():
    fixed = from_config(0.08)
    cal = Calibrator(fixed=fixed)
    got, change = cal.update(np.zeros((10, 10), np.uint8), (0, 0, 5, 5), seq=0)
    assert got is fixed and change.reason == "fixed"
    assert cal.update(np.zeros((10, 10), np.uint8), (0, 0, 5, 5), seq=1) == (fixed, None)


def test_calibrator_rejects_a_strange_tick_spacing():
    with pytest.raises(ConfigError, match="tick spacing"):
        Calibrator(tick_mm=3)


@pytest.mark.parametrize("delta_cm, spacing", [(10.0, None), (0.0, None), ("x", None), (0.02, (0.2, 0.2))])
def test_a_dicom_spacing_no_scanner_has_is_not_used(delta_cm, spacing):
    region = {"PhysicalUnitsXDirection": 3, "PhysicalUnitsYDirection": 3, "PhysicalDeltaX": delta_cm,
              "PhysicalDeltaY": delta_cm}
    cal = from_dicom_region(region)
    assert cal.spacing_mm == (pytest.approx(spacing) if spacing else None)
    if delta_cm == 10.0:
        assert cal.note == "dicom spacing 100 x 100 mm per pixel is outside 0.001-10 mm: not used"


@pytest.mark.parametrize("stated", [(0.2,), (0.2, 0.2, 1.0), [[0.2, 0.2]], 0.2, ("x", "y")])
def test_a_source_spacing_must_be_row_and_column(stated):
    cal = from_source(stated)
    assert cal.spacing_mm is None and cal.source == "none"
    assert cal.note == f"source spacing {stated!r} is not (row, column) mm per pixel: not used"
    assert from_source(np.array([0.2, 0.25])) == Calibration((0.2, 0.25), "source", "stated by the source")


def test_calibrator_without_a_roi_knows_no_spacing(needs_ocr):
    shot = ps.screen(3, (1024, 768))
    cal = Calibrator()
    none, change = cal.update(shot.image, None, seq=0)
    assert none.spacing_mm is None and change.reason == "no ROI"
    assert cal.update(shot.image, None, seq=1) == (none, None)
    found, change = cal.update(shot.image, shot.roi, roi_changed=True, seq=2)
    assert change.reason == "ROI changed" and rel_err(found.spacing_mm, shot.spacing_mm) < 0.01


# --- every screen style, through a real MJPEG encode ------------------------------------------

STYLE_CASES = [("quarter", (640, 480), 35.0), ("cm_blue", (1024, 768), 90.0), ("mm_ends", (800, 600), 50.0),
               ("green_2mm", (1280, 720), 45.0), ("yellow_1mm", (1920, 1080), 30.0),
               ("sector_dots", (1024, 768), 120.0)]


@pytest.fixture(scope="module")
def styled_screens(tmp_path_factory):
    """One screen of each non-default style, written into one MJPEG .avi per size and read back."""
    folder = tmp_path_factory.mktemp("styles")
    out = {}
    for style, size, depth in STYLE_CASES:
        shot = ps.screen(11, size, depth_mm=depth, style=style)
        path = folder / f"{style}.avi"
        ps.write_video(path, iter([shot]), fourcc="MJPG")
        ok, img = cv2.VideoCapture(str(path)).read()
        assert ok
        out[style] = (img, shot)
    return out


@pytest.mark.parametrize("style", [c[0] for c in STYLE_CASES])
def test_every_screen_style_is_read_within_1_percent(style, styled_screens, needs_ocr):
    img, shot = styled_screens[style]
    cal, readings = from_screen(img, detect_roi(img))
    assert cal.source == "screen", cal.note
    assert rel_err(cal.spacing_mm, shot.spacing_mm) < 0.01
    assert readings[0].mm_per_tick == ps.STYLES[style].step_mm
    assert readings[0].kind == ("dots" if style == "sector_dots" else "ticks")


def test_cm_labels_with_3_short_ticks_between_are_never_read_4x(styled_screens, without_ocr):
    """The case that once read 10 mm per 2.5 mm tick with no flag: without numbers it is refused."""
    img, shot = styled_screens["quarter"]
    cal, readings = from_screen(img, detect_roi(img))
    assert cal.spacing_mm is None and cal.source == "refused"
    assert readings[0].px_per_tick == pytest.approx(2.5 / shot.spacing_mm[0], rel=0.02)


@pytest.mark.parametrize("given, expected", [(None, "1"), ("3", "3")])
def test_each_tesseract_run_gets_one_openmp_thread_unless_the_environment_says(given, expected):
    """Tesseract's OpenMP threads slow a strip of labels down and would spin on the interpreter's
    cores: the OCR module limits them to one, and an OMP_THREAD_LIMIT already set is kept."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "OMP_THREAD_LIMIT"}
    if given is not None:
        env["OMP_THREAD_LIMIT"] = given
    code = "import os, edge.screen.ocr; print(os.environ['OMP_THREAD_LIMIT'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == expected
