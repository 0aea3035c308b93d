"""benchmarks/jpeg_decode.py on a small MJPEG video written by OpenCV: every decode size is
decoded and reported with its frame size; a file that is no video is refused in one line."""

from pathlib import Path

import cv2
import numpy as np
import pytest
from benchmark_module import load

jd = load("jpeg_decode")


def mjpeg(path: Path, frames: int = 4, size=(160, 120)) -> Path:
    w, h = size
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (w, h))
    assert out.isOpened()
    rng = np.random.default_rng(0)
    for _ in range(frames):
        out.write(rng.integers(0, 256, (h, w, 3), np.uint8))
    out.release()
    return path


def test_each_decode_size_is_timed_with_its_frame_size(tmp_path, capsys):
    video = mjpeg(tmp_path / "screen.avi")
    assert jd.main(["--video", str(video), "--frames", "3", "--rounds", "2"]) == 0
    out = capsys.readouterr().out
    assert "screen.avi: 3 frames" in out
    for name, size in (
        ("grayscale ", "160x120"),
        ("grayscale, half size", "80x60"),
        ("grayscale, quarter size", "40x30"),
        ("colour", "160x120"),
    ):
        line = next(ln for ln in out.splitlines() if ln.strip().startswith(name))
        assert size in line and "CPU ms per frame: median" in line and line.endswith("page faults")


def test_each_picture_can_be_freed_before_the_next(tmp_path, capsys):
    video = mjpeg(tmp_path / "screen.avi")
    assert jd.main(["--video", str(video), "--frames", "3", "--rounds", "1", "--held", "0"]) == 0
    assert "0 decoded pictures kept alive" in capsys.readouterr().out


def test_a_file_that_is_no_video_is_refused(tmp_path):
    bad = tmp_path / "notes.avi"
    bad.write_text("not a video")
    with pytest.raises(SystemExit, match="jpeg_decode: error: .*notes.avi"):
        jd.main(["--video", str(bad), "--frames", "2", "--rounds", "1"])
