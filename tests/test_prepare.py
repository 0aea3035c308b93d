"""The stage that cuts a scanner screen down to its B-mode region and calibrates it, and the
phantom://screen source that exercises it with exact truth."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from edge.sim import phantom_screen as ps
from edge.screen.options import SpacingOptions, RoiOptions
from edge.errors import SourceError
from edge.frame import Frame
from edge.screen.prepare import Prepare
from edge.runtime.factory import open_source
from edge.sim.source import PhantomScreenSource, column_truth

SCREEN = "phantom://screen?seed={seed}&frames={frames}&size=640x480&depth=40,50&change_at={at}"
# The default screen at 640x480 prints its depth in text 7 px high that OCR often reads as
# "4.8 cm" for "4.0 cm": a readout that disagrees with the ticks, so the scale is refused
# (edge.screen.scale_reader). Tests that need the scale read use a size whose text is legible.
LEGIBLE = "phantom://screen?seed={seed}&frames={frames}&size=1024x768&depth=40,50&change_at={at}"


def edge_error(rect, truth) -> int:
    (x, y, w, h), (tx, ty, tw, th) = rect, truth
    return int(np.abs(np.array([x, y, x + w, y + h]) - [tx, ty, tx + tw, ty + th]).max())


def rel_error(found, truth) -> float:
    return float(np.max(np.abs(np.asarray(found) / np.asarray(truth) - 1.0)))


def frames_of(url: str) -> list[Frame]:
    with open_source(url) as src:
        return list(src)


def with_truth(url: str) -> list[tuple[Frame, dict]]:
    """The source's frames, each with its truth (kept by the source, matched by seq)."""
    with open_source(url) as src:
        return [(f, src.truth(f.seq)) for f in src]


def no_scale_screen(seed: int = 6) -> tuple[np.ndarray, tuple]:
    """A screen with the B-mode on flat chrome and nothing else: no scale, no text."""
    shot = ps.screen(seed, (640, 480))
    x, y, w, h = shot.roi
    img = np.full_like(shot.image, 18)
    img[y : y + h, x : x + w] = shot.image[y : y + h, x : x + w]
    return img, shot.roi


def test_screen_frames_are_cropped_and_calibrated_and_a_depth_change_is_one_event():
    frames = with_truth(SCREEN.format(seed=4, frames=8, at=4))
    prepare = Prepare(RoiOptions(min_gap=1), SpacingOptions())
    events = []
    for f, truth in frames:
        out, event = prepare(f, cropped=False)
        events += [event] if event else []
        assert edge_error(prepare.roi, truth["roi"]) <= 2, f.seq
        assert out.image.shape[:2] == (prepare.roi[3], prepare.roi[2])  # the ROI, not the screen
        assert rel_error(out.spacing_mm, truth["spacing_mm"]) < 0.01, f.seq
        assert out.seq == f.seq and out.t_capture == f.t_capture
    first, change = events
    assert first.initial and first.seq == 0 and first.calibration == "screen"
    assert not change.initial and change.seq == 4
    assert "ROI" in change.reason and "scale" in change.reason
    assert change.spacing_mm[0] == pytest.approx(change.old_spacing_mm[0] * 50 / 40, rel=0.01)
    json.dumps(change.as_dict())  # goes to the measurement log as is


def test_the_roi_checks_and_the_scale_share_one_grayscale_per_frame(monkeypatch):
    frames = frames_of(SCREEN.format(seed=4, frames=3, at=99))
    prepare = Prepare(RoiOptions(min_gap=1), SpacingOptions())
    seen: list[tuple] = []
    for part in (prepare.tracker, prepare.calibrator):
        update = part.update
        monkeypatch.setattr(part, "update", lambda *a, _u=update, **k: seen.append((a[0], k["gray"])) or _u(*a, **k))
    for f in frames:
        prepare(f, cropped=False)
    assert len(seen) == 2 * len(frames)
    for (screen, by_roi), (_, by_scale) in zip(seen[::2], seen[1::2]):
        assert by_roi is by_scale  # one conversion, not one per check
        assert np.array_equal(by_roi, cv2.cvtColor(screen, cv2.COLOR_BGR2GRAY))
    manual = Prepare(RoiOptions(rect=(10, 10, 64, 64)), SpacingOptions(spacing_mm=(0.1, 0.1)))
    update = manual.tracker.update
    monkeypatch.setattr(manual.tracker, "update", lambda *a, **k: seen.append(k["gray"]) or update(*a, **k))
    manual(frames[0], cropped=False)
    assert seen[-1] is None  # neither needs it: no grayscale made


def test_a_cropped_source_passes_through_with_its_own_spacing():
    frames = frames_of("phantom://clip?seed=2&frames=3&size=200x200")
    prepare = Prepare()
    outs = [prepare(f, cropped=True) for f in frames]
    assert all(out is f for (out, _), f in zip(outs, frames))  # nothing copied, nothing changed
    assert [e is not None for _, e in outs] == [True, False, False]
    assert outs[0][1].calibration == "source" and outs[0][1].roi == (0, 0, 200, 200)


def test_a_spacing_the_source_states_wins_over_the_config_which_overrides_the_screen():
    """The config's [calibration] describes a screen: a source that states its frames' spacing (a
    DICOM region, here the phantom clip) keeps its own, and the note says the config's was not
    used; a frame without one (cropped or not) takes the config's."""
    clip = frames_of("phantom://clip?seed=2&frames=1&size=200x200")[0]
    assert clip.spacing_mm is not None
    for options, what in ((SpacingOptions(spacing_mm=(0.2,)), "spacing_mm"), (SpacingOptions(depth_mm=60.0), "depth_mm")):
        out, event = Prepare(calibration=options)(clip, cropped=True)
        assert out.spacing_mm == clip.spacing_mm and event.calibration == "source"
        assert event.calibration_note == f"stated by the source; the config's [calibration] {what} is for screens and not used"
    unstated = Frame(clip.image, clip.t_capture, clip.seq)
    implausible = Frame(clip.image, clip.t_capture, clip.seq, spacing_mm=(20.0, 20.0))  # refused: not used
    for frame in (unstated, implausible):
        out, event = Prepare(calibration=SpacingOptions(spacing_mm=(0.2,)))(frame, cropped=True)
        assert out.spacing_mm == (0.2, 0.2) and event.calibration == "config"
    out, event = Prepare()(implausible, cropped=True)  # without a config: no spacing, and why
    assert out.spacing_mm is None and "outside 0.001-10 mm: not used" in event.calibration_note
    screen, truth = with_truth("phantom://screen?seed=5&frames=1&size=640x480")[0]
    out, event = Prepare(calibration=SpacingOptions(spacing_mm=(0.1, 0.12)))(screen)
    assert out.spacing_mm == (0.1, 0.12) and event.calibration == "config"
    assert edge_error(event.roi, truth["roi"]) <= 2


def test_a_manual_rect_is_cropped_without_detection():
    def fail(image):
        raise AssertionError("a manual ROI must not be detected")

    shots = with_truth("phantom://screen?seed=5&frames=2&size=1024x768")
    screen, truth = [f for f, _ in shots], shots[0][1]
    x, y, w, h = truth["roi"]
    prepare = Prepare(RoiOptions(rect=(x, y, w, h)), detector=fail)
    outs = [prepare(f) for f in screen]
    assert outs[0][0].image.shape[:2] == (h, w) and outs[1][1] is None
    assert np.array_equal(outs[0][0].image, screen[0].image[y : y + h, x : x + w])
    assert rel_error(outs[0][0].spacing_mm, truth["spacing_mm"]) < 0.01  # the scale is still read


def test_a_screen_without_a_scale_has_no_spacing():
    img, rect = no_scale_screen()
    prepare = Prepare()
    out, event = prepare(Frame(img, 0.0, 0))
    assert out.spacing_mm is None and event.spacing_mm is None and event.calibration == "none"
    assert edge_error(event.roi, rect) <= 2


def test_a_source_stated_spacing_is_used_for_an_uncropped_frame():
    img, rect = no_scale_screen()
    out, event = Prepare()(Frame(img, 0.0, 0, spacing_mm=(0.09, 0.09)))
    assert out.spacing_mm == (0.09, 0.09) and event.calibration == "source"


@pytest.mark.parametrize("stated", [(0.1,), (0.1, 0.1, 0.5)])
def test_a_source_spacing_that_is_not_row_and_column_is_not_used(stated):
    img = np.full((64, 80), 90, np.uint8)
    out, event = Prepare()(Frame(img, 0.0, 0, spacing_mm=stated), cropped=True)
    assert out.spacing_mm is None and event.spacing_mm is None and event.calibration == "none"
    assert "is not (row, column) mm per pixel: not used" in event.calibration_note


def test_a_screen_without_an_image_gives_no_frame():
    blank = np.full((480, 640, 3), 20, np.uint8)
    prepare = Prepare()
    assert prepare(Frame(blank, 0.0, 0)) == (None, None)
    assert prepare.frames_without_roi == 1 and prepare.roi is None


def test_screen_source_truth_is_per_roi_column():
    f, truth = with_truth("phantom://screen?seed=3&frames=1&size=640x480&depth=45")[0]
    assert f.image.shape == (480, 640, 3) and f.spacing_mm is None
    x, y, w, h = truth["roi"]
    assert truth["thickness_mm"].shape == (w,) and truth["depth_mm"] == 45.0
    assert PhantomScreenSource.cropped is False
    t = np.linspace(1.0, 2.0, 256)
    assert column_truth(t, 512)[[0, -1]] == pytest.approx([1.0, 2.0], abs=0.01)


@pytest.mark.parametrize("url", [
    "phantom://screen?colour=1",
    "phantom://screen?depth=40,50",  # a second depth needs a change frame
    "phantom://screen?size=640",
    "phantom://screen?preset=martian",
])
def test_bad_screen_options_are_source_errors(url):
    with pytest.raises(SourceError):
        open_source(url)


def test_a_tiny_screen_is_refused_on_open():
    with pytest.raises(SourceError, match="too small"):
        open_source("phantom://screen?size=200x100").open()


def test_run_on_a_phantom_screen_reports_the_layout(tmp_path):
    code = (
        "import sys; from edge.cli import main; rc = main(sys.argv[1:]);"
        "bad = [m for m in sys.modules if m.split('.')[0] == 'tensorflow'];"
        "print('TENSORFLOW LOADED' if bad else 'no tensorflow'); sys.exit(rc)"
    )
    args = ["run", "--source", LEGIBLE.format(seed=8, frames=6, at=3), "--display", "none", "--quiet",
            "--threads", "1", "--set", "roi.min_gap=1", "--out", str(tmp_path / "runs")]
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "no tensorflow" in r.stdout and "1 layout changes" in r.stdout
    run_dir = next((tmp_path / "runs").iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["layout"]["changes"] == 1 and summary["layout"]["calibration"] == "screen"
    records = [json.loads(line) for line in (run_dir / "frames.jsonl").read_text().splitlines()]
    assert [r["seq"] for r in records if "layout_event" in r] == [3]
    assert "layout" in records[0] and all(r["unit"] == "mm" for r in records)
    assert all(r["calibration"] == "screen" for r in records)  # every line says which calibration
    assert "ticks of 5 mm" in summary["layout"]["calibration_note"] and "(screen: depth and lateral scales: ticks of 5 mm" in r.stdout


def test_chrome_that_moves_by_itself_costs_frames_once_then_is_left_out_of_the_checks():
    """A trace running across the chrome (an ECG strip, a cine counter) fails the chrome check on
    every frame. The first failure holds frames back until a detection; that detection finds the
    same rectangle, so the moving cells are ignored from then on and every later frame is cut."""
    prepare = Prepare(RoiOptions(min_gap=6))
    results = []
    for shot in ps.screen_clip(5, frames=30, size=(640, 480)):
        image = shot.image.copy()
        x = 20 + 9 * shot.index  # a bright blip moving along a strip under the image
        image[450:470, x : x + 12] = 255
        frame, _ = prepare(Frame(image, 0.0, shot.index))
        results.append(frame)
        if frame is not None:
            assert edge_error(prepare.roi, shot.roi) <= 2
    held = [i for i, f in enumerate(results) if f is None]
    assert 0 < len(held) <= 6 and held == list(range(held[0], held[0] + len(held)))  # one run, at most min_gap long
    assert prepare.frames_layout_changing == len(held) and prepare.frames_without_roi == 0
    assert all(f is not None for f in results[held[-1] + 1 :]) and held[-1] < 15


def test_a_grayscale_decoded_screen_video_is_cut_and_calibrated_from_its_colour(tmp_path):
    """With the model on grayscale, `tlf-edge run` reads a video of JPEG frames as grayscale and
    decodes a frame's colour only to find the B-mode region or read the scale: the same region
    and spacing as from the colour frames, the crop being the grayscale of the B-mode region."""
    from edge.sources.video import VideoSource

    path = tmp_path / "screen.avi"
    truth = ps.write_clip(path, 3, frames=5, size=(1024, 768), depths=(40.0, 50.0), change_at=3)
    results = {}
    for grayscale_only in (False, True):
        src = VideoSource(path)
        src.grayscale_only = grayscale_only
        prepare = Prepare(RoiOptions(min_gap=1), SpacingOptions())
        with src:
            results[grayscale_only] = [(prepare(f, cropped=False)[0], prepare.roi) for f in src]
    for (gray, rect), (full, full_rect), t in zip(results[True], results[False], truth):
        assert gray.image.ndim == 2 and gray.colour is None and full.image.ndim == 3
        assert edge_error(rect, full_rect) <= 1 and edge_error(rect, t["roi"]) <= 2
        assert rel_error(gray.spacing_mm, t["spacing_mm"]) < 0.01
        assert rel_error(gray.spacing_mm, full.spacing_mm) < 0.005


def test_the_pipeline_asks_a_source_for_grayscale_when_its_model_takes_grayscale(tiny_bundle):
    from edge.model.segmenter import Segmenter
    from edge.runtime.pipeline import Pipeline
    from edge.sources.base import Source

    source = Source()
    segmenter = Segmenter(tiny_bundle, 1)
    assert segmenter.spec.channels == 1
    Pipeline(source, segmenter, [])
    assert source.grayscale_only
