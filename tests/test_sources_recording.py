"""The cart's own recordings read back: the sidecar `tlf-edge run` writes beside each AVI, and
RecordingSource delivering the frames with the spacing and times the cart used."""

from __future__ import annotations

import json
import shutil

import pytest

from analyze_inputs import cart_log, cart_recording
from edge.errors import SourceError
from edge.sources.recording import RecordingSource, read_sidecar, recording_of


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    return cart_recording(tmp_path_factory.mktemp("cart") / "data", seed=3, frames=5, overlay=False)


def test_the_sidecar_lists_every_recorded_frame_with_the_carts_spacing_and_times(clean):
    (video,) = (clean / "recordings").glob("*.avi")
    header, lines = read_sidecar(video)
    log = cart_log(clean)
    assert header["overlay"] is False and header["video"] == video.name
    assert [r["seq"] for r in lines] == [r["seq"] for r in log] and [r["index"] for r in lines] == list(range(len(log)))
    layout = log[0]["layout"]
    assert layout["calibration"] == "screen"
    for line, rec in zip(lines, log):
        assert line["t"] == pytest.approx(rec["t_capture"] - log[0]["t_capture"], abs=2e-6)
        assert line["spacing_mm"] == pytest.approx(layout["spacing_mm"], abs=1e-6) and line["calibration"] == "screen"
    assert not any(k in json.dumps(lines) for k in ("wall_time", "t_capture"))  # no clock time of the exam


def test_recording_source_gives_the_frames_as_the_cart_measured_them(clean):
    (video,) = (clean / "recordings").glob("*.avi")
    src = RecordingSource(video).open()
    frames = list(src)
    log = cart_log(clean)
    roi = log[0]["layout"]["roi"]
    assert src.cropped and src.calibrations == {"screen"} and len(frames) == len(log)
    assert frames[0].image.shape[:2] == (roi[3], roi[2])  # the B-mode region, nothing more
    assert frames[0].spacing_mm == pytest.approx(log[0]["layout"]["spacing_mm"], abs=1e-6)
    assert [src.clip_time(f) for f in frames] == [line["t"] for line in read_sidecar(video)[1]]


def test_a_recording_with_the_overlay_drawn_in_is_refused(tmp_path):
    data = cart_recording(tmp_path / "data", seed=3, frames=3, overlay=True)
    (video,) = (data / "recordings").glob("*.avi")
    with pytest.raises(SourceError, match=r"overlay .* drawn into its frames.*overlay = false"):
        RecordingSource(video).open()


def test_a_sidecar_line_cut_by_a_power_loss_leaves_its_frame_out(clean, tmp_path):
    (video,) = (clean / "recordings").glob("*.avi")
    shutil.copy(video, tmp_path / video.name)
    side = video.with_suffix(".jsonl").read_text()
    (tmp_path / video.with_suffix(".jsonl").name).write_text(side[: side.rindex("\n", 0, len(side) - 1) + 12])
    src = RecordingSource(tmp_path / video.name).open()
    frames = list(src)
    assert len(frames) == len(cart_log(clean)) - 1 and src.unlisted == 1


def test_later_parts_belong_to_the_first_and_other_videos_to_none(clean, tmp_path):
    (video,) = (clean / "recordings").glob("*.avi")
    assert recording_of(video) == video
    assert recording_of(video.with_name(video.stem + "-part2.avi")) == video
    other = tmp_path / "clip.avi"
    shutil.copy(video, other)
    assert recording_of(other) is None
    (tmp_path / "clip.jsonl").write_text('{"something": "else"}\n')
    with pytest.raises(SourceError, match="not the sidecar of a tlf-edge recording"):
        RecordingSource(other).open()
