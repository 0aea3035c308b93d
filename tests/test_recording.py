"""The recording sink on real phantom scans: ROI-sized MJPG AVI with the overlay, playable after a
clean close, after a full disk and (with an FFmpeg-based reader) after an abrupt stop."""

import io
import os
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.sim import phantom
from edge.errors import SinkError
from edge.frame import Frame, Segmentation
from edge.runtime.chain import measure, smooth
from edge.runtime.pipeline import Pipeline, RunStats
from edge.model.preprocess import PreprocessSpec, model_spacing, resize_labels
from edge.sinks.recording import BAND_COLOUR, RecordingSink, draw_overlay, overlay_text
from edge.sinks.base import Sink
from edge.measure.temporal import TemporalFilter
from edge.measure.thickness import ThicknessOptions

REPO = Path(__file__).resolve().parents[1]
ROI = (301, 257)  # odd on purpose: the file must keep the ROI size exactly
SPEC = PreprocessSpec()


def phantom_outputs(n, shape=ROI, seeds=(3, 4), colour=False):
    """n (Measurement, Segmentation) pairs from phantom scans, as the pipeline would make them."""
    scans = [phantom.scan(s, shape=shape) for s in seeds]
    temporal = TemporalFilter()
    out = []
    for i in range(n):
        s = scans[i % len(scans)]
        image = cv2.cvtColor(s.image, cv2.COLOR_GRAY2BGR) if colour else s.image
        frame = Frame(image, t_capture=i / 30, seq=i, spacing_mm=s.spacing_mm)
        spacing = model_spacing(s.spacing_mm, s.image.shape, SPEC)
        seg = Segmentation(frame, resize_labels(s.labels, SPEC), None, spacing, t_done=i / 30 + 0.01)
        m = smooth(measure(seg, ThicknessOptions()), temporal, spacing)
        out.append((m, seg))
    return out


def read_video(path, api=cv2.CAP_ANY):
    cap = cv2.VideoCapture(str(path), api)
    frames = []
    while cap.isOpened():
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    return frames, fps


def green(img):
    b, g, r = (img[..., k].astype(int) for k in range(3))
    return (g - np.maximum(b, r)) > 60


def band_outline(labels, shape):
    band = cv2.resize((labels == 1).astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST_EXACT)
    contours, _ = cv2.findContours(band, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    outline = np.zeros(shape, np.uint8)
    cv2.drawContours(outline, contours, -1, 1, 1)
    return outline.astype(bool)


@pytest.fixture(scope="module")
def outputs():
    return phantom_outputs(10)


def test_ten_frames_play_back_at_roi_size_with_the_overlay(tmp_path, outputs):
    sink = RecordingSink(tmp_path / "rec" / "clip.avi", fps=25.0).open()
    for m, seg in outputs:
        sink.write(m, seg)
    sink.close()
    assert sink.files == [tmp_path / "rec" / "clip.avi"] and sink.frames == 10

    frames, fps = read_video(sink.files[0])
    assert len(frames) == 10
    assert {f.shape for f in frames} == {(ROI[0], ROI[1], 3)}  # the ROI, never a full screen
    assert fps == pytest.approx(25.0)
    # after a clean close the index is there: even OpenCV's strict AVI reader plays it
    strict, _ = read_video(sink.files[0], cv2.CAP_OPENCV_MJPEG)
    assert len(strict) == 10

    m, seg = outputs[0]
    outline = band_outline(seg.labels, ROI)
    near = cv2.dilate(outline.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    g = green(frames[0])
    assert outline.sum() > 200
    assert g[near].sum() > 0.8 * outline.sum()  # the contour is drawn along the band
    assert g[~near].sum() < 0.02 * g.sum() + 20  # and nowhere else
    assert not green(cv2.cvtColor(seg.frame.image, cv2.COLOR_GRAY2BGR)).any()  # the grey input had none
    # the reading (yellow text) sits in the top rows
    b, gg, r = (frames[0][:40, ..., k].astype(int) for k in range(3))
    assert ((r > 150) & (gg > 150) & (b < 100)).sum() > 30


def test_overlay_text_carries_value_filtered_band_and_flags(outputs):
    from dataclasses import replace

    m = replace(outputs[0][0], thickness=1.234, unit="mm", flags=1 | 32, extra={"filtered": 1.2, "low": 1.1, "high": 1.3})
    assert overlay_text(m) == ("TLF 1.23 mm  filtered 1.20 mm (1.10-1.30)", "NO_BAND|FROZEN")
    m = replace(m, thickness=float("nan"), flags=0, extra={"filtered": float("nan")})
    assert overlay_text(m) == ("TLF -- mm", "ok")
    image = outputs[0][1].frame.image
    before = image.copy()
    drawn = draw_overlay(image, m, outputs[0][1].labels)
    assert drawn.shape == image.shape + (3,) and np.array_equal(image, before)


def test_colour_roi_is_written_at_its_size_and_fps_defaults_to_30(tmp_path):
    pairs = phantom_outputs(3, shape=(200, 320), seeds=(5,), colour=True)
    sink = RecordingSink(tmp_path / "c.avi").open()
    for m, seg in pairs:
        sink.write(m, seg)
    sink.close()
    frames, fps = read_video(tmp_path / "c.avi")
    assert len(frames) == 3 and frames[0].shape == (200, 320, 3) and fps == pytest.approx(30.0)


def test_fps_can_be_asked_of_the_source_when_the_first_frame_arrives(tmp_path, outputs):
    class Src:
        fps = None

    src = Src()
    sink = RecordingSink(tmp_path / "f.avi", fps=lambda: src.fps).open()
    src.fps = 50.0  # known only once the source has opened
    sink.write(*outputs[0])
    sink.close()
    assert read_video(tmp_path / "f.avi")[1] == pytest.approx(50.0)


def test_a_new_roi_size_starts_a_new_part(tmp_path, outputs):
    other = phantom_outputs(2, shape=(240, 240), seeds=(6,))
    sink = RecordingSink(tmp_path / "p.avi").open()
    for m, seg in outputs[:3] + other:
        sink.write(m, seg)
    sink.close()
    assert sink.files == [tmp_path / "p.avi", tmp_path / "p-part2.avi"]
    first, second = read_video(sink.files[0])[0], read_video(sink.files[1])[0]
    assert len(first) == 3 and first[0].shape[:2] == ROI
    assert len(second) == 2 and second[0].shape[:2] == (240, 240)


def test_a_full_disk_stops_recording_with_one_line_and_keeps_the_part_written(tmp_path, outputs, monkeypatch):
    import edge.sinks.recording as recording

    real = recording.shutil.disk_usage
    Usage = namedtuple("Usage", "total used free")
    sink = RecordingSink(tmp_path / "full.avi").open()
    for m, seg in outputs[:5]:
        sink.write(m, seg)
    monkeypatch.setattr(recording.shutil, "disk_usage", lambda p: Usage(real(p).total, real(p).total, 0))
    with pytest.raises(SinkError) as e:
        sink.write(*outputs[5])
    message = str(e.value)
    assert "\n" not in message and "disk nearly full" in message and "5 frames kept" in message
    assert sink.dead == message
    sink.write(*outputs[6])  # a dead sink stays quiet
    sink.close()
    frames, _ = read_video(tmp_path / "full.avi")
    assert len(frames) == 5 and frames[0].shape[:2] == ROI


def test_the_pipeline_reports_the_full_disk_and_other_sinks_go_on(tmp_path, outputs, monkeypatch):
    import edge.sinks.recording as recording

    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(recording.shutil, "disk_usage", lambda p: Usage(10, 10, 0))

    class Keep(Sink):
        name = "keep"

        def __init__(self):
            self.seen = 0

        def write(self, m, seg):
            self.seen += 1

    from edge.runtime.pipeline import _deliver  # how the output thread hands a measurement to the sinks

    err, keep, stats = io.StringIO(), Keep(), RunStats()
    live = [RecordingSink(tmp_path / "r.avi").open(), keep]
    for m, seg in outputs[:3]:
        live = _deliver(err, live, stats, lambda sink, m=m, seg=seg: sink.write(m, seg))
    assert keep.seen == 3 and live == [keep]
    report = err.getvalue().strip()
    assert report.startswith("recording output stopped: SinkError: disk nearly full") and "\n" not in report
    assert "recording" in stats.dead_sinks


def test_a_file_that_stops_growing_stops_recording(tmp_path, outputs, monkeypatch):
    import edge.sinks.recording as recording

    sink = RecordingSink(tmp_path / "s.avi", stall_frames=3).open()
    sink.write(*outputs[0])
    monkeypatch.setattr(recording.os.path, "getsize", lambda p: 1)
    sink.write(*outputs[1])
    sink.write(*outputs[2])
    with pytest.raises(SinkError, match="stopped growing over 3 frames"):
        sink.write(*outputs[3])


def test_an_unwritable_folder_is_one_line_at_open(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with pytest.raises(SinkError, match="cannot make the recording folder") as e:
        RecordingSink(blocker / "rec" / "a.avi").open()
    assert "\n" not in str(e.value)


ABRUPT = """
import os, sys
sys.path.insert(0, {tests!r})
from test_recording import phantom_outputs
from edge.sinks.recording import RecordingSink
sink = RecordingSink({path!r}).open()
for m, seg in phantom_outputs(12):
    sink.write(m, seg)
os._exit(0)  # no close(): as after a power cut or a kill
"""


@pytest.mark.skipif("FFMPEG" not in [cv2.videoio_registry.getBackendName(b) for b in cv2.videoio_registry.getBackends()],
                    reason="needs OpenCV's FFmpeg reader")
def test_after_an_abrupt_stop_an_ffmpeg_reader_recovers_the_frames_on_disk(tmp_path):
    path = tmp_path / "cut.avi"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", ABRUPT.format(tests=str(REPO / "tests"), path=str(path))], env=env, check=True, timeout=60)
    assert path.stat().st_size > 0
    assert read_video(path, cv2.CAP_OPENCV_MJPEG)[0] == []  # no index: the strict reader gives up
    frames, _ = read_video(path, cv2.CAP_FFMPEG)
    assert 9 <= len(frames) <= 12  # the writer's last buffer (about 64 KB) may not have reached the file
    assert {f.shape for f in frames} == {(ROI[0], ROI[1], 3)}
