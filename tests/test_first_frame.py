"""benchmarks/first_frame.py on a short phantom screen clip: both children read the same scale
and report their times; a source that is no video fails in one line."""

from pathlib import Path

import pytest
from benchmark_module import load

ff = load("first_frame")


def test_both_ways_read_the_same_scale_and_report_their_times(tmp_path, capsys, needs_ocr):
    video = tmp_path / "screen.avi"
    ff.write_screen_video(video, 2, (1280, 720), seed=3)
    assert ff.main(["--source", str(video), "--rounds", "1"]) == 0  # 0: one spacing read both ways
    out = capsys.readouterr().out
    assert "screen.avi: spacing read [" in out
    for label in ("Tesseract started ahead", "without"):
        for key in ("layout_and_scale_s", "model_and_measurement_s"):
            assert any(ln.strip().startswith(label) and f"{key}: median" in ln for ln in out.splitlines())


def test_a_source_that_is_no_video_fails_in_one_line(tmp_path):
    bad = tmp_path / "notes.avi"
    bad.write_text("not a video")
    with pytest.raises(SystemExit, match="first_frame: error: the child failed"):
        ff.main(["--source", str(Path(bad)), "--rounds", "1"])
