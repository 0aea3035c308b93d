"""The scanner-screen phantom: layout truth, determinism, depth change, video files."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.sim import phantom_screen as ps
from edge.errors import ConfigError


@pytest.mark.parametrize("size", ps.SIZES)
@pytest.mark.parametrize("depth", [30.0, 40.0, 50.0])
def test_layout_truth_is_consistent(size, depth):
    lay = ps.layout(size, depth, 40.0, seed=2)
    x, y, w, h = lay.roi
    assert x > 0 and y > 0 and x + w < size[0] and y + h < size[1]
    row_mm, col_mm = lay.spacing_mm
    assert h * row_mm == pytest.approx(depth) and w * col_mm == pytest.approx(40.0)
    assert abs(row_mm / col_mm - 1) < 0.01  # square pixels up to rounding
    assert lay.scale_x > x + w  # the depth scale sits beside the image, not on it
    assert len(lay.depth_ticks) == int(depth // 5) + 1


def test_screen_is_deterministic_and_holds_the_bmode():
    a, b = ps.screen(5, (640, 480)), ps.screen(5, (640, 480))
    assert np.array_equal(a.image, b.image) and a.roi == b.roi
    assert not np.array_equal(a.image, ps.screen(6, (640, 480)).image)
    assert a.image.shape == (480, 640, 3) and a.image.dtype == np.uint8
    x, y, w, h = a.roi
    bmode = a.image[y : y + h, x : x + w, 0]
    expected = cv2.resize(a.scan.image, (w, h), interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(bmode, expected)
    # Patient fields are on the screen, outside the B-mode rectangle.
    assert a.image[:y].max() > 150


def test_clip_changes_depth_at_the_given_frame():
    shots = list(ps.screen_clip(3, frames=6, size=(640, 480), depths=(40.0, 50.0), change_at=4))
    assert [s.index for s in shots] == list(range(6))
    assert {s.depth_mm for s in shots[:4]} == {40.0} and {s.depth_mm for s in shots[4:]} == {50.0}
    assert shots[3].roi != shots[4].roi and shots[4].roi == shots[5].roi
    assert shots[4].spacing_mm[0] == pytest.approx(shots[3].spacing_mm[0] * 50 / 40, rel=0.01)
    again = list(ps.screen_clip(3, frames=6, size=(640, 480), depths=(40.0, 50.0), change_at=4))
    assert all(np.array_equal(p.image, q.image) for p, q in zip(shots, again))


@pytest.mark.parametrize("bad", [{"depths": (40.0, 50.0), "change_at": ()}, {"depths": (40.0,), "change_at": 3}])
def test_clip_rejects_change_points_that_do_not_fit(bad):
    with pytest.raises(ConfigError):
        next(ps.screen_clip(1, frames=5, size=(640, 480), **bad))


def test_layout_rejects_a_tiny_screen():
    with pytest.raises(ConfigError, match="too small"):
        ps.layout((200, 100))


@pytest.mark.parametrize("name,fourcc", [("clip.avi", "MJPG"), ("clip.mp4", "mp4v")])
def test_write_clip_gives_a_video_opencv_reads_back(tmp_path, name, fourcc):
    path = tmp_path / name
    truth = ps.write_clip(path, 4, frames=5, size=(640, 480), depths=(40.0, 50.0), change_at=3)
    assert len(truth) == 5 and truth[2]["depth_mm"] == 40.0 and truth[3]["depth_mm"] == 50.0
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened()
    codec = int(cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode().lower()
    assert codec in {"mjpg": {"mjpg"}, "mp4v": {"mp4v", "fmp4"}}[fourcc.lower()]  # as the decoder names it
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    cap.release()
    assert len(frames) == 5 and frames[0].shape == (480, 640, 3)
    # Lossy, but the picture is the screen: the B-mode area matches closely.
    ref = next(ps.screen_clip(4, frames=1, size=(640, 480), depths=(40.0, 50.0), change_at=3)).image
    assert np.abs(frames[0].astype(int) - ref.astype(int)).mean() < 6


def test_write_video_names_a_path_it_cannot_write(tmp_path):
    from edge.errors import SinkError

    with pytest.raises(SinkError, match="no default codec"):
        ps.write_clip(tmp_path / "clip.xyz", 1, frames=1, size=(640, 480))


@pytest.mark.parametrize("style", [s for s in ps.STYLES if s != "default"])
def test_every_style_keeps_square_pixels_and_its_truth(style):
    st = ps.STYLES[style]
    depth = 100.0 if st.marks == "dots" else 40.0
    lay = ps.layout((1280, 720), depth, 40.0, seed=3, style=style)
    row_mm, col_mm = lay.spacing_mm
    assert abs(row_mm / col_mm - 1) < 0.01
    x, y, w, h = lay.roi
    if lay.apex is None:
        assert h * row_mm == pytest.approx(depth)
    else:  # a sector: its depth runs from the apex to the bottom of its arc
        assert (y + h - lay.apex[1]) * row_mm == pytest.approx(depth)
        assert ps.fan_mask(lay).mean() > 0.4
    marks = lay.depth_ticks
    assert len(marks) == int(depth // st.step_mm + 1e-9) + 1
    steps = np.diff([r for r, _ in marks]) * row_mm
    assert np.all(np.abs(steps - st.step_mm) <= row_mm)  # every mark one step (to the pixel) on
    shot = ps.screen(3, (1280, 720), depth_mm=depth, style=style)
    assert shot.spacing_mm == lay.spacing_mm and shot.roi == lay.roi


def test_an_unknown_style_is_refused():
    with pytest.raises(ConfigError, match="unknown screen style"):
        ps.layout((640, 480), style="fancy")
