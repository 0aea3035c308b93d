"""Video file source: real files written by OpenCV, damaged files, pacing."""

from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest

from edge.sim import phantom_screen as ps
from edge.errors import SourceError
from edge.sources import open_source
from edge.sources.video import VideoSource


def numbered_clip(path, n=12, size=(160, 120), fourcc="MJPG", fps=30.0):
    """A small clip whose frame i is uniformly gray at level 10*i (easy to recognise)."""
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    assert w.isOpened()
    for i in range(n):
        img = np.full((size[1], size[0], 3), 10 * i, np.uint8)
        img[40:80, 40:120] = np.random.default_rng(i).integers(0, 255, (40, 80, 3), dtype=np.uint8)
        w.write(img)
    w.release()
    return path


def level(frame) -> int:
    return int(round(float(frame.image[5:30, 5:30].mean()) / 10))


def damage_frame(path, i):
    """Frame `i` of an MJPEG clip loses its JPEG header (it no longer decodes)."""
    data = bytearray(path.read_bytes())
    starts = [k for k in range(len(data) - 1) if data[k] == 0xFF and data[k + 1] == 0xD8]
    data[starts[i] : starts[i] + 400] = bytes(400)
    path.write_bytes(bytes(data))


class FakeClock:
    """A source's clock and sleep: time moves only when slept or advanced, never by itself."""

    def __init__(self, t: float = 100.0):
        self.t = t
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


@pytest.fixture(scope="module")
def screen_avi(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "screens.avi"
    truth = ps.write_clip(path, 2, frames=6, size=(640, 480), depths=(40.0, 50.0), change_at=4)
    return path, truth


def test_reads_every_frame_of_a_screen_recording(screen_avi):
    path, truth = screen_avi
    src = open_source(str(path)).open()
    assert isinstance(src, VideoSource) and not src.live and src.fps == pytest.approx(30.0)
    frames = list(src)
    src.close()
    assert len(frames) == len(truth) == src.frame_count and src.corrupt == 0
    assert [f.seq for f in frames] == list(range(6))
    assert frames[0].image.shape == (480, 640, 3) and frames[0].image.dtype == np.uint8
    assert frames[0].spacing_mm is None  # a screen recording is not calibrated by the source
    assert all(b.t_capture >= a.t_capture for a, b in zip(frames, frames[1:]))


def test_file_url_with_pace_option(screen_avi):
    path, _ = screen_avi
    src = open_source(f"file://{path}?pace=1")
    assert isinstance(src, VideoSource) and src.pace


def test_pacing_waits_for_each_frame_time(tmp_path):
    path = numbered_clip(tmp_path / "n.avi", n=6, fps=25.0)
    now = [100.0]
    slept = []

    def sleep(s):
        slept.append(s)
        now[0] += s

    src = VideoSource(path, pace=True, clock=lambda: now[0], sleep=sleep).open()
    frames = list(src)
    assert len(frames) == 6
    assert sum(slept) == pytest.approx(5 / 25.0)  # frame k is due k/fps after the start
    assert [f.t_capture for f in frames] == pytest.approx([100.0 + k / 25.0 for k in range(6)])


@pytest.mark.parametrize("grayscale_only", [False, True])
def test_a_corrupt_frame_is_skipped_and_counted(tmp_path, grayscale_only):
    path = numbered_clip(tmp_path / "n.avi")
    data = bytearray(path.read_bytes())
    starts = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD8]  # JPEG starts
    assert len(starts) == 12
    data[starts[5] : starts[5] + 400] = bytes(400)  # frame 5 loses its header
    path.write_bytes(bytes(data))
    src = VideoSource(path)
    src.grayscale_only = grayscale_only
    frames = list(src.open())
    assert src.encoded == grayscale_only
    assert src.corrupt == 1 and len(frames) == 11
    assert [level(f) for f in frames] == [0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11]


@pytest.mark.parametrize("grayscale_only", [False, True])
def test_a_truncated_file_ends_early_and_counts_the_lost_frames(tmp_path, grayscale_only):
    path = numbered_clip(tmp_path / "n.avi")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    src = VideoSource(path)
    src.grayscale_only = grayscale_only
    frames = list(src.open())
    assert 4 <= len(frames) < 12
    assert len(frames) + src.corrupt == 12


def test_grayscale_only_decodes_the_gray_of_jpeg_frames_and_their_colour_on_demand(screen_avi):
    path, _ = screen_avi
    with VideoSource(path) as src:
        full = list(src)
    gray_src = VideoSource(path)
    gray_src.grayscale_only = True
    with gray_src:
        frames = list(gray_src)
    assert gray_src.encoded and len(frames) == len(full) and gray_src.corrupt == 0
    for f, c in zip(frames, full):
        assert f.image.shape == c.image.shape[:2] and f.image.dtype == np.uint8 and f.seq == c.seq
        # two JPEG decoders: the same picture to a few levels (chroma upsampling differs)
        assert np.abs(f.image.astype(int) - cv2.cvtColor(c.image, cv2.COLOR_BGR2GRAY)).max() <= 4
        colour = f.screen()
        assert colour.shape == c.image.shape and np.abs(colour.astype(int) - c.image).mean() < 2
        assert f.screen() is colour  # decoded once
    assert c.colour is None and c.screen() is c.image  # a colour-decoded frame is its own screen


def test_grayscale_only_leaves_other_codecs_decoded_as_usual(tmp_path):
    path = numbered_clip(tmp_path / "n.avi", n=4, fourcc="XVID")
    src = VideoSource(path)
    src.grayscale_only = True
    frames = list(src.open())
    assert not src.encoded and len(frames) == 4 and frames[0].image.ndim == 3 and frames[0].colour is None
    assert [level(f) for f in frames] == [0, 1, 2, 3]


@pytest.mark.parametrize("grayscale_only", [False, True])
def test_a_looped_clip_starts_again_with_frame_numbers_and_pacing_going_on(tmp_path, grayscale_only):
    path = numbered_clip(tmp_path / "n.avi", n=5, fps=25.0)
    data = bytearray(path.read_bytes())
    starts = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD8]
    data[starts[2] : starts[2] + 400] = bytes(400)  # frame 2 cannot be decoded
    path.write_bytes(bytes(data))
    url = open_source(f"file://{path}?loop=1&pace=1")
    assert isinstance(url, VideoSource) and url.loop and url.pace
    now = [0.0]
    src = VideoSource(path, pace=True, loop=True, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    src.grayscale_only = grayscale_only
    src.open()
    frames = [src.read() for _ in range(10)]
    assert [level(f) for f in frames] == [0, 1, 3, 4, 0, 1, 3, 4, 0, 1]
    assert [f.seq for f in frames] == list(range(10)) and src.passes == 2 and src.corrupt == 2
    assert [f.t_capture for f in frames] == pytest.approx([k / 25.0 for k in range(10)])
    src.close()


def test_a_looped_clip_without_one_good_frame_ends(tmp_path):
    path = tmp_path / "bad.avi"
    numbered_clip(path, n=3)
    data = bytearray(path.read_bytes())
    for i in [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD8]:
        data[i : i + 400] = bytes(400)
    path.write_bytes(bytes(data))
    src = VideoSource(path, loop=True).open()
    assert src.read() is None and src.passes == 0


def test_missing_file_is_one_clear_error(tmp_path):
    with pytest.raises(SourceError, match="no such video file .*nothing.mp4"):
        VideoSource(tmp_path / "nothing.mp4").open()


def test_a_file_that_is_not_a_video_is_one_clear_error(tmp_path):
    bad = tmp_path / "notes.mp4"
    bad.write_bytes(b"this is not a video" * 100)
    with pytest.raises(SourceError, match="cannot open video .*notes.mp4"):
        VideoSource(bad).open()


def test_unknown_video_option_is_rejected(screen_avi):
    path, _ = screen_avi
    with pytest.raises(SourceError, match="unknown video option"):
        open_source(f"file://{path}?speed=2")


def test_read_before_open_is_an_error(screen_avi):
    with pytest.raises(SourceError, match="before open"):
        VideoSource(screen_avi[0]).read()


def live_clip(path, clock, **kw):
    return VideoSource(path, live=True, clock=clock, sleep=clock.sleep, **kw)


def read_slowly(src, clock, periods, fps, most=100):
    """The frames a reader gets that takes `periods` frame times after each one."""
    frames = []
    while len(frames) < most and (frame := src.read()) is not None:
        frames.append(frame)
        clock.t += periods / fps
    return frames


@pytest.mark.parametrize("grayscale_only", [False, True])
def test_live_a_slow_reader_gets_the_newest_frame_and_the_overtaken_ones_are_dropped(tmp_path, grayscale_only):
    clock = FakeClock()  # 32 fps: every time below is exact in binary
    src = live_clip(numbered_clip(tmp_path / "n.avi", n=12, fps=32.0), clock)
    src.grayscale_only = grayscale_only
    src.open()
    assert src.live and src.pace and src.encoded == grayscale_only
    frames = read_slowly(src, clock, 2.5, 32.0)
    src.close()
    # frame n arrives at 100 + n/32; each read comes 2.5 frame times after the one before; the
    # last frame of the clip has nothing after it to overtake it
    assert [f.seq for f in frames] == [0, 2, 5, 7, 10, 11]
    assert [level(f) for f in frames] == [f.seq for f in frames]
    assert [f.t_capture for f in frames] == [100.0 + f.seq / 32.0 for f in frames]
    assert src.dropped == 6 and src.corrupt == 0 and clock.slept == []


def test_live_a_fast_reader_gets_every_frame_each_at_its_arrival(tmp_path):
    clock = FakeClock()
    src = live_clip(numbered_clip(tmp_path / "n.avi", n=6, fps=25.0), clock).open()
    frames = list(src)
    assert [f.seq for f in frames] == [level(f) for f in frames] == list(range(6))
    assert [f.t_capture for f in frames] == pytest.approx([100.0 + k / 25.0 for k in range(6)])
    assert clock.slept == pytest.approx([1 / 25.0] * 5)  # the first frame arrives at the first read
    assert src.dropped == 0


@pytest.mark.parametrize("grayscale_only", [False, True])
def test_live_and_loop_number_the_frames_across_passes_with_gaps_for_the_corrupt(tmp_path, grayscale_only):
    path = numbered_clip(tmp_path / "n.avi", n=5, fps=25.0)
    damage_frame(path, 2)
    clock = FakeClock(0.0)
    src = live_clip(path, clock, loop=True)
    src.grayscale_only = grayscale_only
    src.open()
    frames = [src.read() for _ in range(8)]
    assert [level(f) for f in frames] == [0, 1, 3, 4, 0, 1, 3, 4]
    assert [f.seq for f in frames] == [0, 1, 3, 4, 5, 6, 8, 9]  # frame 2 of each pass is corrupt
    assert [f.t_capture for f in frames] == pytest.approx([f.seq / 25.0 for f in frames])
    assert src.passes == 1 and src.corrupt == 2 and src.dropped == 0
    src.close()


def test_live_and_loop_drop_across_the_end_of_a_pass(tmp_path):
    clock = FakeClock()
    src = live_clip(numbered_clip(tmp_path / "n.avi", n=5, fps=32.0), clock, loop=True).open()
    frames = read_slowly(src, clock, 2.5, 32.0, most=8)
    src.close()
    assert [f.seq for f in frames] == [0, 2, 5, 7, 10, 12, 15, 17]
    assert [level(f) for f in frames] == [f.seq % 5 for f in frames]
    assert [f.t_capture for f in frames] == [100.0 + f.seq / 32.0 for f in frames]
    assert src.passes == 3 and src.dropped == frames[-1].seq + 1 - len(frames) and clock.slept == []


def with_stated_rate(path, rate: int):
    """`path`, an AVI file, stating `rate` frames per second in its stream header."""
    data = bytearray(path.read_bytes())
    at = data.index(b"strh") + 8 + 20  # dwScale, dwRate of the AVI stream header
    data[at : at + 8] = struct.pack("<II", 1, rate)
    path.write_bytes(bytes(data))
    return path


def test_live_is_refused_for_a_video_without_a_usable_frame_rate(tmp_path):
    path = with_stated_rate(numbered_clip(tmp_path / "n.avi", n=3), 5000)
    with VideoSource(path) as src:  # played as fast as it decodes, it is fine
        assert src.fps is None and len(list(src)) == 3
    with pytest.raises(SourceError, match=r"live=1 needs the frame rate of video .*n\.avi.*5000 fps"):
        VideoSource(path, live=True).open()


def test_file_url_with_live_option_gives_a_live_source(screen_avi):
    path, _ = screen_avi
    src = open_source(f"file://{path}?live=1&loop=1")
    assert isinstance(src, VideoSource) and src.live and src.pace and src.loop
    assert not VideoSource.live  # the class stays a file's: only this instance is live
    assert not open_source(f"file://{path}?pace=1").live
    with pytest.raises(SourceError, match="live='2' is not 1 or 0"):
        open_source(f"file://{path}?live=2")
